"""Django REST framework integration (install the ``drf`` extra). The only module importing rest_framework."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from ..core.errors import InsufficientScope, ProviderUnavailable
from ..core.scopes import format_scopes
from ..policy import Requirement


class ProviderUnavailableError(exceptions.APIException):
    status_code = 503
    default_detail = "Your access could not be confirmed with the identity provider right now."
    default_code = "temporarily_unavailable"


class HasScopes(BasePermission):
    """Allow the request when the provider granted the view's ``required_scopes``.

    The view sets ``required_scopes`` (a string or an iterable) and optionally ``scopes_any_of``.
    """

    message = "The identity provider has not granted the scopes this resource requires."
    code = "insufficient_scope"

    def has_permission(self, request: Any, view: Any) -> bool:
        required = getattr(view, "required_scopes", None)
        if required is None:
            raise ImproperlyConfigured(
                f"{view.__class__.__name__} uses HasScopes but has no required_scopes attribute."
            )
        if not request.user or not request.user.is_authenticated:
            return False
        requirement = Requirement.of(required, any_of=getattr(view, "scopes_any_of", False))
        oidc = getattr(request, "oidc", None)
        if oidc is None:
            return False
        try:
            oidc.require_scopes(requirement.scopes, any_of=requirement.any_of)
        except ProviderUnavailable as exc:
            raise ProviderUnavailableError() from exc
        except InsufficientScope as exc:
            raise exceptions.PermissionDenied(
                f"Missing scopes: {format_scopes(exc.missing)}.", code="insufficient_scope"
            ) from exc
        return True
