"""Class-based view mixins: ``ScopesRequiredMixin`` (shaped like ``PermissionRequiredMixin``) and
``BearerAuthMixin`` (the view answers to bearer access tokens)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import AccessMixin
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

from ..core.scopes import Requirement
from ..guards import guarded_dispatch
from ..resource.context import authenticate
from .check import check


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

    def check_scopes(self, request: HttpRequest) -> HttpResponse | None:
        """Return the response refusing ``request``, or None when it meets the requirement (sync: may query)."""
        if getattr(self, "duo_oidc_bearer", False):
            # A bearer view is judged on its token whatever the order of the mixins (as @scopes_required).
            authenticate(request)
        return check(
            request,
            self.get_scope_requirement(),
            view_name=f"{self.__class__.__module__}.{self.__class__.__qualname__}",
            login_url=self.get_login_url() if self.login_url else None,
            redirect_field_name=self.get_redirect_field_name(),
            raise_exception=self.raise_exception,
        )

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        return guarded_dispatch(self, ScopesRequiredMixin, self.check_scopes, request, args, kwargs)
