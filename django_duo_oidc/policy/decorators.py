"""``@scopes_required``, shaped like ``django.contrib.auth``'s ``permission_required``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.http import HttpRequest, HttpResponse

from ..core.scopes import Requirement
from ..guards import ViewDecorator, guarded, view_decorator
from ..resource.context import authenticate
from .check import check


def scopes_required(
    *scopes: str | Iterable[str],
    any_of: bool = False,
    max_age: int | None = None,
    login_url: str | None = None,
    redirect_field_name: str = "next",
    raise_exception: bool = False,
) -> ViewDecorator:
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

    def decorator(view: Callable[..., Any]) -> Any:
        name = f"{view.__module__}.{view.__qualname__}"
        # Below @bearer_auth or above it, a bearer view's requirement is judged on the token.
        bearer = getattr(view, "duo_oidc_bearer", False)

        def judge(request: HttpRequest) -> HttpResponse | None:
            if bearer:
                authenticate(request)
            return check(request, requirement, view_name=name, **options)

        # Like login_required's attributes: the view carries its own requirement.
        return guarded(view, judge, required_scopes=requirement.scopes, scope_requirement=requirement)

    return view_decorator(decorator)
