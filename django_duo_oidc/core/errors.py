"""Errors raised by the protocol core.

Every failure the core can detect is one of these; pyjwt and requests exceptions never leave the
core except as the ``__cause__`` of one of them. Each error knows its OAuth error code (``.error``),
a description that is safe to show to a user or a client (never a token, never a secret), and the
HTTP status that fits it.

    DuoOIDCError
    ├── ConfigurationError          the provider settings or metadata are unusable
    │   └── SecretUnavailable       a client secret cannot be read (variable unset or not allowed, undecryptable)
    ├── ProviderUnavailable         network error, timeout, 5xx or 429 from the provider (503)
    │   └── CacheUnavailable        the shared cache (Redis) failed: nothing can be checked now (503)
    ├── ProviderResponseError       the provider answered something that is not what the spec says (502)
    │   └── DiscoveryError          bad discovery document, issuer mismatch
    ├── TokenEndpointError          the token endpoint refused the grant (error=invalid_grant, ...)
    ├── AuthorizationError          the browser flow failed: error= from the provider, no code, wrong iss
    │   └── StateError              unknown, expired or replayed state
    ├── LoginRefused                the identity is valid but may not log in here (403)
    ├── ReauthenticationRequired    the session's grant cannot be renewed: the user must log in again
    ├── InvalidRequest              invalid_request (400): a malformed Authorization header, a token in the URL
    ├── TokenError                  invalid_token (401): the token cannot be trusted
    │   ├── MalformedToken          not a JWT, bad base64/JSON, missing header fields
    │   ├── BadSignature            signature does not verify, or a refused algorithm
    │   ├── UnknownKey              no key in the JWKS matches the token's kid
    │   ├── TokenExpired            exp passed (or iat/nbf/auth_time out of range)
    │   └── InvalidClaim            iss, aud, azp, nonce, at_hash, sub, typ ... (``.claim`` names it)
    └── InsufficientScope           insufficient_scope (403): the token lacks a required scope
"""

from __future__ import annotations

import logging

__all__ = [
    "AuthorizationError",
    "BadSignature",
    "CacheUnavailable",
    "ConfigurationError",
    "DiscoveryError",
    "DuoOIDCError",
    "InsufficientScope",
    "InvalidClaim",
    "InvalidRequest",
    "LoginRefused",
    "MalformedToken",
    "ProviderResponseError",
    "ProviderUnavailable",
    "ReauthenticationRequired",
    "SecretUnavailable",
    "StateError",
    "TokenEndpointError",
    "TokenError",
    "TokenExpired",
    "UnknownKey",
    "database_outage",
]


class DuoOIDCError(Exception):
    """Base class of every error the core raises."""

    error: str = "server_error"
    status_code: int = 500
    default_description: str = "The login could not be completed."
    #: True on a refusal answered again from memory (the token was refused before): logged quietly.
    remembered: bool = False
    #: False when raised before the provider was called: then not a sign that the provider is down.
    provider_asked: bool = True

    def __init__(self, description: str | None = None, *, error: str | None = None) -> None:
        self.description = description or self.default_description
        if error is not None:
            self.error = error
        super().__init__(self.description)


class ConfigurationError(DuoOIDCError):
    """The provider is configured in a way that cannot work (no secret, no JWKS, ...)."""

    default_description = "The identity provider is not configured correctly."


class SecretUnavailable(ConfigurationError):
    """A client secret cannot be read: its environment variable is unset or not allowed, the stored
    value cannot be decrypted, or there is none. The description names the variable (never a value):
    it is for logs and administrators; the people signing in are shown ``shown_description``."""

    default_description = "The client secret cannot be read."
    shown_description = (
        "This sign-in method is not available right now. The site's administrators have been told; please try "
        "again later."
    )


class ProviderUnavailable(DuoOIDCError):
    """The provider could not be reached, timed out, or answered 5xx/429."""

    error = "temporarily_unavailable"
    status_code = 503
    default_description = "The identity provider is not reachable right now."


class CacheUnavailable(ProviderUnavailable):
    """The shared cache failed. Treated like an unreachable provider, so every fail-closed path applies:
    what needs the cache (single-flight calls, the provider-down flag, state replay checks) cannot be
    done safely without it."""

    default_description = "This site cannot check access right now: its shared cache is not reachable."


