"""``duo_universal`` put to work: a client per configuration, a bounded wait, and its errors sorted.

The SDK (duo_universal 2.3) calls ``requests.post`` with no timeout, and reports every failure as a
``DuoException`` wrapping whatever went wrong (a connection error, Duo's JSON error, a ``KeyError`` when
an answer lacks ``stat``, a JWT error). So that a slow Duo cannot hold a worker forever, and so that "Duo
is down" (fail mode applies) is never confused with "these credentials are wrong" (always closed), the
``requests`` the SDK module sees is :class:`_DuoTransport`: the real ``requests`` with a default timeout
(``DUO_OIDC["HTTP_TIMEOUT"]``) on ``post``, noting each answer's status and JSON body for
:func:`classify`. Nothing the SDK sends or checks is changed or re-implemented.

    DuoOIDCError (django_duo_oidc.core.errors)
    ├── ProviderUnavailable  error="duo_unavailable": no answer, a timeout, a 5xx (the fail mode applies);
    │                        error="duo_rate_limited": a 429 (always closed: a flood could cause it)
    ├── ConfigurationError   error="duo_misconfigured": invalid_client (40002), unauthorized_request (the
    │                        credentials of another Duo application type), TLS trust, SDK-refused settings
    ├── TokenEndpointError   error="invalid_grant": Duo refused the duo_code (replayed, expired)
    └── InvalidClaim         error="invalid_token": the 2FA result failed the SDK's checks (signature,
                             aud, iss, exp, iat, preferred_username, nonce)
"""

from __future__ import annotations

import contextvars
import logging
import re
import ssl
import warnings
from dataclasses import dataclass
from typing import Any

import duo_universal
import duo_universal.client as duo_client_module
import jwt.warnings as jwt_warnings
import requests

from ..conf import conf
from ..core.errors import ConfigurationError, DuoOIDCError, InvalidClaim, ProviderUnavailable, TokenEndpointError
from ..models import MFAConfiguration

__all__ = ["DuoAnswer", "classify", "client_for", "exchange", "health_check", "last_answer", "may_fail_open"]

logger = logging.getLogger("django_duo_oidc")

# Duo's Web SDK client secrets are 40 characters by Duo's design (DUO.md 3) and its tokens HS512, so
# PyJWT warns on every call the SDK makes (InsecureKeyLengthWarning), filling logs with a warning the
# site cannot act on. Silenced for exactly that message (a 40-byte key for SHA512), nothing wider.
warnings.filterwarnings(
    "ignore",
    message=r"The HMAC key is 40 bytes long, which is below the minimum recommended length of 64 bytes for SHA512",
    category=getattr(jwt_warnings, "InsecureKeyLengthWarning", UserWarning),
)


@dataclass(frozen=True)
class DuoAnswer:
    """What Duo answered the SDK's last call in this context: the HTTP status and the JSON body, if any."""

    status: int
    body: dict[str, Any] | None


_ERROR_FIELDS = ("stat", "code", "message", "error")
_ERROR_CODE = re.compile(r"[a-z_]{1,40}")
_last_answer: contextvars.ContextVar[DuoAnswer | None] = contextvars.ContextVar("duo_oidc_mfa_answer", default=None)


def last_answer() -> DuoAnswer | None:
    """Duo's answer to the last SDK call in this thread/context (None: no HTTP answer was received)."""
    return _last_answer.get()


