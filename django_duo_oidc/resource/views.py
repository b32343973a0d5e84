"""Views that answer to bearer tokens: ``@bearer_auth`` and ``BearerAuthMixin`` (RFC 6750), and how the
rest of the app tells such views apart (:func:`is_bearer_view`, :func:`is_token_only_view`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from ..guards import guarded, guarded_dispatch
from .context import authenticate_or_refuse
from .metadata import is_bearer_view, is_token_only_view

__all__ = ["BearerAuthMixin", "bearer_auth", "is_bearer_view", "is_token_only_view"]

if TYPE_CHECKING:
    from django.views import View as _View  # what the mixin is combined with
else:
    _View = object

P = ParamSpec("P")
R = TypeVar("R")


@overload
def bearer_auth(
    view: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[object, object, R | HttpResponse]]: ...


@overload
def bearer_auth(view: Callable[P, R]) -> Callable[P, R | HttpResponse]: ...


def bearer_auth(view: Callable[..., Any]) -> Any:
    """Make a view a resource server endpoint: it answers to ``Authorization: Bearer <token>`` only.

    No token: 401 with a ``Bearer`` challenge. A malformed header or a token in the URL: 400
    ``invalid_request``. A token that cannot be trusted: 401 ``invalid_token``. Inside the view,
    ``request.oidc`` describes the token's grant and ``request.user`` is its linked user (or anonymous,
    for a client-credentials token). Combine with ``@scopes_required`` in either order. The view is
    CSRF-exempt: a header the browser never sends by itself cannot be forged cross-site.
    """
    wrapper = guarded(view, authenticate_or_refuse, duo_oidc_bearer=True)
    # Judged by its token, never by a session: also behind Django's LoginRequiredMiddleware.
    return login_not_required(csrf_exempt(wrapper))


class BearerAuthMixin(_View):
    """Authenticate by ``Authorization: Bearer`` only, like ``@bearer_auth``; put it first in the bases,
    before ``ScopesRequiredMixin``, so the scope check sees the token."""

    duo_oidc_bearer = True

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        # Judged by its token, never by a session: also behind Django's LoginRequiredMiddleware.
        return login_not_required(csrf_exempt(super().as_view(**initkwargs)))

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return guarded_dispatch(self, BearerAuthMixin, authenticate_or_refuse, request, args, kwargs)
