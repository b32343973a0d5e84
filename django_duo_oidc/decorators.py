"""View decorators: ``@scopes_required`` (shaped like ``django.contrib.auth``'s ``permission_required``)
and ``@bearer_auth`` (the view answers to bearer access tokens, RFC 6750)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .bearer import authenticate, authenticate_or_refuse
from .core.scopes import Requirement
from .policy import check

V = TypeVar("V", bound=Callable[..., Any])


def _guarded(view: Callable[..., Any], refuse: Callable[[HttpRequest], HttpResponse | None]) -> Any:
    """Wrap a sync or async view so that ``refuse(request)`` runs first; a response it returns wins."""
    if iscoroutinefunction(view):

        @wraps(view)
        async def _async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            refused = await sync_to_async(refuse)(request)
            if refused is not None:
                return refused
            return await view(request, *args, **kwargs)

        return _async_view

    @wraps(view)
    def _view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refused = refuse(request)
        if refused is not None:
            return refused
        return view(request, *args, **kwargs)

    return _view


def scopes_required(
    *scopes: str | Iterable[str],
    any_of: bool = False,
    max_age: int | None = None,
    login_url: str | None = None,
    redirect_field_name: str = "next",
    raise_exception: bool = False,
) -> Callable[[V], V]:
    """Require the provider to have granted ``scopes`` to this request (all of them, or one with ``any_of``).

    Anonymous users are redirected to ``login_url`` (default ``settings.LOGIN_URL``) with ``next``, or
    get a 403 with ``raise_exception``; logged-in users without the scopes get a 403 page naming them.
    ``max_age`` (seconds) also requires a recent authentication at the provider (step-up). Works on
    sync and async views.
    """
    requirement = Requirement.of(scopes, any_of=any_of, max_age=max_age)
    options: dict[str, Any] = {
        "login_url": login_url,
        "redirect_field_name": redirect_field_name,
        "raise_exception": raise_exception,
    }

    def decorator(view: V) -> V:
        name = f"{view.__module__}.{view.__qualname__}"
        # Below @bearer_auth or above it, a bearer view's requirement is judged on the token.
        bearer = getattr(view, "duo_oidc_bearer", False)

        def judge(request: HttpRequest) -> HttpResponse | None:
            if bearer:
                authenticate(request)
            return check(request, requirement, view_name=name, **options)

        wrapper = _guarded(view, judge)
        # Like login_required's attributes: the view carries its own requirement.
        wrapper.required_scopes = requirement.scopes
        wrapper.scope_requirement = requirement
        return wrapper  # type: ignore[no-any-return]

    return decorator


def bearer_auth(view: V) -> V:
    """Make a view a resource server endpoint: it answers to ``Authorization: Bearer <token>`` only.

    No token: 401 with a ``Bearer`` challenge. A malformed header or a token in the URL: 400
    ``invalid_request``. A token that cannot be trusted: 401 ``invalid_token``. Inside the view,
    ``request.oidc`` describes the token's grant and ``request.user`` is its linked user (or anonymous,
    for a client-credentials token). Combine with ``@scopes_required`` in either order. The view is
    CSRF-exempt: a header the browser never sends by itself cannot be forged cross-site.
    """
    wrapper = _guarded(view, authenticate_or_refuse)
    wrapper.duo_oidc_bearer = True
    # Judged by its token, never by a session: also behind Django's LoginRequiredMiddleware.
    return login_not_required(csrf_exempt(wrapper))  # type: ignore[no-any-return]
