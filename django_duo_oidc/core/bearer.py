"""The resource-server side of OAuth 2.0 bearer tokens: the header (RFC 6750 section 2.1), the
challenge (RFC 6750 section 3, RFC 9728 section 5.1, RFC 9470 section 3) and what a validated
token grants (:class:`AccessGrant`), from its JWT claims or from introspection (RFC 7662).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidClaim, InvalidRequest, TokenError
from .introspection import TokenInfo
from .jws import MAX_TOKEN_LENGTH
from .scopes import format_scopes, parse_scopes

__all__ = [
    "AccessGrant",
    "audiences_of",
    "challenge",
    "grant_from_claims",
    "grant_from_introspection",
    "is_client_token",
    "token_from_header",
]

# RFC 6750 section 2.1: credentials = "Bearer" 1*SP b64token
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 6750 section 3: error and error_description values are limited to these characters.
_SAFE_VALUE = re.compile(r"[\x20\x21\x23-\x5B\x5D-\x7E]*")
# Token types an introspection answer may give for an access token (RFC 7662 2.2; Duo says "access_token").
_ACCESS_TOKEN_TYPES = frozenset({"bearer", "access_token"})


def token_from_header(value: str | None) -> str | None:
    """Return the bearer token of an ``Authorization`` header value.

    None when there is no header or it uses another scheme (left to other authentication).

    :raises InvalidRequest: the header says Bearer but does not carry one well-formed token.
    """
    if not value:
        return None
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "bearer":  # auth-scheme is case-insensitive (RFC 9110 section 11.1)
        return None
    token = rest.lstrip(" ")
    if not token:
        raise InvalidRequest("The Authorization header names the Bearer scheme but carries no token.")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidRequest("The Authorization header is too large.")
    if not _B64TOKEN.fullmatch(token):
        raise InvalidRequest("The Authorization header is not a single well-formed bearer token.")
    return token


def challenge(
    *,
    realm: str | None = None,
    resource_metadata: str | None = None,
    error: str | None = None,
    description: str | None = None,
    scope: Iterable[str] | None = None,
    max_age: int | None = None,
) -> str:
    """Build a ``WWW-Authenticate: Bearer ...`` value.

    Without ``error`` it is the bare challenge for a request with no credentials (RFC 6750 section 3:
    "SHOULD NOT include an error code"). ``resource_metadata`` points OAuth clients at the RFC 9728
    document; ``max_age`` goes with RFC 9470's ``insufficient_user_authentication``.
    """
    params: list[tuple[str, str]] = []
    if realm:
        params.append(("realm", realm))
    if resource_metadata:
        params.append(("resource_metadata", resource_metadata))
    if error:
        params.append(("error", error))
        if description:
            params.append(("error_description", description))
    if scope is not None:
        params.append(("scope", format_scopes(scope)))
    if max_age is not None:
        params.append(("max_age", str(int(max_age))))
    if not params:
        return "Bearer"
    return "Bearer " + ", ".join(f'{name}="{_quote(value)}"' for name, value in params)


def _quote(value: str) -> str:
    if not _SAFE_VALUE.fullmatch(value):
        # Never echo a character the grammar does not allow (nor anything a client sent us).
        value = "".join(c if _SAFE_VALUE.fullmatch(c) else "?" for c in value)
    return value


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """What a validated access token grants: who, which scopes, until when. Never the token itself."""

    issuer: str
    sub: str | None
    client_id: str | None
    scopes: frozenset[str]
    #: None when the provider did not say (introspection without ``exp``): trusted one window at a time.
    expires_at: float | None
    #: True for a token obtained without a user (client credentials): never a logged-in user.
    is_client: bool
    auth_time: float | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: RFC 7662 ``username`` of the resource owner, when an introspection answer names one without a
    #: ``sub`` (django-oauth-toolkit): how such a user token finds its user.
    username: str | None = None


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def audiences_of(value: Any) -> tuple[str, ...]:
    """An ``aud`` value (RFC 7519 4.1.3: a string or an array of strings) as a tuple of its strings."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(item for item in items if isinstance(item, str) and item)


