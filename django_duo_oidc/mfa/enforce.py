"""Defence in depth: a session logged in by a password (any path: another ``LoginView``, an admin site
with its own login, ``client.login``, a custom view calling ``auth.login``) for a user who must use Duo,
and that never passed Duo, is logged out before any view sees it.

Called by ``DuoOIDCMiddleware`` on every request that carries a session cookie. The normal paths cost no
query: no logged-in user, a login through Duo SSO (the OIDC backend's name AND the OIDC login its callback
stored: the name alone is written by any ``auth.login(..., backend=...)``), or a session marked as past the
second factor are dict lookups on the already loaded session. Only a password session without the marker
(a user exempt from Duo, or one that went around it) reads the configuration (memorised per process for
5 s) and the user.
"""

from __future__ import annotations

import logging

from django.contrib import auth
from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY
from django.db import Error as DBError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .. import signals
from ..conf import conf
from ..login.session import login_data
from .session import passed_marker
from .who import active_config, must_use_duo

__all__ = ["SSO_BACKENDS", "enforce_second_factor"]

logger = logging.getLogger("django_duo_oidc")

# Logins through Duo Single Sign-On carry Duo's own MFA (the SSO application's policy). The backend's name
# alone proves nothing (any ``auth.login(request, user, backend=...)`` call writes it): only a session that
# also holds the OIDC login the callback stored with it (``login.session.store_login``) is one.
SSO_BACKENDS = frozenset({"django_duo_oidc.backends.DuoOIDCBackend", "django_duo_oidc.login.backend.DuoOIDCBackend"})


def enforce_second_factor(request: HttpRequest) -> HttpResponse | None:
    """Log out a password session that skipped Duo (the request goes on, anonymous); answer 503 when the
    database cannot say whether the session's user must use Duo; else None."""
    store = getattr(request, "session", None)
    if store is None:
        return None
    user_id = store.get(SESSION_KEY)
    if user_id is None:
        return None
    backend = store.get(BACKEND_SESSION_KEY)
    if (backend in SSO_BACKENDS and login_data(request) is not None) or passed_marker(request) is not None:
        return None
    try:
        config = active_config()
        if config is None:
            return None
        # request.user is AuthenticationMiddleware's (lazy, shared with the view); with the middleware in
        # the wrong order (check duo_oidc.E003) the session's user is loaded here rather than not judged.
        user = getattr(request, "user", None) or auth.get_user(request)
        if not must_use_duo(user, config):
            return None
    except DBError as exc:
        # Fail closed: the session is not let through unjudged, and the answer is a page, not a 500.
        return database_unavailable(request, exc, "A password session could not be checked for the second factor")
    logger.warning(
        "Ended a session of user %s: logged in by %s without Duo's second factor, which this user must pass",
        user.pk,
        backend,
    )
    signals.second_factor_failed.send(
        sender=enforce_second_factor,
        request=request,
        user=user,
        purpose="login",
        reason="no_second_factor",
        description="A password login without Duo's second factor was ended.",
        factor="",
        device="",
    )
    auth.logout(request)
    return None


def database_unavailable(request: HttpRequest, exc: DBError, what_failed: str) -> HttpResponse:
    """The 503 page for a request the database failed: nobody is logged in or let through on it. Logs
    ``what_failed`` and the error's class only (the driver's message may name hosts and users)."""
    logger.error("%s: %s", what_failed, type(exc).__name__)
    message = "This site cannot check your login right now. Please try again in a moment."
    return render(request, conf.unavailable_template, {"message": message}, status=503)
