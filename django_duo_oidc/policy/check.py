"""Turn a scope requirement into a response: the one place the decorator, the mixin and the
policy middleware share (shaped like ``django.contrib.auth``'s ``AccessMixin``).

- anonymous: redirect to login with ``next`` (or 403 with ``raise_exception``);
- logged in without the scopes: a 403 page naming them, with a "request access" link;
- logged in too long ago for ``max_age``: back through the provider with ``prompt=login`` (step-up);
- the grant could not be re-checked and ``ON_PROVIDER_DOWN`` is "deny": a 503 page.

:func:`check_bearer` gives a bearer request's RFC 6750 answers; :func:`check_session_api` the JSON
answers of an API to a session (Django Ninja's ``DuoBearer`` judges the session the next auth admits).
"""

from __future__ import annotations

import contextlib
import logging
from typing import cast
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render, resolve_url
from django.urls import NoReverseMatch, reverse
from django.utils.encoding import escape_uri_path

from .. import signals
from ..conf import conf
from ..core.context import RequestContext
from ..core.errors import InsufficientScope, ProviderUnavailable, TokenError
from ..core.scopes import Requirement, format_scopes
from ..login.context import OIDCContext
from ..login.views import API_PATH_FIELD
from ..request import context_of
from ..resource import answers
from ..resource.context import BearerContext

logger = logging.getLogger("django_duo_oidc")


def check(
    request: HttpRequest,
    requirement: Requirement,
    *,
    view_name: str = "",
    login_url: str | None = None,
    redirect_field_name: str = "next",
    raise_exception: bool = False,
) -> HttpResponse | None:
    """Return None when ``request`` meets ``requirement``, else the response that refuses it."""
    if getattr(getattr(request, "oidc", None), "mode", None) == "bearer":
        return check_bearer(request, requirement, view_name=view_name)
    if not request.user.is_authenticated:
        if raise_exception:
            raise PermissionDenied
        return redirect_to_login(
            request.get_full_path(), resolve_url(login_url or settings.LOGIN_URL), redirect_field_name
        )
    oidc = context_of(request)
    try:
        oidc.require_scopes(requirement.scopes, any_of=requirement.any_of, deny_stale=conf.on_provider_down == "deny")
    except ProviderUnavailable as exc:
        logger.warning("Refused %s to user %s: %s", view_name or request.path, request.user.pk, exc.description)
        return render(request, conf.unavailable_template, {"message": exc.description}, status=503)
    except InsufficientScope as exc:
        return forbidden(request, exc, view_name=view_name)
    if requirement.max_age is not None and not oidc.authenticated_within(requirement.max_age):
        return step_up(request, requirement.max_age, provider=oidc.provider, redirect_field_name=redirect_field_name)
    return None


def check_bearer(request: HttpRequest, requirement: Requirement, *, view_name: str = "") -> HttpResponse | None:
    """The bearer twin of :func:`check`: RFC 6750 answers instead of redirects and pages."""
    oidc = cast(BearerContext, context_of(request))  # bearer requests only: authenticate() set it
    if oidc.error is not None or oidc.grant is None:
        return answers.error_response(request, oidc.error)
    try:
        oidc.require_scopes(requirement.scopes, any_of=requirement.any_of, deny_stale=conf.on_provider_down == "deny")
    except ProviderUnavailable as exc:
        return answers.error_response(request, exc)
    except InsufficientScope as exc:
        return answers.refuse_scope(request, exc, view_name=view_name)
    if requirement.max_age is not None and not oidc.authenticated_within(requirement.max_age):
        logger.info(
            "Bearer token for %s needs a more recent authentication (max_age %s)", request.path, requirement.max_age
        )
        return answers.error_response(request, TokenError(), max_age=requirement.max_age)
    return None


