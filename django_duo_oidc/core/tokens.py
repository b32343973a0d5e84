"""Validation of ID tokens (OpenID Connect Core 1.0 section 3.1.3.7), JWT access tokens and logout
tokens (OpenID Connect Back-Channel Logout 1.0 section 2.6).

Every check is spelled out; the clock (``now``) and ``leeway`` are passed in, so tests decide time
and nothing here reads a setting or the wall clock.

Over 300 lines on purpose: the three kinds of JWT a provider sends this site, side by side on the
shared signature, audience and time checks, so that each one's differences from the others are seen.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Callable, Iterable
from typing import Any

from . import jws as jws_mod
from .discovery import ASYMMETRIC_ALGORITHMS
from .errors import (
    BadSignature,
    InvalidClaim,
    TokenExpired,
)
from .jws import JWS

__all__ = [
    "KeyLookup",
    "at_hash",
    "decode_header",
    "validate_access_token",
    "validate_id_token",
    "validate_logout_token",
]

KeyLookup = Callable[[str | None, str], Any]
"""A function ``(kid, alg) -> key`` (see :meth:`JWKSStore.key_for`)."""

_HASH_FOR_ALG = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


def decode_header(token: Any) -> dict[str, Any]:
    """Return the JOSE header of a compact JWS, refusing anything malformed."""
    return jws_mod.parse(token).header


def check_algorithm(header: dict[str, Any], algorithms: Iterable[str]) -> str:
    """Return the header's alg if it is on the allow-list and asymmetric (RFC 8725 section 3.1)."""
    alg: str = header["alg"]  # a string: jws.parse refuses a header whose alg is not one
    if alg not in ASYMMETRIC_ALGORITHMS or alg not in set(algorithms):
        # Named only when short: the header is the sender's, and refusals are remembered and logged.
        shown = repr(alg) if len(alg) <= 32 else "(a long value)"
        raise BadSignature(f"The token algorithm {shown} is not allowed.")
    return alg