def _client_of(claims: Mapping[str, Any]) -> str | None:
    """The client a token was issued to: ``client_id`` (RFC 9068 2.2, RFC 7662 2.2), else ``azp`` (OIDC)."""
    return _string(claims.get("client_id")) or _string(claims.get("azp"))


def is_client_token(
    claims: Mapping[str, Any],
    *,
    own_client_id: str | None = None,
    machine_clients: frozenset[str] = frozenset(),
) -> bool:
    """True when a token (its JWT claims, or an introspection answer) is a client's, with no user behind it.

    RFC 9068 section 2.2: for "grants where no resource owner is involved, such as the client
    credentials grant, the value of ``sub`` SHOULD correspond to an identifier the authorization server
    uses to indicate the client application". Providers differ in how they follow that, so a token is
    a client's when any of these holds:

    1. it has no ``sub`` and no ``username`` (an introspection answer may omit both): there is nobody
       to log in. An answer with a ``username`` (RFC 7662 section 2.2) but no ``sub`` is a user's
       token, unless rule 2 or 5 says otherwise for that name;
    2. ``gty`` is ``client-credentials`` (Auth0 names the grant this way);
    3. ``sub`` equals its ``client_id`` or ``azp`` claim (the RFC 9068 shape);
    4. ``sub`` equals one of its ``aud`` values, or ``own_client_id`` (the client id this site is
       registered under): those name clients and resources, never a user. Duo's client-credentials
       tokens carry the calling client's id as ``sub`` and no ``client_id`` claim (DUO.md 2), while a
       Duo user's ``sub`` is 64 hex characters (DUO.md 1.5);
    5. its ``sub``, ``client_id`` or ``azp`` is in ``machine_clients``, the provider's own list of
       machine clients (``Provider.machine_clients``): the way to name, e.g., a Keycloak service
       account (its ``sub`` is a user id, ``azp``/``client_id`` the client) or another Duo client
       calling with a token addressed to this site.

    A token wrongly judged a client's loses its user (never gains one), so the rule errs that way.
    """
    sub = _string(claims.get("sub"))
    clients = {c for c in (_string(claims.get("client_id")), _string(claims.get("azp"))) if c is not None}
    if sub is None:
        # RFC 7662 section 2.2: ``username`` names the resource owner who authorized the token. With
        # it, there is a user behind the token (django-oauth-toolkit sends it and no sub): never a client's.
        username = _string(claims.get("username"))
        if username is None:
            return True
        return claims.get("gty") == "client-credentials" or bool(machine_clients & ({username} | clients))
    if claims.get("gty") == "client-credentials":
        return True
    if sub in clients:
        return True
    if sub in audiences_of(claims.get("aud")) or (own_client_id is not None and sub == own_client_id):
        return True
    return bool(machine_clients & ({sub} | clients))


def grant_from_claims(
    issuer: str,
    claims: Mapping[str, Any],
    *,
    own_client_id: str | None = None,
    machine_clients: frozenset[str] = frozenset(),
) -> AccessGrant:
    """The grant of a JWT access token whose signature, issuer, audience and times were checked.

    ``own_client_id`` and ``machine_clients`` feed :func:`is_client_token`.
    """
    sub = claims["sub"]
    auth_time = claims.get("auth_time")
    return AccessGrant(
        issuer=issuer,
        sub=sub,
        client_id=_client_of(claims),
        scopes=parse_scopes(claims.get("scope")),
        expires_at=float(claims["exp"]),
        is_client=is_client_token(claims, own_client_id=own_client_id, machine_clients=machine_clients),
        auth_time=float(auth_time) if isinstance(auth_time, int | float) and not isinstance(auth_time, bool) else None,
        claims=dict(claims),
    )


