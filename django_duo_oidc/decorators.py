"""``@scopes_required``: the view decorator, shaped like ``django.contrib.auth``'s ``permission_required``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse

from .policy import Requirement, check

V = TypeVar("V", bound=Callable[..., Any])


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
        if iscoroutinefunction(view):

            @wraps(view)
            async def _async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                refused = await sync_to_async(check)(request, requirement, view_name=name, **options)
                if refused is not None:
                    return refused
                return await view(request, *args, **kwargs)

            wrapper: Any = _async_view
        else:

            @wraps(view)
            def _view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                refused = check(request, requirement, view_name=name, **options)
                if refused is not None:
                    return refused
                return view(request, *args, **kwargs)

            wrapper = _view
        # Like login_required's attributes: the view carries its own requirement.
        wrapper.required_scopes = requirement.scopes
        wrapper.scope_requirement = requirement
        return wrapper  # type: ignore[no-any-return]

    return decorator
