"""The authorization code flow (RFC 6749 section 4.1, OIDC Core section 3.1) and token grants."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import (
    ConfigurationError,
    ProviderResponseError,
    SecretUnavailable,
    TokenEndpointError,
    TokenError,
)
from .http import HttpClient, basic_auth_header
from .pkce import new_verifier, s256_challenge

__all__ = [
    "AuthRequest",
    "ClientCredentials",
    "TokenSet",
    "authorization_url",
    "exchange_code",
    "fetch_userinfo",
    "refresh_tokens",
    "revoke_token",
]

AuthMethod = Literal["client_secret_basic", "client_secret_post"]


@dataclass(frozen=True)
class ClientCredentials:
    """How the client authenticates at the token endpoint (RFC 6749 section 2.3.1)."""

    client_id: str
    client_secret: str = field(repr=False)
    method: AuthMethod = "client_secret_basic"

    def apply(self, data: Mapping[str, str | Sequence[str]]) -> tuple[dict[str, str | Sequence[str]], dict[str, str]]:
        """Return the form body and headers that authenticate this client."""
        if not self.client_secret:
            raise SecretUnavailable("The provider has no client secret configured.")
        if self.method == "client_secret_post":
            return {**data, "client_id": self.client_id, "client_secret": self.client_secret}, {}
        if self.method == "client_secret_basic":
            return dict(data), {"Authorization": basic_auth_header(self.client_id, self.client_secret)}
        raise ConfigurationError(f"Unknown token endpoint authentication method {self.method!r}.")


@dataclass(frozen=True)
class AuthRequest:
    """The secrets of one login attempt: kept server-side, single-use."""

    state: str
    nonce: str
    code_verifier: str

    @classmethod
    def new(cls) -> AuthRequest:
        return cls(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=new_verifier(),
        )

    @property
    def code_challenge(self) -> str:
        return s256_challenge(self.code_verifier)


@dataclass(frozen=True)
class TokenSet:
    """A successful token response (RFC 6749 section 5.1)."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int | None
    id_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    scope: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


# The longest token lifetime taken from a token response (ten years): beyond it, a broken or lying answer.
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600


def authorization_url(endpoint: str, params: Mapping[str, str | Sequence[str] | None]) -> str:
    """Return ``endpoint`` with ``params`` added to any query it already has (RFC 6749 3.1).

    A list or tuple value is sent as a repeated parameter (RFC 8707 ``resource``).
    """
    parts = urlsplit(endpoint)
    query = parse_qsl(parts.query, keep_blank_values=True)
    for key, value in params.items():
        if isinstance(value, str):
            query.append((key, value))
        elif value is not None:
            query.extend((key, item) for item in value)
    return urlunsplit(parts._replace(query=urlencode(query)))


def authorization_params(
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    auth_request: AuthRequest,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Return the query parameters of an authorization request with PKCE S256, state and nonce."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": auth_request.state,
        "nonce": auth_request.nonce,
        "code_challenge": auth_request.code_challenge,
        "code_challenge_method": "S256",
    }
    for key, value in (extra or {}).items():
        if value not in (None, "") and key not in params:
            params[key] = str(value)
    return params


def exchange_code(
    http: HttpClient,
    token_endpoint: str,
    client: ClientCredentials,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    resource: Sequence[str] = (),
) -> TokenSet:
    """Redeem an authorization code (RFC 6749 section 4.1.3, RFC 7636 section 4.5).

    ``resource``: RFC 8707 section 2.2 resource indicators, for an access token meant for those APIs.
    """
    data: dict[str, str | list[str]] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    if resource:
        data["resource"] = list(resource)
    tokens = _token_request(http, token_endpoint, client, data)
    if not isinstance(tokens.id_token, str) or not tokens.id_token:
        # OIDC Core section 3.1.3.3: a successful response to an openid request has an id_token.
        raise ProviderResponseError("The token response has no ID token.")
    return tokens


def refresh_tokens(
    http: HttpClient,
    token_endpoint: str,
    client: ClientCredentials,
    refresh_token: str,
    *,
    scope: str | None = None,
    resource: Sequence[str] = (),
) -> TokenSet:
    """Use a refresh token (RFC 6749 section 6), for the RFC 8707 ``resource`` indicators if any
    (section 2.2: the refresh token grant takes them too)."""
    data: dict[str, str | list[str]] = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope:
        data["scope"] = scope
    if resource:
        data["resource"] = list(resource)
    return _token_request(http, token_endpoint, client, data)


def revoke_token(
    http: HttpClient, endpoint: str, client: ClientCredentials, token: str, *, token_type_hint: str
) -> None:
    """Revoke ``token`` (RFC 7009 section 2.1), with client authentication (section 2.1: "the client
    also includes its authentication credentials").

    Section 2.2: a 200 means revoked, or the token was invalid already; the body is ignored.

    :raises TokenEndpointError: the endpoint refused (``unsupported_token_type``, ``invalid_client``...).
    :raises ProviderUnavailable: network error, timeout, 5xx (section 2.2.1's 503 among them).
    :raises ProviderResponseError: any other answer.
    """
    data = {"token": token, "token_type_hint": token_type_hint}
    try:
        post_authenticated(http, endpoint, client, data, what="identity provider's revocation endpoint")
    except ProviderResponseError as exc:
        if exc.http_status == 200:
            return  # a 200 whose body is not JSON: the body is ignored (section 2.2)
        raise


