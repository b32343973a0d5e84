"""``OIDCRequest``: the type of a request that carries ``request.oidc``, for type annotations.

Django hands every view a plain ``HttpRequest``; :class:`~django_duo_oidc.middleware.DuoOIDCMiddleware`
(and ``@bearer_auth``, ``BearerAuthMixin``, DRF's ``DuoBearerAuthentication`` and Ninja's ``DuoBearer``)
set ``request.oidc`` on it. Annotate a view's request as ``OIDCRequest`` and a type checker (mypy,
pyright) knows ``request.oidc`` is a :class:`~django_duo_oidc.core.context.RequestContext`::

    from django.http import HttpResponse
    from django_duo_oidc import scopes_required
    from django_duo_oidc.request import OIDCRequest

    @scopes_required("crm.contacts.read")
    def contacts(request: OIDCRequest) -> HttpResponse:
        return HttpResponse(", ".join(sorted(request.oidc.scopes)))

It is only a type: nothing creates an ``OIDCRequest``, and the view still receives Django's request.
:func:`attach` and :func:`context_of` are how the package itself sets and reads ``request.oidc``.
"""

from __future__ import annotations

from typing import cast

from django.http import HttpRequest

from .core.context import RequestContext

__all__ = ["OIDCRequest"]


class OIDCRequest(HttpRequest):
    """An ``HttpRequest`` on which the middleware (or a bearer authentication) has set ``oidc``."""

    #: What the provider granted to this request: a session's or a bearer token's context.
    oidc: RequestContext


def attach(request: HttpRequest, context: RequestContext) -> None:
    """Set ``request.oidc`` (the middleware does for a session, a bearer authentication for a token)."""
    cast(OIDCRequest, request).oidc = context  # the same object: from here on, an OIDCRequest


def context_of(request: HttpRequest) -> RequestContext:
    """``request.oidc``, read by code that runs after the middleware or a bearer authentication set it."""
    return cast(OIDCRequest, request).oidc  # true behind DuoOIDCMiddleware (check E002 requires it)