class ProviderResponseError(DuoOIDCError):
    """The provider answered, but not with what the specification requires."""

    status_code = 502
    default_description = "The identity provider sent an answer that could not be understood."
    #: The HTTP status of an answer whose body could not be read as JSON (a 4xx HTML page may still be a
    #: refusal); None when the status was not the problem.
    http_status: int | None = None


class DiscoveryError(ProviderResponseError):
    """The discovery document is unusable, or names another issuer."""

    default_description = "The identity provider's configuration document is not valid."


class TokenEndpointError(DuoOIDCError):
    """The token endpoint refused a grant (RFC 6749 section 5.2).

    ``error`` is the code the endpoint answered with. ``stated`` is False when the endpoint answered a
    bare 4xx with no OAuth error code: ``error`` is then ``invalid_request``, this library's word for it.
    ``http_status`` is the status of the answer, when there was one.
    """

    error = "invalid_grant"
    stated: bool = True
    http_status: int | None = None
    status_code = 400
    default_description = "The identity provider refused to issue tokens."


class AuthorizationError(DuoOIDCError):
    """The authorization response is an error, or cannot be accepted."""

    error = "invalid_request"
    status_code = 400
    default_description = "The login was not completed."


class StateError(AuthorizationError):
    """The state parameter is unknown, expired or already used."""

    default_description = "This login attempt is unknown, has expired or was already used. Please start again."


class LoginRefused(DuoOIDCError):
    """The identity was verified but is not allowed to log in to this site."""

    error = "access_denied"
    status_code = 403
    default_description = "Your account is not allowed to log in to this site."


class ReauthenticationRequired(DuoOIDCError):
    """The signed-in user's access token cannot be handed out: the provider refused to renew the grant,
    gave no refresh token, or the request has no session grant at all (a bearer request, an anonymous
    one). Only a new login helps; ``provider`` names the provider to log in with, when known.

    Raised by ``request.oidc.access_token()`` and the outbound user-token auth classes; the middleware
    answers it with a redirect to login (``django_duo_oidc.login.renewal.login_again``). The error code
    is OIDC Core section 3.1.2.6's ``login_required``.
    """

    error = "login_required"
    status_code = 401
    default_description = "Your sign-in has expired. Please sign in again."

    def __init__(
        self, description: str | None = None, *, provider: str | None = None, error: str | None = None
    ) -> None:
        self.provider = provider
        super().__init__(description, error=error)


class InvalidRequest(DuoOIDCError):
    """A request to a protected resource that is malformed (RFC 6750 section 3.1 ``invalid_request``)."""

    error = "invalid_request"
    status_code = 400
    default_description = "The request is malformed."


class TokenError(DuoOIDCError):
    """A token that cannot be trusted (RFC 6750 section 3.1 ``invalid_token``)."""

    error = "invalid_token"
    status_code = 401
    default_description = "The token is not valid."


class MalformedToken(TokenError):
    """The token is not a well-formed JWT."""

    default_description = "The token is malformed."


class BadSignature(TokenError):
    """The signature does not verify, or the algorithm is not allowed."""

    default_description = "The token signature is not valid."


class UnknownKey(TokenError):
    """The token names a key the provider does not publish."""

    default_description = "The token was signed with an unknown key."


class TokenExpired(TokenError):
    """The token has expired or is not yet valid."""

    default_description = "The token has expired."


class InvalidClaim(TokenError):
    """A claim has a value we must refuse; ``claim`` names it."""

    def __init__(self, claim: str, description: str | None = None) -> None:
        self.claim = claim
        super().__init__(description or f"The token's {claim!r} claim is not valid.")


class InsufficientScope(DuoOIDCError):
    """The token is valid but lacks scopes the resource needs (RFC 6750 section 3.1)."""

    error = "insufficient_scope"
    status_code = 403
    default_description = "The token does not carry the scopes this resource requires."

    def __init__(self, required: frozenset[str], granted: frozenset[str], description: str | None = None) -> None:
        self.required = frozenset(required)
        self.granted = frozenset(granted)
        self.missing = self.required - self.granted
        super().__init__(description)


def database_outage(what: str, exc: BaseException, description: str) -> ProviderUnavailable:
    """Log (a warning on ``django_duo_oidc``) that ``what`` failed because the database did, naming the
    error's class only (a driver's message may name hosts and users), and return the 503 to answer with
    ``description`` instead: the request is neither trusted nor refused, the next one reads again."""
    logging.getLogger("django_duo_oidc").warning("%s (the database failed: %s)", what, type(exc).__name__)
    return ProviderUnavailable(description)
