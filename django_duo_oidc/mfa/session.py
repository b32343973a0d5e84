"""The only module that knows the second factor's session keys.

- ``duo_oidc_mfa_pending``: one pending attempt per browser session, written after a correct password
  (or by a step-up) and before Duo: user pk, authentication backend, the username sent to Duo, state,
  nonce, next URL, the login page, when it started, the user's session auth hash (so a password change
  in between ends the attempt) and the purpose ("login" or "step-up"). It is NOT a login: the session
  has no authenticated user until Duo says allow.
- ``duo_oidc_mfa``: the "Duo passed" marker of an authenticated session: the user pk, how ("duo",
  "remembered", "fail_open") and, for "duo", the time of the Duo authentication (step-up ages).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

from ..core import step_up
from ..core.errors import StateError
from ..state.cache import shared_cache

__all__ = [
    "PASSED_KEY",
    "PENDING_KEY",
    "PENDING_TTL",
    "duo_auth_time",
    "grant_step_up",
    "mark_passed",
    "passed_marker",
    "pop_pending",
    "take_step_up",
]

PENDING_KEY = "duo_oidc_mfa_pending"
PASSED_KEY = "duo_oidc_mfa"
# How long the prompt may take, from the password to the callback (Duo's own request JWT lives 300 s).
PENDING_TTL = 300
# The request attribute that says this request took Duo's step-up ticket (see take_step_up).
_STEP_UP_MET = "_duo_oidc_duo_step_up_met"


def store_pending(request: HttpRequest, **values: Any) -> None:
    """Keep the attempt (replacing any earlier one of this session), stamped with the time."""
    request.session[PENDING_KEY] = {**values, "started_at": time.time()}


def pop_pending(request: HttpRequest, state: str | None) -> dict[str, Any]:
    """Remove and return this session's pending attempt when ``state`` is its state; single-use.

    :raises StateError: no attempt (``error="state_unknown"``), another state (a callback meant for
        another session), already claimed by another request (``"state_replayed"``), or too old
        (``"state_expired"``).
    :raises CacheUnavailable: the shared cache cannot say whether the state was used (nothing is consumed).
    """
    pending = request.session.get(PENDING_KEY)
    if not isinstance(pending, dict) or not isinstance(pending.get("state"), str):
        raise StateError("No Duo login is waiting in this browser. Please log in again.", error="state_unknown")
    if not state or not constant_time_compare(state, pending["state"]):
        raise StateError(
            "This Duo answer does not belong to the login waiting in this browser. Please log in again.",
            error="state_unknown",
        )
    # Two requests with the same state that both load the session before either saves it would both find
    # the attempt: an atomic add in the shared cache lets exactly one of them go on (as login.session does).
    claim = "duo_oidc:mfa-state-used:" + hashlib.sha256(state.encode()).hexdigest()
    if not shared_cache().add(claim, 1, timeout=PENDING_TTL + 60):
        raise StateError("This Duo answer was already used. Please log in again.", error="state_replayed")
    del request.session[PENDING_KEY]
    request.session.save()  # before the slow code exchange: a replay in another request finds nothing
    started = pending.get("started_at")
    if isinstance(started, bool) or not isinstance(started, int | float) or time.time() - started > PENDING_TTL:
        raise StateError("This Duo login took too long. Please log in again.", error="state_expired")
    return pending


def mark_passed(request: HttpRequest, user_pk: str, *, via: str, auth_time: float | None, factor: str = "") -> None:
    """Mark the (logged-in) session as having passed the second factor."""
    request.session[PASSED_KEY] = {"user": user_pk, "via": via, "auth_time": auth_time, "factor": factor}


def grant_step_up(request: HttpRequest, *, path: str) -> None:
    """Duo's step-up prompt just passed for the page at ``path``: its next request passes any
    ``max_age`` once, however long the way back took (:mod:`..core.step_up`)."""
    marker = passed_marker(request)
    if marker is not None:
        step_up.grant(marker, path=path, max_age=None, now=time.time())
        request.session.modified = True


def take_step_up(request: HttpRequest, *, max_age: int, now: float) -> bool:
    """True when this request is the one a just-passed Duo step-up was for.

    The first check of the request takes the ticket; every later check of the same request (stacked
    ``@duo_required``, a mixin under a decorator) sees the same answer, as ``request.oidc`` remembers
    the provider's ticket. The next request gets nothing from it.
    """
    if getattr(request, _STEP_UP_MET, False):
        return True
    met = step_up.take(passed_marker(request), path=request.path, max_age=max_age, now=now, claims=shared_cache())
    if met is None:
        return False
    request.session.modified = True
    setattr(request, _STEP_UP_MET, True)
    return True


def passed_marker(request: HttpRequest) -> dict[str, Any] | None:
    """The session's "Duo passed" marker, if it is for the session's user."""
    marker = request.session.get(PASSED_KEY)
    if not isinstance(marker, dict):
        return None
    user_id = request.session.get(SESSION_KEY)
    if user_id is None or str(marker.get("user")) != str(user_id):
        return None
    return marker


def duo_auth_time(request: HttpRequest) -> float | None:
    """When this session's user last authenticated at Duo (None: not through Duo, or remembered/fail-open)."""
    marker = passed_marker(request)
    if marker is None or marker.get("via") != "duo":
        return None
    value = marker.get("auth_time")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
