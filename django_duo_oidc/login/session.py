"""The only module that knows which keys django-duo-oidc keeps in the session.

Pending login attempts live in mozilla-django-oidc's ``oidc_states`` map (state -> nonce, PKCE
verifier, added_on), to which we add the provider slug, the next URL and max_age. After login the
login lives under ``duo_oidc``: server-side, never in a cookie or URL, and its access and refresh
tokens sealed (:func:`~django_duo_oidc.state.encryption.seal`, authenticated encryption) under ``tokens``.
Only this module knows that form: read the tokens with :func:`access_token` and :func:`refresh_token`,
write them with :func:`with_tokens`.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from django.http import HttpRequest

from ..conf import conf
from ..core import step_up
from ..core.errors import StateError, TokenError
from ..core.flow import TokenSet
from ..core.scopes import format_scopes, parse_scopes
from ..state.cache import shared_cache
from ..state.encryption import SealedValueError, seal, unseal

PENDING_KEY = "oidc_states"  # mozilla_django_oidc.utils.add_state_and_verifier_and_nonce_to_session
LOGIN_KEY = "duo_oidc"
TOKENS_KEY = "tokens"
#: Set on a login whose access token is not for the provider's RFC 8707 resources; a renewal clears it.
RENEW_BEFORE_USE = "renew_before_use"
# Where releases before tokens were sealed kept them, in clear.
_LEGACY_TOKEN_KEYS = ("access_token", "refresh_token")


class UnreadableTokens(TokenError):
    """The session's stored tokens cannot be opened (the key that sealed them was retired, or the
    stored value was altered): the session cannot be renewed or checked, so it must end."""

    default_description = "The stored tokens of this session cannot be decrypted with the configured keys."


def annotate_pending(request: HttpRequest, state: str, **values: Any) -> None:
    """Add our fields to the pending entry mozilla's helper stored for ``state``."""
    request.session[PENDING_KEY][state].update(values)
    request.session.modified = True


def pop_pending(request: HttpRequest, state: str | None) -> dict[str, Any] | None:
    """Remove and return the pending login attempt for ``state``; save at once so it is single-use.

    Raises StateError when another request (on any worker sharing the cache) has already claimed it,
    CacheUnavailable when the cache cannot say (the entry then stays, for a retry after the outage).
    """
    pending = request.session.get(PENDING_KEY)
    if not state or not isinstance(pending, dict) or state not in pending:
        return None
    # The session is loaded and saved whole, so two requests with the same state that both load it
    # before either saves (a double-submitted callback on two workers) would both find the entry and
    # both redeem the code; the provider then refuses the second and revokes what the first got
    # (RFC 6749 section 4.1.2). An atomic add in the shared cache lets exactly one of them go on.
    claim = "duo_oidc:state-used:" + hashlib.sha256(state.encode()).hexdigest()
    if not shared_cache().add(claim, 1, timeout=conf.state_ttl):
        raise StateError("This login attempt is already being completed. Please start again if it fails.")
    entry = pending.pop(state)
    request.session.modified = True
    # Save before the slow token exchange so a replay in another request finds nothing.
    request.session.save()
    return entry if isinstance(entry, dict) else None


def store_login(
    request: HttpRequest,
    *,
    provider: str,
    tokens: TokenSet,
    claims: dict[str, Any],
    scopes: frozenset[str],
    keep_id_token: bool = False,
    renew_before_use: bool = False,
) -> None:
    """Keep the token set of a completed login in the (server-side) session, tokens sealed.

    The ID token is kept only when ``keep_id_token`` (the provider sends ``id_token_hint`` at logout).
    ``renew_before_use``: the access token is not for the row's RFC 8707 resources (the code exchange
    did not name them), so it is never handed out to call an API: the first
    ``request.oidc.access_token()`` renews it for them (:data:`RENEW_BEFORE_USE`).
    """
    now = time.time()
    data = {
        "provider": provider,
        "sub": claims["sub"],
        "expires_at": now + tokens.expires_in if tokens.expires_in else None,
        "issued_at": now,  # with expires_at, the token's lifetime (freshness.refresh_due's margin)
        "scopes": format_scopes(scopes),
        "auth_time": claims.get("auth_time"),
        "login_at": now,
        "checked_at": now,
    }
    if renew_before_use:
        data[RENEW_BEFORE_USE] = True
    request.session[LOGIN_KEY] = with_tokens(
        data,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        id_token=tokens.id_token if keep_id_token else None,
    )