def check_session_api(request: HttpRequest, requirement: Requirement, *, view_name: str = "") -> JsonResponse | None:
    """Judge a signed-in session's grant for an API: None when it meets ``requirement``, else a JSON refusal.

    For APIs that also admit sessions (an ``auth`` list whose next entry is Django Ninja's
    ``django_auth``): the scopes an operation declares bind the session too, as ``HasScopes`` binds
    it in DRF. The grant is the session's (``request.oidc``); a session that did not log in through a
    provider (a password login) has none. Answers, all ``Cache-Control: no-store``:

    - 403 ``insufficient_scope`` naming the required ``scope`` (logged, ``scope_denied`` sent);
    - 403 ``insufficient_user_authentication`` with ``max_age`` and ``step_up_url``, since an API
      cannot redirect (:func:`step_up_body`);
    - 503 ``temporarily_unavailable`` with ``Retry-After`` when the grant could not be re-checked and
      ``ON_PROVIDER_DOWN`` is ``"deny"``.
    """
    found: RequestContext | None = getattr(request, "oidc", None)
    oidc = found if found is not None and getattr(found, "mode", None) == "session" else OIDCContext(request)
    headers = {"Cache-Control": "no-store"}
    who = view_name or request.path
    try:
        oidc.require_scopes(requirement.scopes, any_of=requirement.any_of, deny_stale=conf.on_provider_down == "deny")
    except ProviderUnavailable as exc:
        logger.warning("Refused %s to user %s: %s", who, request.user.pk, exc.description)
        headers["Retry-After"] = str(max(1, int(conf.provider_down_backoff)))
        body: dict[str, object] = {"error": "temporarily_unavailable", "error_description": exc.description}
        return JsonResponse(body, status=503, headers=headers)
    except InsufficientScope as exc:
        logger.warning("Scope denied: user=%s view=%s missing=%s", request.user.pk, who, format_scopes(exc.missing))
        signals.send_scope_denied(request, exc, view_name=view_name)
        body = {
            "error": "insufficient_scope",
            "error_description": "The identity provider has not granted the scopes this resource requires.",
            "scope": format_scopes(exc.required),
        }
        return JsonResponse(body, status=403, headers=headers)
    if requirement.max_age is not None and not oidc.authenticated_within(requirement.max_age):
        logger.info(
            "%s needs a more recent authentication of user %s (max_age %s)", who, request.user.pk, requirement.max_age
        )
        body = step_up_body(request, requirement.max_age, provider=oidc.provider)
        return JsonResponse(body, status=403, headers=headers)
    return None


def step_up_body(request: HttpRequest, max_age: int, *, provider: str | None) -> dict[str, object]:
    """The body of a session API's 403 ``insufficient_user_authentication`` (``check_session_api``, DRF's
    ``HasScopes``): ``error``, ``error_description``, ``max_age`` and ``step_up_url``.

    ``step_up_url`` is the login view with ``max_age`` and ``prompt=login`` (OIDC Core 3.1.2.1), the
    session's ``provider``, and ``api_path``: this API's path. The page that called the API sends the
    browser there with its own ``next`` added (``step_up_url + "&next=" + encodeURIComponent(page)``);
    after the step-up the browser comes back to ``next``, and the page's retried call of this API passes
    once within 30 s, however small ``max_age`` is (:mod:`django_duo_oidc.core.step_up`). Without the
    login URLs in the URLconf there is no ``step_up_url``; the rest still says what is needed.
    """
    body: dict[str, object] = {
        "error": "insufficient_user_authentication",
        "error_description": "A more recent authentication is required.",
        "max_age": max_age,
    }
    params = {"max_age": str(max_age), "prompt": "login"}
    if provider:
        params["provider"] = provider
    params[API_PATH_FIELD] = escape_uri_path(request.path)
    with contextlib.suppress(NoReverseMatch):
        body["step_up_url"] = reverse("duo_oidc:login") + "?" + urlencode(params)
    return body


def forbidden(request: HttpRequest, exc: InsufficientScope, *, view_name: str = "") -> HttpResponse:
    """Log and signal the denial, and render the 403 page naming the missing scopes."""
    logger.warning(
        "Scope denied: user=%s view=%s missing=%s",
        request.user.pk,
        view_name or request.path,
        format_scopes(exc.missing),
    )
    signals.send_scope_denied(request, exc, view_name=view_name)
    request_access_url = None
    provider = context_of(request).provider
    if conf.request_access and provider:
        params = {"provider": provider, "scope": format_scopes(exc.missing), "next": request.get_full_path()}
        request_access_url = reverse("duo_oidc:login") + "?" + urlencode(params)
    context = {
        "missing": sorted(exc.missing),
        "granted": sorted(exc.granted),
        "request_access_url": request_access_url,
    }
    return render(request, conf.forbidden_template, context, status=403)


def step_up(
    request: HttpRequest, max_age: int, *, provider: str | None, redirect_field_name: str = "next"
) -> HttpResponse:
    """Send the user back through the provider to authenticate again (Duo's MFA prompt), with max_age.

    The callback then checks ``auth_time`` against ``max_age`` (OIDC Core 3.1.2.1 / 3.1.3.7 step 13).
    """
    params = {"max_age": str(max_age), "prompt": "login", redirect_field_name: request.get_full_path()}
    if provider:
        params["provider"] = provider
    logger.info("Step-up authentication for user %s on %s", request.user.pk, request.path)
    return HttpResponseRedirect(reverse("duo_oidc:login") + "?" + urlencode(params))
