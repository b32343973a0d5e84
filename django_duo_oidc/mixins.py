"""Class-based view mixins: ``ScopesRequiredMixin`` (shaped like ``PermissionRequiredMixin``) and
``BearerAuthMixin`` (the view answers to bearer access tokens)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import AccessMixin
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .bearer import authenticate_or_refuse
from .policy import Requirement, check


class ScopesRequiredMixin(AccessMixin):
    """Require the scopes in ``required_scopes`` (all of them, or one with ``scopes_any_of``).

    Set ``required_scopes`` (a string or an iterable), or override ``get_required_scopes()``;
    ``scopes_max_age`` asks for a recent authentication. ``login_url``, ``redirect_field_name`` and
    ``raise_exception`` work as in ``AccessMixin``.
    """

    required_scopes: str | tuple[str, ...] | list[str] | None = None
    scopes_any_of: bool = False
    scopes_max_age: int | None = None

    def get_required_scopes(self) -> frozenset[str]:
        if self.required_scopes is None:
            raise ImproperlyConfigured(
                f"{self.__class__.__name__} is missing the required_scopes attribute. Define "
                f"{self.__class__.__name__}.required_scopes, or override "
                f"{self.__class__.__name__}.get_required_scopes()."
            )
        return Requirement.of(self.required_scopes).scopes

    def get_scope_requirement(self) -> Requirement:
        return Requirement(self.get_required_scopes(), self.scopes_any_of, self.scopes_max_age)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refused = check(
            request,
            self.get_scope_requirement(),
            view_name=f"{self.__class__.__module__}.{self.__class__.__qualname__}",
            login_url=self.get_login_url() if self.login_url else None,
            redirect_field_name=self.get_redirect_field_name(),
            raise_exception=self.raise_exception,
        )
        if refused is not None:
            return refused
        return super().dispatch(request, *args, **kwargs)


class BearerAuthMixin:
    """Authenticate by ``Authorization: Bearer`` only, like ``@bearer_auth``; put it first in the bases,
    before ``ScopesRequiredMixin``, so the scope check sees the token."""

    duo_oidc_bearer = True

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        return csrf_exempt(super().as_view(**initkwargs))  # type: ignore[misc]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refused = authenticate_or_refuse(request)
        if refused is not None:
            return refused
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc,no-any-return]
