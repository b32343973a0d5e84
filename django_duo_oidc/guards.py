"""Run a check before a view, sync or async: the one wrapper under the decorators and the mixins.

May import: Django and asgiref only.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any, ParamSpec, Protocol, TypeVar, cast, overload

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse

__all__ = ["ViewDecorator", "guarded", "guarded_dispatch", "view_decorator"]

P = ParamSpec("P")
R = TypeVar("R")


class ViewDecorator(Protocol):
    """The type of a view decorator of this package (``@scopes_required(...)``, ``@bearer_auth``,
    ``@duo_required``): the view keeps its parameters, and may also answer with the refusal (an
    ``HttpResponse``); an ``async def`` view stays a coroutine function."""

    @overload
    def __call__(
        self, view: Callable[P, Coroutine[Any, Any, R]], /
    ) -> Callable[P, Coroutine[object, object, R | HttpResponse]]: ...

    @overload
    def __call__(self, view: Callable[P, R], /) -> Callable[P, R | HttpResponse]: ...


def _checked(
    call: Callable[..., Any], refuse: Callable[[HttpRequest], HttpResponse | None], *, is_async: bool
) -> Callable[..., Any]:
    """``call``, with ``refuse(request)`` run first (outside the event loop when async); a response wins."""
    if is_async:

        async def _async_call(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            refused = await sync_to_async(refuse)(request)
            if refused is not None:
                return refused
            return await call(request, *args, **kwargs)

        return _async_call

    def _call(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        refused = refuse(request)
        if refused is not None:
            return refused
        return call(request, *args, **kwargs)

    return _call


@overload
def guarded(
    view: Callable[P, Coroutine[Any, Any, R]], refuse: Callable[[HttpRequest], HttpResponse | None], **marks: object
) -> Callable[P, Coroutine[object, object, R | HttpResponse]]: ...


@overload
def guarded(
    view: Callable[P, R], refuse: Callable[[HttpRequest], HttpResponse | None], **marks: object
) -> Callable[P, R | HttpResponse]: ...


def guarded(view: Callable[..., Any], refuse: Callable[[HttpRequest], HttpResponse | None], **marks: object) -> Any:
    """Wrap a sync or async view so that ``refuse(request)`` runs first; a response it returns wins.

    ``marks`` become attributes of the wrapper (as ``login_required`` marks a view), kept by decorators
    applied on top through ``functools.wraps``.
    """
    wrapper = wraps(view)(_checked(view, refuse, is_async=iscoroutinefunction(view)))
    wrapper.__dict__.update(marks)
    return wrapper


def view_decorator(decorate: Callable[[Callable[..., Any]], Any]) -> ViewDecorator:
    """``decorate``, a function returning :func:`guarded`'s wrapper of the view it is given (perhaps through
    Django's ``csrf_exempt`` or ``login_not_required``, which return what they are given), typed as what it
    is: a :class:`ViewDecorator`."""
    return cast(ViewDecorator, decorate)  # true of guarded()'s result: its overloads are ViewDecorator's


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
