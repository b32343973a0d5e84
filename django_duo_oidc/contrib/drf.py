"""Django REST framework integration (install the ``drf`` extra). The only module importing rest_framework.

- :class:`DuoBearerAuthentication`: bearer access tokens, exactly as ``@bearer_auth`` validates them,
  with RFC 6750 challenges (put it first in ``authentication_classes`` so DRF's 401 carries it).
- :class:`HasScopes`: the view's ``required_scopes``, for session and bearer requests alike.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from ..conf import conf
from ..core.errors import InsufficientScope, InvalidRequest, ProviderUnavailable, TokenError
from ..core.scopes import Requirement, format_scopes
from ..resource import answers
from ..resource.context import BearerContext, authenticate

__all__ = ["DuoBearerAuthentication", "HasScopes", "ProviderUnavailableError"]


class ProviderUnavailableError(exceptions.APIException):
    """503: the provider could not confirm the request now; ``Retry-After`` says when to try again."""

    status_code = 503
    default_detail = "Your access could not be confirmed with the identity provider right now."
    default_code = "temporarily_unavailable"

    def __init__(self, detail: Any = None, code: str | None = None, *, retry_after: str | int | None = None) -> None:
        super().__init__(detail, code)
        # DRF's exception handler turns ``wait`` into Retry-After (as for Throttled).
        self.wait = int(retry_after) if retry_after else max(1, int(conf.provider_down_backoff))


class InvalidBearerRequest(exceptions.AuthenticationFailed):
    """RFC 6750 ``invalid_request``: a 400 that still carries the challenge (DRF adds it to 401-family errors)."""

    status_code = 400


class DuoBearerAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>``: ``request.user`` is the linked user (anonymous for a
    client-credentials token), ``request.auth`` and ``request.oidc`` the token's :class:`BearerContext`.

    A request without a bearer token is left to the next authentication class. Refusals carry the
    same JSON body and ``WWW-Authenticate`` as ``@bearer_auth``'s.
    """

    duo_oidc_bearer = True

    def authenticate(self, request: Any) -> tuple[Any, BearerContext] | None:
        django_request = request._request
        # token_only=False: without bearer credentials the request (its session user included) is left
        # untouched for the next authentication class, e.g. SessionAuthentication.
        context = authenticate(django_request, token_only=False)
        error = context.error
        if error is None:
            return None if context.grant is None else (django_request.user, context)
        refused = answers.refusal(django_request, error)
        django_request._duo_oidc_challenge = refused.headers.get("WWW-Authenticate")
        if isinstance(error, InvalidRequest):
            raise InvalidBearerRequest(refused.body)
        if isinstance(error, TokenError):
            raise exceptions.AuthenticationFailed(refused.body)
        raise ProviderUnavailableError(refused.body, retry_after=refused.headers.get("Retry-After"))

    def authenticate_header(self, request: Any) -> str:
        django_request = request._request
        found = getattr(django_request, "_duo_oidc_challenge", None)
        return found or answers.refusal(django_request, None).headers["WWW-Authenticate"]


class HasScopes(BasePermission):
    """Allow the request when the provider granted the view's ``required_scopes``.

    The view sets ``required_scopes`` (a string or an iterable) and optionally ``scopes_any_of``.
    Session requests are judged on the session's grant; bearer requests on the token's, and refused
    with ``403 insufficient_scope`` and a ``WWW-Authenticate`` naming the scopes (RFC 6750 section 3.1).
    """

    message = "The identity provider has not granted the scopes this resource requires."
    code = "insufficient_scope"

    def has_permission(self, request: Any, view: Any) -> bool:
        required = getattr(view, "required_scopes", None)
        if required is None:
            raise ImproperlyConfigured(
                f"{view.__class__.__name__} uses HasScopes but has no required_scopes attribute."
            )
        requirement = Requirement.of(required, any_of=getattr(view, "scopes_any_of", False))
        oidc = request.auth if isinstance(request.auth, BearerContext) else getattr(request, "oidc", None)
        if oidc is None:
            return False
        if isinstance(oidc, BearerContext):
            if not oidc.is_authenticated:
                return False
        elif not request.user or not request.user.is_authenticated:
            return False
        try:
            oidc.require_scopes(requirement.scopes, any_of=requirement.any_of)
        except ProviderUnavailable as exc:
            raise ProviderUnavailableError() from exc
        except InsufficientScope as exc:
            if isinstance(oidc, BearerContext):
                answers.note_scope_denied(request._request, exc, view_name=type(view).__qualname__)
                refused = answers.refusal(request._request, exc)
                denied = exceptions.PermissionDenied(refused.body, code="insufficient_scope")
                # DRF's exception handler turns auth_header into WWW-Authenticate.
                denied.auth_header = refused.headers["WWW-Authenticate"]  # type: ignore[attr-defined]
                raise denied from exc
            raise exceptions.PermissionDenied(
                f"Missing scopes: {format_scopes(exc.missing)}.", code="insufficient_scope"
            ) from exc
        return True