def grant_step_up(request: HttpRequest, *, path: str, max_age: int, api_path: str | None = None) -> None:
    """The login just stored was asked for ``max_age``: the next request to ``path`` (and the next one to
    ``api_path``, the API a session's step-up was for) passes a requirement of that ``max_age`` (or a
    looser one) once, however long the way back took (:mod:`..core.step_up`)."""
    data = request.session.get(LOGIN_KEY)
    if isinstance(data, dict):
        step_up.grant(data, path=path, max_age=max_age, now=time.time(), api_path=api_path)
        request.session.modified = True


def take_step_up(request: HttpRequest, *, max_age: int, now: float) -> int | None:
    """Once, when this request is the one a just-completed step-up of at most ``max_age`` was for: the
    ``max_age`` that step-up met (every requirement of this request at least as loose passes). Else None."""
    data = request.session.get(LOGIN_KEY)
    if not isinstance(data, dict):
        return None
    # Claimed in the shared cache too: two requests that loaded the session before either saved it.
    met = step_up.take(data, path=request.path, max_age=max_age, now=now, claims=shared_cache())
    if met is not None:
        request.session.modified = True
    return met


def save_login(request: HttpRequest, data: dict[str, Any]) -> None:
    """Store an updated login (new tokens through :func:`with_tokens`, scopes, check time)."""
    request.session[LOGIN_KEY] = data


def login_data(request: HttpRequest) -> dict[str, Any] | None:
    """Return the stored login of this session, if any (its tokens sealed: see :func:`access_token`)."""
    data = request.session.get(LOGIN_KEY)
    if not isinstance(data, dict):
        return None
    if any(key in data for key in _LEGACY_TOKEN_KEYS):
        # A login stored before tokens were sealed: seal them now, so they leave the store in clear.
        legacy = dict(data)
        access, refresh = (legacy.pop(key, None) for key in _LEGACY_TOKEN_KEYS)
        data = with_tokens(legacy, access_token=str(access or ""), refresh_token=refresh)
        request.session[LOGIN_KEY] = data
    return data


_KEEP: Any = object()


def with_tokens(
    data: dict[str, Any], *, access_token: str, refresh_token: str | None, id_token: str | None = _KEEP
) -> dict[str, Any]:
    """Return a copy of the login ``data`` holding these tokens (sealed).

    ``id_token`` left out keeps the one ``data`` holds, if any (a refresh keeps the login's ID token
    for ``id_token_hint``: RP-Initiated Logout 1.0 section 2 takes one "previously issued").
    """
    if id_token is _KEEP:
        try:
            id_token = _tokens(data).get("id_token") if TOKENS_KEY in data else None
        except UnreadableTokens:
            id_token = None
    sealed: dict[str, Any] = {"access_token": access_token, "refresh_token": refresh_token}
    if isinstance(id_token, str) and id_token:
        sealed["id_token"] = id_token
    return {**data, TOKENS_KEY: seal(sealed)}


def _tokens(data: dict[str, Any]) -> dict[str, Any]:
    try:
        tokens = unseal(data.get(TOKENS_KEY))
    except SealedValueError as exc:
        raise UnreadableTokens() from exc
    if not isinstance(tokens, dict) or not isinstance(tokens.get("access_token"), str):
        raise UnreadableTokens()
    return tokens


def access_token(data: dict[str, Any]) -> str:
    """Return the stored login's access token.

    :raises UnreadableTokens: it cannot be decrypted (a ``TokenError``: the session must end).
    """
    return str(_tokens(data)["access_token"])


def refresh_token(data: dict[str, Any]) -> str | None:
    """Return the stored login's refresh token, None when the provider gave none.

    :raises UnreadableTokens: it cannot be decrypted (a ``TokenError``: the session must end).
    """
    token = _tokens(data).get("refresh_token")
    return token if isinstance(token, str) and token else None


def id_token(data: dict[str, Any]) -> str | None:
    """Return the stored login's ID token, None when none was kept (see :func:`store_login`).

    :raises UnreadableTokens: it cannot be decrypted (a ``TokenError``: the session must end).
    """
    token = _tokens(data).get("id_token")
    return token if isinstance(token, str) and token else None


def granted_scopes(data: dict[str, Any] | None) -> frozenset[str]:
    """Return the scopes granted to the stored login (from the session, no query of its own)."""
    return parse_scopes(data.get("scopes")) if data else frozenset()