class _DuoTransport:
    """The ``requests`` module as ``duo_universal.client`` sees it: ``post`` gets a default timeout and its
    answer is noted for :func:`classify`; everything else is the real module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(requests, name)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", conf.http_timeout)
        response = requests.post(url, **kwargs)  # noqa: S113 (the timeout is set just above)
        try:
            body = response.json()
        except ValueError:
            body = None
        # Only what tells the errors apart: a successful token answer holds tokens, which are not kept.
        kept = {k: body[k] for k in _ERROR_FIELDS if k in body} if isinstance(body, dict) else None
        _last_answer.set(DuoAnswer(response.status_code, kept))
        return response


def install_transport() -> None:
    """Give ``duo_universal.client`` the bounded transport (idempotent; done when this module is imported)."""
    if not isinstance(duo_client_module.requests, _DuoTransport):
        # Not a module, but it has the one function duo_universal calls on it (post).
        duo_client_module.requests = _DuoTransport()  # type: ignore[assignment]


install_transport()


def client_for(config: MFAConfiguration, redirect_uri: str) -> duo_universal.Client:
    """A ``duo_universal.Client`` for ``config``; its own checks refuse a client id that is not 20
    characters and a secret that is not 40.

    :raises ConfigurationError: no readable secret, or settings the SDK refuses.
    """
    secret = config.get_client_secret()
    options: dict[str, Any] = {}
    if config.ca_certs:
        options["duo_certs"] = config.ca_certs
    try:
        return duo_universal.Client(config.client_id, secret, config.api_host, redirect_uri, **options)
    except duo_universal.DuoException as exc:
        raise ConfigurationError(
            f"The Duo second factor is not configured correctly: {exc}", error="duo_misconfigured"
        ) from None


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: the SDK nests exceptions in ``args`` and in ``__cause__``/``__context__``."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 10:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        # urllib3's MaxRetryError keeps what went wrong in .reason, not in args.
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None))
        todo.extend(c for c in linked if isinstance(c, BaseException))
    return seen


def classify(exc: BaseException, answer: DuoAnswer | None, *, during: str) -> DuoOIDCError:
    """Turn a failed SDK call (``during`` "health check" or "token exchange") into one of this app's errors.

    Duo's answer decides when there is one; the exception only when no answer came.
    """
    body = answer.body if answer is not None and answer.body is not None else {}
    error = str(body.get("error") or body.get("message") or "")
    if (answer is not None and answer.status != 200) or body.get("stat") == "FAIL":
        status = answer.status if answer is not None else 0
        if status == 429:
            # Duo is up and refusing: whoever floods logins with a known password could cause this, so it
            # must never open the way the fail mode "open" does (see may_fail_open).
            return ProviderUnavailable(
                f"Duo is limiting this site's requests (HTTP 429, {during}). Please try again in a minute.",
                error="duo_rate_limited",
            )
        if status >= 500:
            return ProviderUnavailable(f"Duo answered the {during} with HTTP {status}.", error="duo_unavailable")
        if error == "unauthorized_request":
            # DUO.md 3: credentials of another Duo application type (not "Web SDK").
            return ConfigurationError(
                "Duo refused this site's credentials: they are not those of a Duo Web SDK application "
                "(unauthorized_request).",
                error="duo_misconfigured",
            )
        if body.get("code") == 40002 or error == "invalid_client":
            return ConfigurationError(
                "Duo refused this site's credentials (invalid_client, 40002): the client secret does not match "
                "the client id, or the client id is wrong.",
                error="duo_misconfigured",
            )
        if error == "invalid_grant" and during == "token exchange":
            return TokenEndpointError(
                "Duo refused this login's code: it was already used or has expired. Please log in again.",
                error="invalid_grant",
            )
        # Duo's own code, when it looks like one (an answer that is not Duo's is not echoed).
        code = error if _ERROR_CODE.fullmatch(error) else "no error code"
        return ConfigurationError(f"Duo refused the {during} (HTTP {status}, {code}).", error="duo_misconfigured")
    causes = _causes(exc)
    if answer is None:
        if any(isinstance(c, ssl.SSLCertVerificationError) for c in causes):
            # The certificate was refused (a wrong CA bundle or host, a TLS-inspecting proxy). A handshake
            # cut short (a reset, EOF) is an unreachable Duo like any other.
            return ConfigurationError(
                "The connection to Duo could not be trusted (TLS): check the API hostname and the CA bundle.",
                error="duo_misconfigured",
            )
        # Connection refused or reset, DNS, a timeout: Duo cannot be reached.
        return ProviderUnavailable(f"Duo could not be reached for the {during}.", error="duo_unavailable")
    # Duo answered 200 but the SDK refused what it said: the 2FA result did not verify.
    message = " ".join(str(a) for c in causes for a in c.args if isinstance(a, str))
    if during == "health check":
        # Something answered, and it was not Duo's answer (a proxy's block page trusted through ca_certs, a
        # lying server): not an unreachable Duo, so never a reason for the fail mode "open" (may_fail_open).
        return ProviderUnavailable("Duo's health check answer could not be understood.", error="duo_garbled")
    if duo_client_module.ERR_USERNAME in message:
        return InvalidClaim("preferred_username", "Duo answered for another user than the one logging in.")
    if duo_client_module.ERR_NONCE in message:
        return InvalidClaim("nonce", "Duo's answer does not belong to this login attempt.")
    return InvalidClaim("id_token", "Duo's answer could not be verified.")


def may_fail_open(exc: DuoOIDCError) -> bool:
    """Whether the fail mode "open" may let a password alone in after ``exc``: only when Duo cannot be
    reached or answers 5xx. Never for refused credentials, a TLS certificate refused, rate limiting, or a
    200 answer that is not Duo's."""
    return isinstance(exc, ProviderUnavailable) and exc.error == "duo_unavailable"


def health_check(client: duo_universal.Client) -> None:
    """Ask Duo whether it can serve this client (DUO.md 3).

    :raises ProviderUnavailable: Duo cannot be reached (the fail mode applies).
    :raises ConfigurationError: Duo refuses the credentials (never fail open on that).
    """
    _last_answer.set(None)
    try:
        client.health_check()
    except Exception as exc:  # the SDK wraps everything, and raises a bare JSONDecodeError on some bodies
        raise classify(exc, last_answer(), during="health check") from None


def exchange(client: duo_universal.Client, duo_code: str, username: str, nonce: str) -> dict[str, Any]:
    """Redeem ``duo_code`` once and return the verified 2FA result (see :mod:`.result` for what is left).

    :raises DuoOIDCError: see :func:`classify`.
    """
    _last_answer.set(None)
    try:
        claims = client.exchange_authorization_code_for_2fa_result(duo_code, username, nonce)
    except Exception as exc:  # a non-JSON error body escapes the SDK as a bare JSONDecodeError
        raise classify(exc, last_answer(), during="token exchange") from None
    if not isinstance(claims, dict):
        raise InvalidClaim("id_token", "Duo's answer could not be verified.")
    return claims
