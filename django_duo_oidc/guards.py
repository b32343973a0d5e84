"""Run a check before a view, sync or async: the one wrapper under the decorators and the mixins.

May import: Django and asgiref only.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse

__all__ = ["guarded", "guarded_dispatch"]


def _checked(
    call: Callable[..., Any], refuse: Callable[[HttpRequest], HttpResponse | None], *, is_async: bool
) -> Callable[..., Any]:
    """``call``, with ``refuse(request)`` run first (outside the event loop when async); a response wins."""
    if is_async:

        async def _async_call(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            refused = await sync_to_async(refuse)(request)
            if refused is not None:
                return refused
            return await call(request, *args, **kwargs)  # type: ignore[no-any-return]

        return _async_call

    def _call(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refused = refuse(request)
        if refused is not None:
            return refused
        return call(request, *args, **kwargs)  # type: ignore[no-any-return]

    return _call


def guarded(view: Callable[..., Any], refuse: Callable[[HttpRequest], HttpResponse | None]) -> Any:
    """Wrap a sync or async view so that ``refuse(request)`` runs first; a response it returns wins."""
    return wraps(view)(_checked(view, refuse, is_async=iscoroutinefunction(view)))


def guarded_dispatch(
    view: Any,
    mixin: type[Any],
    refuse: Callable[[HttpRequest], HttpResponse | None],
    request: HttpRequest,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Run ``refuse(request)`` and then the next ``dispatch`` after ``mixin``; a response it returns wins.

    On an async view (``async def get``) dispatch must return a coroutine, and ``refuse`` (which reads
    the session, the user and perhaps the provider) must run outside the event loop: through
    ``sync_to_async``, as ``@scopes_required`` does for async function views.
    """
    following = super(mixin, view).dispatch
    return _checked(following, refuse, is_async=getattr(view, "view_is_async", False))(request, *args, **kwargs)
