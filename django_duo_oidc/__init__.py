"""django-duo-oidc: Cisco Duo Single Sign-On (OpenID Connect) for Django.

The public surface, importable from the package itself::

    from django_duo_oidc import scopes_required, ScopesRequiredMixin, bearer_auth, BearerAuthMixin
    from django_duo_oidc import client_token, ClientCredentialsAuth, Requirement, RequestContext

DRF: ``django_duo_oidc.contrib.drf``; Django Ninja: ``django_duo_oidc.contrib.ninja``; signals:
``django_duo_oidc.signals``. Settings paths: ``django_duo_oidc.backends.DuoOIDCBackend``,
``django_duo_oidc.middleware.DuoOIDCMiddleware``, ``django_duo_oidc.urls``,
``django_duo_oidc.well_known_urls``, ``django_duo_oidc.log_filters``.

This module is imported by ``INSTALLED_APPS`` before the app registry is ready, so the names above are
loaded when first used (PEP 562), never at import: importing the package imports no model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "BearerAuthMixin": "django_duo_oidc.resource.views",
    "ClientCredentialsAuth": "django_duo_oidc.outbound.client_credentials",
    "RequestContext": "django_duo_oidc.core.context",
    "Requirement": "django_duo_oidc.core.scopes",
    "ScopesRequiredMixin": "django_duo_oidc.policy.mixins",
    "bearer_auth": "django_duo_oidc.resource.views",
    "client_token": "django_duo_oidc.outbound.client_credentials",
    "scopes_required": "django_duo_oidc.policy.decorators",
}

__all__ = [
    "BearerAuthMixin",
    "ClientCredentialsAuth",
    "RequestContext",
    "Requirement",
    "ScopesRequiredMixin",
    "__version__",
    "bearer_auth",
    "client_token",
    "scopes_required",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'django_duo_oidc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from .core.context import RequestContext
    from .core.scopes import Requirement
    from .outbound.client_credentials import ClientCredentialsAuth, client_token
    from .policy.decorators import scopes_required
    from .policy.mixins import ScopesRequiredMixin
    from .resource.views import BearerAuthMixin, bearer_auth
