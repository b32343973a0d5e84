"""The only module that knows which keys django-duo-oidc keeps in the session.

Pending login attempts live in mozilla-django-oidc's ``oidc_states`` map (state -> nonce, PKCE
verifier, added_on), to which we add the provider slug, the next URL and max_age. After login the
token set lives under ``duo_oidc``: server-side, never in a cookie or URL.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from django.http import HttpRequest

from .cache import shared_cache
from .conf import conf
from .core.errors import StateError
from .core.flow import TokenSet
from .core.scopes import format_scopes, parse_scopes

PENDING_KEY = "oidc_states"  # mozilla_django_oidc.utils.add_state_and_verifier_and_nonce_to_session
LOGIN_KEY = "duo_oidc"


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
    request: HttpRequest, *, provider: str, tokens: TokenSet, claims: dict[str, Any], scopes: frozenset[str]
) -> None:
    """Keep the token set of a completed login in the (server-side) session."""
    now = time.time()
    request.session[LOGIN_KEY] = {
        "provider": provider,
        "sub": claims["sub"],
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": now + tokens.expires_in if tokens.expires_in else None,
        "scopes": format_scopes(scopes),
        "auth_time": claims.get("auth_time"),
        "login_at": now,
        "checked_at": now,
    }


def save_login(request: HttpRequest, data: dict[str, Any]) -> None:
    """Store an updated login (new tokens, scopes, check time)."""
    request.session[LOGIN_KEY] = data


def login_data(request: HttpRequest) -> dict[str, Any] | None:
    """Return the stored login of this session, if any."""
    data = request.session.get(LOGIN_KEY)
    return data if isinstance(data, dict) else None


def granted_scopes(data: dict[str, Any] | None) -> frozenset[str]:
    """Return the scopes granted to the stored login (from the session, no query of its own)."""
    return parse_scopes(data.get("scopes")) if data else frozenset()
