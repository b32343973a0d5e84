"""RFC 9728 protected resource metadata: where OAuth clients, MCP clients and agents learn which
authorization servers issue tokens for this site's APIs and which scopes to ask for.

Route it at the root with ``path("", include("django_duo_oidc.well_known_urls"))``; every bearer
challenge then carries ``resource_metadata="<its URL>"`` (RFC 9728 section 5.1).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse
from django.views import View

from ..conf import conf
from ..core.scopes import Requirement
from .registry import trusted_issuers

__all__ = [
    "ProtectedResourceMetadataView",
    "bearer_view_scopes",
    "is_bearer_view",
    "is_token_only_view",
    "metadata_document",
    "metadata_url",
    "ninja_operations",
]

URL_NAME = "duo_oidc_resource_metadata"


@functools.cache
def _metadata_path(urlconf: str | None) -> str | None:
    try:
        return reverse(URL_NAME, urlconf=urlconf)
    except NoReverseMatch:
        return None


def metadata_url(request: HttpRequest) -> str | None:
    """The absolute URL of the metadata document, or None when it is not routed."""
    path = _metadata_path(getattr(request, "urlconf", None))
    return request.build_absolute_uri(path) if path else None


def _required_scopes(callback: Any) -> Iterable[str]:
    requirement = getattr(callback, "scope_requirement", None)
    if isinstance(requirement, Requirement):
        return requirement.scopes
    operations = ninja_operations(callback)
    if operations is not None:  # DuoBearer(scopes=...) on each operation
        needed = (getattr(auth, "requirement", None) for op in operations for auth in op.auth_callbacks)
        return {scope for r in needed if isinstance(r, Requirement) for scope in r.scopes}
    required = getattr(_view_class(callback) or callback, "required_scopes", None)
    return Requirement.of(required).scopes if required else ()


def _view_class(callback: Any) -> Any:
    """The class behind a class-based view's callback (Django's ``view_class``, DRF's ``cls``)."""
    return getattr(callback, "view_class", None) or getattr(callback, "cls", None)


def ninja_operations(callback: Any) -> list[Any] | None:
    """The operations behind a Django Ninja URL callback, else None.

    Ninja routes each path to a wrapper function over its ``PathView`` (held in the wrapper's closure),
    whose ``operations`` carry their ``auth_callbacks``. Found by shape, so this layer imports no Ninja.
    """
    for cell in getattr(callback, "__closure__", None) or ():
        try:
            target = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        operations = getattr(target, "operations", None)
        if isinstance(operations, list) and operations and all(hasattr(op, "auth_callbacks") for op in operations):
            return operations
    return None


def _bearer_marks(callback: Any) -> tuple[bool, list[bool]]:
    """``(marked, auth)``: whether the view or its class is marked as a bearer view (``@bearer_auth``,
    ``BearerAuthMixin``), and, for a DRF view, which of its authentication classes are bearer classes
    (for a Django Ninja path, which auths of its operations are: an operation without auth counts as
    one that is not, since it takes any caller)."""
    if getattr(callback, "duo_oidc_bearer", False):
        return True, []
    operations = ninja_operations(callback)
    if operations is not None:
        return False, [
            bool(getattr(auth, "duo_oidc_bearer", False)) for op in operations for auth in (op.auth_callbacks or [None])
        ]
    view_class = _view_class(callback)
    if view_class is None:
        return False, []
    if getattr(view_class, "duo_oidc_bearer", False):
        return True, []
    classes = getattr(view_class, "authentication_classes", ()) or ()
    return False, [bool(getattr(auth, "duo_oidc_bearer", False)) for auth in classes]


def is_bearer_view(callback: Any) -> bool:
    """True when the view answers to bearer tokens (perhaps among other ways, such as a DRF session)."""
    marked, auth = _bearer_marks(callback)
    return marked or any(auth)


def is_token_only_view(callback: Any) -> bool:
    """True when the view answers to bearer tokens ONLY, so a session cookie sent along means nothing to it.

    ``@bearer_auth`` views, ``BearerAuthMixin`` classes, DRF views whose authentication classes are
    all bearer classes, and Django Ninja paths whose every operation has only ``DuoBearer`` auths. A DRF
    view that also lists ``SessionAuthentication`` (or a Ninja one ``django_auth``) answers to sessions: False.
    """
    marked, auth = _bearer_marks(callback)
    return marked or (bool(auth) and all(auth))


@functools.cache
def bearer_view_scopes(urlconf: str | None = None) -> tuple[str, ...]:
    """Every scope a bearer-protected view in the URLconf requires (the default ``scopes_supported``)."""
    found: set[str] = set()

    def walk(patterns: Iterable[Any]) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern) and is_bearer_view(pattern.callback):
                found.update(_required_scopes(pattern.callback))

    walk(get_resolver(urlconf).url_patterns)
    return tuple(sorted(found))


def metadata_document(request: HttpRequest) -> dict[str, Any]:
    """The RFC 9728 section 2 document for this site."""
    # Section 3.3: "resource" must equal the URL the document was fetched for, minus the well-known
    # part; for a document at the root that is the origin.
    origin = f"{request.scheme}://{request.get_host()}"
    document: dict[str, Any] = {
        "resource": origin,
        "authorization_servers": trusted_issuers(),
        "scopes_supported": list(bearer_view_scopes(getattr(request, "urlconf", None))),
        "bearer_methods_supported": ["header"],  # never query or body (RFC 9700 section 2.5)
    }
    document.update(conf.resource_metadata)
    return document


class ProtectedResourceMetadataView(View):
    """``GET /.well-known/oauth-protected-resource``: public JSON, readable from any origin."""

    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> JsonResponse:
        response = JsonResponse(metadata_document(request))
        response["Cache-Control"] = "public, max-age=300"
        response["Access-Control-Allow-Origin"] = "*"
        return response