def at_hash(access_token: str, alg: str) -> str:
    """Return the ``at_hash`` of an access token (OIDC Core section 3.1.3.6).

    The left-most half of the hash of the ASCII access token, with the hash of the ID token's
    algorithm, base64url-encoded without padding. EdDSA (Ed25519) uses SHA-512.
    """
    hash_fn = hashlib.sha512 if alg == "EdDSA" else _HASH_FOR_ALG[alg[-3:]]
    digest = hash_fn(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def verify_signature_and_decode(
    token: str | JWS,
    *,
    key_for: KeyLookup,
    algorithms: Iterable[str],
    issuer: str,
    audience: str | Iterable[str] | None,
    required: Iterable[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify the signature, ``iss`` and ``aud`` of a JWT; return ``(header, claims)``.

    ``token`` may be already parsed (:func:`jws.parse`), so a caller that had to look inside first
    does not pay for a second parse. Times are checked separately (:func:`check_times`), against a
    clock the caller passes in.
    """
    parsed = token if isinstance(token, JWS) else jws_mod.parse(token)
    alg = check_algorithm(parsed.header, algorithms)  # before any key is looked up (RFC 8725 3.1)
    jws_mod.verify(parsed, key_for(parsed.header.get("kid"), alg), alg)
    claims = parsed.claims
    for name in required:
        if name not in claims:
            raise InvalidClaim(name, f"The token has no {name!r} claim.")
    if claims.get("iss") != issuer:
        raise InvalidClaim("iss", "The token was not issued by this provider.")
    if audience is not None:
        accepted = {audience} if isinstance(audience, str) else set(audience)
        aud = claims.get("aud")
        token_audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(token_audiences, list) or not all(isinstance(a, str) for a in token_audiences):
            raise InvalidClaim("aud", "The token's audience is not valid.")
        if accepted.isdisjoint(token_audiences):
            raise InvalidClaim("aud", "The token was not issued for this client.")
    return parsed.header, claims


def check_times(claims: dict[str, Any], *, now: float, leeway: float) -> None:
    """Check ``exp`` (required), ``iat`` (required, not in the future), ``nbf`` (optional), and that
    ``auth_time``, when present, is a number too (it is stored and compared later, by step-up views)."""
    exp = _number(claims, "exp")
    iat = _number(claims, "iat")
    if now >= exp + leeway:
        raise TokenExpired()
    if iat > now + leeway:
        raise InvalidClaim("iat", "The token was issued in the future.")
    if "nbf" in claims and now + leeway < _number(claims, "nbf"):
        raise TokenExpired("The token is not valid yet.")
    # OIDC Core section 2: auth_time is a JSON number (seconds since the epoch), like exp and iat.
    if "auth_time" in claims:
        _number(claims, "auth_time")


def only_trusted_audiences(claims: dict[str, Any], client_id: str, trusted: Iterable[str]) -> list[str]:
    """The token's ``aud`` values, when each is ``client_id`` or a trusted audience (OIDC Core 3.1.3.7
    step 3, for ID tokens and, by Back-Channel Logout 1.0 section 2.6 step 4, logout tokens).

    :raises InvalidClaim: the token is also meant for an audience this site does not trust.
    """
    audiences = [claims["aud"]] if isinstance(claims["aud"], str) else list(claims["aud"])
    if set(audiences) - {client_id} - set(trusted):
        raise InvalidClaim("aud", "The token is also intended for an audience this site does not trust.")
    return audiences


def validate_id_token(
    token: str,
    *,
    key_for: KeyLookup,
    issuer: str,
    client_id: str,
    algorithms: Iterable[str],
    now: float,
    leeway: float = 60,
    nonce: str | None = None,
    max_age: int | None = None,
    access_token: str | None = None,
    trusted_audiences: Iterable[str] = (),
) -> dict[str, Any]:
    """Validate an ID token and return its claims; raise a :class:`TokenError` otherwise."""
    header, claims = verify_signature_and_decode(
        token,
        key_for=key_for,
        algorithms=algorithms,
        issuer=issuer,  # 3.1.3.7 step 2: iss exactly equal to the issuer
        audience=client_id,  # step 3: aud contains our client_id
        required=("iss", "sub", "aud", "exp", "iat"),
    )
    typ = header.get("typ")
    if (isinstance(typ, str) and typ.lower() in _RFC9068_TYPES) or claims.get("typ") == "Bearer":
        # An RFC 9068 access token is never an ID token (RFC 8725 section 3.11, explicit typing);
        # Keycloak marks its access tokens with the claim typ "Bearer" (its ID tokens say "ID").
        raise InvalidClaim("typ", "An access token was presented as an ID token.")

    # Step 3 (cont.): reject additional audiences we do not trust.
    audiences = only_trusted_audiences(claims, client_id, trusted_audiences)
    # Steps 4 and 5: with several audiences azp must be present; when present it must be us.
    if len(audiences) > 1 and "azp" not in claims:
        raise InvalidClaim("azp", "The token has several audiences but no 'azp' claim.")
    if "azp" in claims and claims["azp"] != client_id:
        raise InvalidClaim("azp", "The token was issued to another client ('azp').")

    check_times(claims, now=now, leeway=leeway)  # steps 9 and 10

    sub = claims["sub"]
    # Section 2: sub is a locally unique identifier that MUST NOT exceed 255 ASCII characters.
    if not isinstance(sub, str) or not sub or len(sub) > 255 or not sub.isascii():
        raise InvalidClaim("sub", "The token's subject identifier is not valid.")

    # Step 11: the nonce must be present and equal to the one sent in the authentication request.
    if nonce is not None:
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce, nonce):
            raise InvalidClaim("nonce", "The token's nonce does not match this login attempt.")

    # Step 13: when max_age was requested, auth_time is required and must be recent enough.
    if max_age is not None:
        if "auth_time" not in claims:
            raise InvalidClaim("auth_time", "The provider did not say when the user authenticated.")
        if now > _number(claims, "auth_time") + max_age + leeway:
            raise InvalidClaim("auth_time", "The authentication is older than allowed (max_age).")

    # Section 3.1.3.8 (3.2.2.9): when at_hash is present it must match the access token.
    if access_token is not None and "at_hash" in claims:
        expected = at_hash(access_token, header["alg"])
        if not isinstance(claims["at_hash"], str) or not hmac.compare_digest(claims["at_hash"], expected):
            raise InvalidClaim("at_hash", "The token does not match the access token issued with it.")
    return claims


ACCESS_TOKEN_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})
_RFC9068_TYPES = frozenset({"at+jwt", "application/at+jwt"})


def looks_like_id_token(header: dict[str, Any], claims: dict[str, Any]) -> bool:
    """Whether a JWT offered as an access token is an ID token (RFC 8725 section 2.8, substitution).

    ``at_hash``/``c_hash`` (OIDC Core 3.1.3.6, 3.3.2.11) and Keycloak's ``typ`` claim ``ID`` mark an ID
    token whatever else is said. ``nonce`` marks one unless the token says positively that it is an
    access token: the RFC 9068 ``typ`` header (``at+jwt``, section 2.1) or Keycloak's ``typ`` claim
    ``Bearer`` (Keycloak up to 24 copies the login's ``nonce`` into access tokens). Duo marks neither
    kind, so for Duo ``nonce`` still decides.
    """
    if "at_hash" in claims or "c_hash" in claims or claims.get("typ") == "ID":
        return True
    if "nonce" not in claims:
        return False
    typ = header.get("typ")
    marked = (isinstance(typ, str) and typ.lower() in _RFC9068_TYPES) or claims.get("typ") == "Bearer"
    return not marked


def validate_access_token(
    token: str | JWS,
    *,
    key_for: KeyLookup,
    issuer: str,
    audiences: Iterable[str],
    algorithms: Iterable[str],
    now: float,
    leeway: float = 60,
) -> dict[str, Any]:
    """Validate a JWT access token (Duo's ``typ: jwt`` or RFC 9068 ``at+jwt``) and return its claims.

    The audience must be one of ``audiences`` (Duo sets the client id). An ID token presented as an
    access token is refused: it carries ``nonce``/``at_hash``, which access tokens never do
    (RFC 9068 section 4; RFC 8725 section 2.8 on substitution).
    """
    audiences = list(audiences)
    if not audiences:
        raise InvalidClaim("aud", "No audience is configured to accept access tokens for.")
    header, claims = verify_signature_and_decode(
        token,
        key_for=key_for,
        algorithms=algorithms,
        issuer=issuer,
        audience=audiences,
        required=("iss", "sub", "aud", "exp", "iat"),
    )
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES):
        raise InvalidClaim("typ", "The token is not an access token.")
    if looks_like_id_token(header, claims):
        raise InvalidClaim("typ", "An ID token was presented as an access token.")
    check_times(claims, now=now, leeway=leeway)
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise InvalidClaim("sub", "The token's subject identifier is not valid.")
    if "scope" in claims and not isinstance(claims["scope"], str):
        raise InvalidClaim("scope", "The token's scope claim is not a string.")
    return claims


def _number(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    try:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError
        number = float(value)  # a 400-digit integer overflows here
    except (TypeError, OverflowError):
        number = math.nan
    # NaN or Infinity (Python's json reads both) compare false or never expire: refused like a string.
    if not math.isfinite(number):
        raise InvalidClaim(name, f"The token's {name!r} claim is not a number.")
    return number


# OpenID Connect Back-Channel Logout 1.0 ------------------------------------------------------------

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# Section 2.4: "typ": "logout+jwt" is recommended; older providers send "JWT" or nothing.
LOGOUT_TOKEN_TYPES = frozenset({"jwt", "logout+jwt", "application/logout+jwt"})
# Lengths of the identifiers a logout token may carry: what the session index stores (sub and sid,
# OIDC Core section 2 caps sub at 255 ASCII characters) and what the replay store keys on (jti).
MAX_IDENTIFIER_LENGTH = 255


def validate_logout_token(
    token: str,
    *,
    key_for: KeyLookup,
    issuer: str,
    client_id: str,
    algorithms: Iterable[str],
    now: float,
    leeway: float = 60,
    max_age: float = 120,
    trusted_audiences: Iterable[str] = (),
) -> dict[str, Any]:
    """Validate a Logout Token (OIDC Back-Channel Logout 1.0 section 2.6) and return its claims.

    Steps 2-7 of section 2.6: the signature as for ID tokens, from the provider's keys, with an
    asymmetric algorithm on the allow-list (never ``none``, never HMAC: step 3); ``iss``, ``aud``
    (contains ``client_id``, no untrusted other audience), ``iat`` and, when present, ``exp`` as for ID
    tokens (step 4); ``sub`` and/or ``sid`` (step 5); ``events`` with the back-channel logout member
    whose value is a JSON object (step 6); no ``nonce`` (step 7, section 2.4). ``jti`` must be present
    (section 2.4: REQUIRED); whether it was seen before (step 8) is the caller's to check, for as long
    as a token is accepted: ``iat`` may be at most ``max_age`` (+ ``leeway``) seconds old, which bounds
    that memory. Every failure raises a :class:`TokenError` (the endpoint answers 400, section 2.8).
    """
    header, claims = verify_signature_and_decode(
        token,
        key_for=key_for,
        algorithms=algorithms,
        issuer=issuer,
        audience=client_id,
        required=("iss", "aud", "iat", "jti", "events"),
    )
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in LOGOUT_TOKEN_TYPES):
        raise InvalidClaim("typ", "The token is not a logout token.")
    only_trusted_audiences(claims, client_id, trusted_audiences)

    iat = _number(claims, "iat")
    if iat > now + leeway:
        raise InvalidClaim("iat", "The token was issued in the future.")
    if now - iat > max_age + leeway:
        # Not in the spec's list, but step 8's replay check can only remember jti for a bounded time:
        # a token older than that memory could be replayed, so it is refused.
        raise TokenExpired("The logout token is too old.")
    if "exp" in claims and now >= _number(claims, "exp") + leeway:
        raise TokenExpired()
    if "nbf" in claims and now + leeway < _number(claims, "nbf"):
        raise TokenExpired("The token is not valid yet.")

    if "nonce" in claims:
        # Section 2.4: a nonce is prohibited, so an ID token can never pass as a logout token.
        raise InvalidClaim("nonce", "A logout token must not contain a nonce.")
    events = claims["events"]
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise InvalidClaim("events", "The token is not a back-channel logout event.")
    for name in ("jti", "sub", "sid"):
        value = claims.get(name)
        if name in claims and (
            not isinstance(value, str) or not value or len(value) > MAX_IDENTIFIER_LENGTH or not value.isascii()
        ):
            raise InvalidClaim(name, f"The token's {name!r} claim is not valid.")
    if "sub" not in claims and "sid" not in claims:
        raise InvalidClaim("sub", "The logout token names neither a subject (sub) nor a session (sid).")
    return claims
