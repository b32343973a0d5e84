"""``@duo_required(max_age=...)`` and ``DuoRequiredMixin``: a view that needs a recent Duo authentication.

Shaped like ``@scopes_required(max_age=...)``: an anonymous user goes to the login page; a logged-in user
whose session has not passed Duo's prompt itself (a remembered browser or a fail-open login does not
count), or passed it more than ``max_age`` seconds ago, goes through Duo again (step-up,
``duo_oidc:mfa-step-up``) and comes back. Works on sync and async views.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, overload
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.mixins import AccessMixin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.urls import reverse

from ..guards import ViewDecorator, guarded, guarded_dispatch, view_decorator
from .session import duo_auth_time, take_step_up

__all__ = ["DuoRequiredMixin", "duo_required", "refuse_without_duo"]

P = ParamSpec("P")
R = TypeVar("R")


def refuse_without_duo(
    request: HttpRequest,
    *,
    max_age: int | None,
    login_url: str | None = None,
    redirect_field_name: str = "next",
    now: float | None = None,
) -> HttpResponse | None:
    """None when the session passed Duo (within ``max_age`` seconds, if given), else where to go."""
    if not request.user.is_authenticated:
        return redirect_to_login(
            request.get_full_path(), resolve_url(login_url or settings.LOGIN_URL), redirect_field_name
        )
    auth_time = duo_auth_time(request)
    now = time.time() if now is None else now
    if auth_time is not None and (max_age is None or now - auth_time <= max_age):
        return None
    if max_age is not None and auth_time is not None and take_step_up(request, max_age=max_age, now=now):
        return None  # Duo's step-up for this very page just passed (core.step_up)
    return HttpResponseRedirect(reverse("duo_oidc:mfa-step-up") + "?" + urlencode({"next": request.get_full_path()}))


@overload
def duo_required(
    view: None = None, *, max_age: int | None = None, login_url: str | None = None, redirect_field_name: str = "next"
) -> ViewDecorator: ...


@overload
def duo_required(
    view: Callable[P, Coroutine[Any, Any, R]],
    *,
    max_age: int | None = None,
    login_url: str | None = None,
    redirect_field_name: str = "next",
) -> Callable[P, Coroutine[object, object, R | HttpResponse]]: ...


@overload
def duo_required(
    view: Callable[P, R], *, max_age: int | None = None, login_url: str | None = None, redirect_field_name: str = "next"
) -> Callable[P, R | HttpResponse]: ...


def duo_required(
    view: Callable[..., Any] | None = None,
    *,
    max_age: int | None = None,
    login_url: str | None = None,
    redirect_field_name: str = "next",
) -> Any:
    """Require this session to have passed Duo's prompt, within ``max_age`` seconds when given.

    ``@duo_required`` and ``@duo_required(max_age=300)`` both work.
    """
    if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0):
        raise ValueError("duo_required(max_age=...) takes a number of seconds (an int >= 0).")

    def decorator(function: Callable[..., Any]) -> Any:
        def refuse(request: HttpRequest) -> HttpResponse | None:
            return refuse_without_duo(
                request, max_age=max_age, login_url=login_url, redirect_field_name=redirect_field_name
            )

        return guarded(function, refuse, duo_required_max_age=max_age)

    return decorator(view) if view is not None else view_decorator(decorator)


class DuoRequiredMixin(AccessMixin):
    """The class-based twin of :func:`duo_required`: set ``duo_max_age`` (seconds, None: any Duo pass)."""

    duo_max_age: int | None = None

    def check_duo(self, request: HttpRequest) -> HttpResponse | None:
        return refuse_without_duo(
            request,
            max_age=self.duo_max_age,
            login_url=self.get_login_url() if self.login_url else None,
            redirect_field_name=self.get_redirect_field_name(),
        )

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return guarded_dispatch(self, DuoRequiredMixin, self.check_duo, request, args, kwargs)
