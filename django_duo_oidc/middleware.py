"""DuoOIDCMiddleware: ``request.oidc`` on every request, the grant kept fresh, the scope policy
for views you don't own (``DUO_OIDC["SCOPE_POLICY"]`` and the admin's scope rules), and the second
factor enforced: a password session of a user who must use Duo and never passed it is logged out
(:func:`django_duo_oidc.mfa.enforce.enforce_second_factor`, first thing for a request with a session cookie).

Whether a session's grant must be fresh is decided by the view that will run, never by the request's
headers: only a view that answers to bearer tokens alone skips it (``resource.is_token_only_view``).
It is decided in ``__call__``, before any middleware's ``process_view`` judges ``request.user``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve

from .conf import conf
from .core.errors import ProviderUnavailable, ReauthenticationRequired
from .freshness.revalidation import end_if_provider_gone, ensure_fresh, is_due
from .login import session
from .login.context import OIDCContext
from .login.renewal import login_again
from .mfa.enforce import enforce_second_factor
from .policy.check import check
from .policy.rules import policy_rules
from .request import attach
from .resource import answers
from .resource.context import authenticate
from .resource.metadata import is_bearer_view, is_token_only_view
from .sessions import rekey_session


def freshen(request: HttpRequest) -> None:
    """Revalidate the session's grant if it is due, unless the view that will run answers to tokens only.

    Runs in ``__call__``, before any ``process_view`` (Django's ``LoginRequiredMiddleware``, say, or a
    permission middleware listed before this one) can judge a grant that was revoked. Whether the check
    applies is decided by the view the URL resolves to, never by the request's headers: an
    ``Authorization: Bearer junk`` header must not turn it off. The URL is resolved only when the grant
    is due (once per freshness window); within the window this costs a read of the loaded session.

    First, whatever the view, a session whose provider is no longer enabled ends
    (:func:`~django_duo_oidc.freshness.revalidation.end_if_provider_gone`: this process's list of enabled
    providers, no query while it is younger than 5 s).
    """
    data = session.login_data(request)
    if data is None or end_if_provider_gone(request, data) or not is_due(data, time.time()):
        return
    try:
        view = resolve(request.path_info, urlconf=getattr(request, "urlconf", None)).func
    except Resolver404:
        view = None  # no view: nothing answers to tokens only here
    if view is None or not is_token_only_view(view):
        ensure_fresh(request)


def _session_key(request: HttpRequest) -> str | None:
    """The request's session key as it stands: an attribute read, no store access and no query.

    A key that becomes None (an unknown cookie, a flushed session) needs nothing: logouts drop their
    row through ``user_logged_out``. Only a key replaced by another one is followed.
    """
    return getattr(getattr(request, "session", None), "session_key", None)


class DuoOIDCMiddleware:
    """Set ``request.oidc``, revalidate a due grant, and apply the scope policy.

    Goes after ``AuthenticationMiddleware``. A request without a session cookie is not touched
    beyond attaching the (lazy) context. A due grant is revalidated in ``__call__`` (see :func:`freshen`);
    within the freshness window that costs no query and no provider call. When the view changed the
    session key (``cycle_key()``, ``update_session_auth_hash``), the session index follows it
    (:func:`~django_duo_oidc.sessions.rekey_session`): two attribute reads on every other request.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.async_mode:
            return self.__acall__(request)
        attach(request, OIDCContext(request))
        key = _session_key(request)
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            refused = enforce_second_factor(request)
            if refused is not None:
                return refused
            freshen(request)
        response = self.get_response(request)
        if key is not None and _session_key(request) not in (key, None):
            rekey_session(request, key)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        attach(request, OIDCContext(request))
        key = _session_key(request)
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            refused = await sync_to_async(enforce_second_factor)(request)
            if refused is not None:
                return refused
            await sync_to_async(freshen)(request)
        # Django calls __acall__ only in an async chain, whose get_response is a coroutine function.
        response = await cast(Awaitable[HttpResponse], self.get_response(request))
        if key is not None and _session_key(request) not in (key, None):
            await sync_to_async(rekey_session)(request, key)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """Answer what ``request.oidc.access_token()`` (and the outbound user-token auth) raise out of a
        session view: back through login when the grant cannot be renewed, a 503 page while the provider
        cannot renew it. Bearer requests are left alone (handing out a token there is a programming error)."""
        if getattr(getattr(request, "oidc", None), "mode", None) != "session":
            return None
        if isinstance(exception, ReauthenticationRequired):
            return login_again(request, exception)
        if isinstance(exception, ProviderUnavailable):
            return render(request, conf.unavailable_template, {"message": exception.description}, status=503)
        return None

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        try:
            rules = policy_rules()
        except ProviderUnavailable as exc:  # no view runs unjudged: a 503, as during a provider outage
            if is_bearer_view(view_func):
                return answers.error_response(request, exc)
            return render(request, conf.unavailable_template, {"message": exc.description}, status=503)
        if not rules:
            return None
        match = request.resolver_match
        if match is not None and "duo_oidc" in match.namespaces:
            return None  # never guard the login flow itself
        url_name = match.view_name if match is not None else ""
        for prefix, name, requirement in rules:
            # A prefix is matched with and without the script prefix (SCRIPT_NAME): fail closed either way.
            matched = prefix and (request.path.startswith(prefix) or request.path_info.startswith(prefix))
            if matched or (name and name == url_name):
                if is_bearer_view(view_func):
                    # Judged as the view itself will authenticate: a token-only view by its token (or its
                    # absence); a DRF view that also takes sessions by a token when one is sent, else by the
                    # session (token_only=False leaves a request without bearer credentials untouched).
                    authenticate(request, token_only=is_token_only_view(view_func))
                refused = check(request, requirement, view_name=url_name or request.path)
                if refused is not None:
                    return refused
        return None