def client_credentials_grant(
    http: HttpClient,
    token_endpoint: str,
    client: ClientCredentials,
    *,
    scope: str | None = None,
    resource: str | None = None,
) -> TokenSet:
    """Get a token for the client itself (RFC 6749 section 4.4; Duo's client credentials, DUO.md 2).

    ``resource`` is the RFC 8707 resource indicator, for providers that mint per-API audiences.
    """
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    if resource:
        data["resource"] = resource
    return _token_request(http, token_endpoint, client, data)


def post_authenticated(
    http: HttpClient,
    endpoint: str,
    client: ClientCredentials,
    data: Mapping[str, str | Sequence[str]],
    *,
    what: str,
    any_4xx_refuses: bool = False,
) -> dict[str, Any]:
    """POST ``data`` with client authentication; return the JSON body of a 200 answer.

    An OAuth error answer (RFC 6749 section 5.2; RFC 7662 section 2.3 uses the same) becomes a
    TokenEndpointError carrying the error code; any other status a ProviderResponseError. Duo adds
    ``error_title``/``error_message`` to its errors; only ``error`` is relied on.

    ``any_4xx_refuses``: a 4xx answer without an OAuth error body (Glewlwyd refuses a refresh with a
    bare 400) is a refusal too, never an outage: 5xx, 429, timeouts and network errors are outages
    (:class:`~.errors.ProviderUnavailable`, raised by the HTTP client).
    """
    body, headers = client.apply(data)
    try:
        response = http.post_form(endpoint, body, headers=headers)
    except ProviderResponseError as exc:
        status = exc.http_status
        if any_4xx_refuses and status is not None and 400 <= status < 500:
            raise _bare_refusal(what, status) from exc
        raise
    if response.status != 200:
        error = response.data.get("error")
        if response.status in (400, 401) and isinstance(error, str):
            code = _safe_code(error)
            refusal = TokenEndpointError(f"The {what} refused the request ({code}).", error=code)
            refusal.http_status = response.status
            raise refusal
        if any_4xx_refuses and 400 <= response.status < 500:
            raise _bare_refusal(what, response.status)
        raise ProviderResponseError(f"The {what} answered HTTP {response.status}.")
    return response.data


def _bare_refusal(what: str, status: int) -> TokenEndpointError:
    """A 4xx answer without an OAuth error code, as a refusal whose code this library chose."""
    refusal = TokenEndpointError(f"The {what} refused the request (HTTP {status}).", error="invalid_request")
    refusal.stated = False
    refusal.http_status = status
    return refusal


def _token_request(
    http: HttpClient, token_endpoint: str, client: ClientCredentials, data: Mapping[str, str | Sequence[str]]
) -> TokenSet:
    # Token endpoint: any 4xx is a refusal (RFC 6749 section 5.2 answers errors with 400/401).
    payload = post_authenticated(
        http, token_endpoint, client, data, what="identity provider's token endpoint", any_4xx_refuses=True
    )
    access_token = payload.get("access_token")
    token_type = payload.get("token_type")
    if not isinstance(access_token, str) or not access_token:
        raise ProviderResponseError("The token response has no access token.")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        # RFC 6749 section 7.1 / RFC 6750: we only know how to use Bearer tokens.
        raise ProviderResponseError("The token response is not for a Bearer token.")
    expires_in = payload.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isascii() and expires_in.isdigit():
        expires_in = int(expires_in)
    if expires_in is not None and (
        isinstance(expires_in, bool) or not isinstance(expires_in, int) or not 0 <= expires_in <= MAX_EXPIRES_IN
    ):
        # Bounded: `now + expires_in` must stay a float (a 400-digit integer overflows).
        raise ProviderResponseError("The token response's expires_in is not a number.")
    scope = payload.get("scope")
    refresh_token = payload.get("refresh_token")
    id_token = payload.get("id_token")
    return TokenSet(
        access_token=access_token,
        token_type="Bearer",
        expires_in=expires_in,
        id_token=id_token if isinstance(id_token, str) else None,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        scope=scope if isinstance(scope, str) else None,
        raw=payload,
    )


def fetch_userinfo(http: HttpClient, endpoint: str, access_token: str) -> dict[str, Any]:
    """Return the UserInfo claims (OIDC Core section 5.3), sent with a Bearer header."""
    response = http.get(endpoint, headers={"Authorization": f"Bearer {access_token}"})
    if response.status == 401:
        raise TokenError("The identity provider refused the access token at the userinfo endpoint.")
    if response.status != 200:
        raise ProviderResponseError(f"The userinfo endpoint answered HTTP {response.status}.")
    if not isinstance(response.data.get("sub"), str):
        raise ProviderResponseError("The userinfo answer has no 'sub'.")
    return response.data


def _safe_code(error: str) -> str:
    """Keep an OAuth error code printable and short: it ends up in pages and logs."""
    cleaned = "".join(c for c in error if c.isalnum() or c in "_-.")[:64]
    return cleaned or "error"