def grant_from_introspection(
    issuer: str,
    info: TokenInfo,
    *,
    audiences: Iterable[str],
    now: float,
    leeway: float,
    local: AccessGrant | None = None,
    own_client_id: str | None = None,
    machine_clients: frozenset[str] = frozenset(),
    require_audience: bool = True,
    token_audiences: Iterable[str] = (),
) -> AccessGrant:
    """Combine an introspection answer with what the token itself said (``local``), if anything.

    Introspection is authoritative (RFC 7662 section 2.2): inactive is refused; its scope, narrower
    or not, replaces the token's; a different subject or issuer is a lie by one of the two.

    "Active" is not "for this resource": one authorization server (one Duo application) serves
    several clients, and Duo's answer has no ``aud``. RFC 7662 section 4 has the resource server
    check that the token was meant for it; RFC 9068 section 4 the same for JWTs. So the audience must
    be one of ``audiences``, established by, in order: the answer's ``aud`` (when present it decides,
    and another value is refused whatever else says); the audience ``local`` already proved (a
    verified JWT); the answer's ``client_id`` (or ``azp``), the client the token was issued to, as
    Duo sets ``aud`` to the client id; the JWT's own ``aud`` (``token_audiences``: the exact string
    the provider calls active, so its payload is the provider's). When none establishes it the token
    is refused, unless ``require_audience`` is False (``Provider.access_token_require_audience``,
    an explicit opt-out for an authorization server that issues tokens for this site alone).

    :raises TokenError: the token is not active, expired, or not for this resource.
    """
    if not info.active:
        raise TokenError("The token is not active.")
    raw = info.raw
    token_type = raw.get("token_type")
    if isinstance(token_type, str) and token_type.lower() not in _ACCESS_TOKEN_TYPES:
        # A refresh token (or a DPoP-bound token) presented as a bearer access token.
        raise InvalidClaim("token_type", "The token is not a bearer access token.")
    if "iss" in raw and raw["iss"] != issuer:
        raise InvalidClaim("iss", "The introspection answer names another issuer.")
    accepted = set(audiences)
    if raw.get("aud") is not None:
        if accepted.isdisjoint(audiences_of(raw["aud"])):
            raise InvalidClaim("aud", "The token was not issued for this resource.")
    elif local is None and require_audience:
        named = {c for c in (info.client_id, _string(raw.get("azp"))) if c is not None} | set(token_audiences)
        if accepted.isdisjoint(named):
            raise InvalidClaim("aud", "Nothing establishes that the token was issued for this resource.")
    expires_at = float(info.exp) if info.exp is not None else None
    if local is not None:
        if info.sub is not None and info.sub != local.sub:
            raise InvalidClaim("sub", "The introspection answer is about another subject.")
        expires_at = min(local.expires_at or expires_at, expires_at) if expires_at is not None else local.expires_at
    if expires_at is not None and now >= expires_at + leeway:
        raise TokenError("The token has expired.")
    sub = info.sub if info.sub is not None else (local.sub if local else None)
    client_id = info.client_id or _string(raw.get("azp")) or (local.client_id if local else None)
    scopes = parse_scopes(info.scope) if info.scope is not None else (local.scopes if local else frozenset())
    # The rule on what both said: the JWT's claims, the answer's over them, the subject as resolved.
    said = {**(local.claims if local else {}), **raw, "sub": sub}
    is_client = is_client_token(said, own_client_id=own_client_id, machine_clients=machine_clients)
    return AccessGrant(
        issuer=issuer,
        sub=sub,
        client_id=client_id,
        scopes=scopes,
        expires_at=expires_at,
        is_client=is_client or (local is not None and local.is_client),
        auth_time=local.auth_time if local else None,
        claims={k: v for k, v in raw.items() if k != "active"} if local is None else local.claims,
        username=_string(raw.get("username")) if sub is None else None,
    )
