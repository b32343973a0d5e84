"""DuoOIDCMiddleware: attach ``request.oidc`` to every request (sync and async)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from .context import OIDCContext


class DuoOIDCMiddleware:
    """Set a lazy :class:`~django_duo_oidc.context.OIDCContext` as ``request.oidc``.

    Goes after ``AuthenticationMiddleware``. The context reads the session only when used, so an
    anonymous request pays nothing.
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
        request.oidc = OIDCContext(request)  # type: ignore[attr-defined]
        return self.get_response(request)  # type: ignore[return-value]

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        request.oidc = OIDCContext(request)  # type: ignore[attr-defined]
        return await self.get_response(request)  # type: ignore[misc]
