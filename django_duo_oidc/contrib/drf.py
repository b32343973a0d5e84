"""Django REST framework integration (install the ``drf`` extra). The only module importing rest_framework.

- :class:`DuoBearerAuthentication`: bearer access tokens, exactly as ``@bearer_auth`` validates them,
  with RFC 6750 challenges (put it first in ``authentication_classes`` so DRF's 401 carries it).
- :class:`HasScopes`: the view's ``required_scopes`` (or ``required_scopes_map``, per HTTP method) and
  ``required_max_age``, for session and bearer requests alike.
- :class:`IsAuthenticatedCaller`: a user or a client-credentials caller (DRF's ``IsAuthenticated``
  admits users only, since a client's token leaves ``request.user`` anonymous).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.core.exceptions import ImproperlyConfigured
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from ..conf import conf
from ..core.errors import InsufficientScope, InvalidRequest, ProviderUnavailable, TokenError
from ..core.scopes import Requirement, format_scopes
from ..policy.check import step_up_body
from ..resource import answers
from ..resource.context import BearerContext, authenticate

__all__ = [
    "DuoBearerAuthentication",
    "HasScopes",
    "IsAuthenticatedCaller",
    "ProviderUnavailableError",
    "StepUpRequired",
]

logger = logging.getLogger("django_duo_oidc")


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
    """Allow the request when the provider granted the view's scopes, and (optionally) recently.

    The view says what it needs in one of two ways (both at once is a configuration error):

    - ``required_scopes``: a string or an iterable, for every method, with ``scopes_any_of`` (one of
      them is enough) optional;
    - ``required_scopes_map``: ``{"GET": "crm.read", "POST": "crm.write", "OPTIONS": ()}``, keyed by
      HTTP method. A value is a string or an iterable of scopes (all of them, or one with
      ``scopes_any_of``), or a :class:`~django_duo_oidc.core.scopes.Requirement` used as given. A method
      the map does not name is refused (403), never allowed; ``HEAD`` without an entry of its own takes
      ``GET``'s (DRF serves it with ``get``). An empty value (``()`` or ``""``) admits any
      authenticated caller; ``None`` refuses the method, as an absent key does.

    ``required_max_age`` (seconds) also requires the provider to have authenticated the user at most
    that long ago (``auth_time``; step-up). Session requests are judged on the session's grant;
    bearer requests on the token's, and refused with ``403 insufficient_scope`` and a
    ``WWW-Authenticate`` naming the scopes (RFC 6750 section 3.1), or ``401
    insufficient_user_authentication`` with ``max_age`` when too old (RFC 9470 section 3). A grant the
    provider could not re-confirm is refused with 503 unless ``ON_PROVIDER_DOWN`` is ``"allow"``, as
    for ``@scopes_required``.

    Unlike django-oauth-toolkit's ``TokenMatchesOASRequirements.required_alternate_scopes`` (a list of
    alternative scope sets per method), each method here has one requirement, in the same form as
    ``required_scopes``; and a client-credentials token with the scopes passes (combine with
    ``IsAuthenticated`` to admit users only). A session's grant counts only for the session's own
    user: a request DRF authenticated as someone else (HTTP Basic, a DRF token) that also carries a
    signed-in session is refused.
    """

    message = "The identity provider has not granted the scopes this resource requires."
    code = "insufficient_scope"

    def get_requirement(self, request: Any, view: Any) -> Requirement | None:
        """The requirement for this request's method; None when ``required_scopes_map`` does not name it.

        :raises ImproperlyConfigured: the view sets neither attribute, both, a map that is not a mapping,
            or a map naming a method twice (``"GET"`` and ``"get"``).
        """
        name = type(view).__name__
        required = getattr(view, "required_scopes", None)
        by_method = getattr(view, "required_scopes_map", None)
        if required is not None and by_method is not None:
            raise ImproperlyConfigured(
                f"{name} sets both required_scopes and required_scopes_map: keep one of them "
                "(name every method in required_scopes_map)."
            )
        any_of = bool(getattr(view, "scopes_any_of", False))
        max_age = getattr(view, "required_max_age", None)
        if by_method is None:
            if required is None:
                raise ImproperlyConfigured(
                    f"{name} uses HasScopes but sets neither required_scopes nor required_scopes_map."
                )
            return Requirement.of(required, any_of=any_of, max_age=max_age)
        if not isinstance(by_method, Mapping):
            raise ImproperlyConfigured(f"{name}.required_scopes_map must map HTTP methods to scopes.")
        methods = {str(method).upper(): value for method, value in by_method.items()}
        if len(methods) != len(by_method):
            named = sorted(str(method) for method in by_method)
            raise ImproperlyConfigured(
                f"{name}.required_scopes_map names a method twice (in different cases): {named}. "
                "Keep one key per method."
            )
        method = request.method.upper()
        if method not in methods and method == "HEAD":
            method = "GET"  # DRF answers HEAD with get(): the same data, without the body
        value = methods.get(method)
        if value is None:  # absent, or None: refused (an empty value is how to need no scope)
            return None
        if isinstance(value, Requirement):
            return value
        return Requirement.of(value, any_of=any_of, max_age=max_age)

    def has_permission(self, request: Any, view: Any) -> bool:
        requirement = self.get_requirement(request, view)
        oidc = request.auth if isinstance(request.auth, BearerContext) else getattr(request, "oidc", None)
        if oidc is None:
            return False
        if isinstance(oidc, BearerContext):
            if not oidc.is_authenticated:
                return False
        elif not request.user or not request.user.is_authenticated:
            return False
        view_name = type(view).__qualname__
        if requirement is None:
            # Like django-oauth-toolkit's TokenMatchesOASRequirements: an unnamed method is refused.
            logger.warning(
                "Refused %s %s: %s.required_scopes_map does not name the method",
                request.method,
                request.path,
                view_name,
            )
            raise exceptions.PermissionDenied(
                "This method is not available on this resource.", code="method_not_in_scope_map"
            )
        if not isinstance(oidc, BearerContext) and not _grant_is_callers(request, oidc):
            # DRF authenticated someone else (HTTP Basic, a DRF token, ...) on a request that also
            # carries a Duo session: that session's grant is its own user's, never the caller's.
            logger.warning(
                "Refused %s %s: %s authenticated user %s, but the session's grant is another user's",
                request.method,
                request.path,
                type(request.successful_authenticator).__name__,
                request.user.pk,
            )
            raise exceptions.PermissionDenied(self.message, code="insufficient_scope")
        try:
            oidc.require_scopes(
                requirement.scopes, any_of=requirement.any_of, deny_stale=conf.on_provider_down == "deny"
            )
        except ProviderUnavailable as exc:
            logger.warning("Refused %s to %s: %s", view_name, _who(request, oidc), exc.description)
            raise ProviderUnavailableError() from exc
        except InsufficientScope as exc:
            if isinstance(oidc, BearerContext):
                answers.note_scope_denied(request._request, exc, view_name=view_name)
                refused = answers.refusal(request._request, exc)
                denied = exceptions.PermissionDenied(refused.body, code="insufficient_scope")
                # DRF's exception handler turns auth_header into WWW-Authenticate (the stubs declare it
                # only on the 401 exceptions).
                denied.auth_header = refused.headers["WWW-Authenticate"]  # type: ignore[attr-defined]
                raise denied from exc
            raise exceptions.PermissionDenied(
                f"Missing scopes: {format_scopes(exc.missing)}.", code="insufficient_scope"
            ) from exc
        if requirement.max_age is not None and not oidc.authenticated_within(requirement.max_age):
            logger.info(
                "%s needs a more recent authentication of %s (max_age %s)",
                view_name,
                _who(request, oidc),
                requirement.max_age,
            )
            raise _step_up(request, oidc, requirement.max_age)
        return True


class StepUpRequired(exceptions.AuthenticationFailed):
    """A bearer token whose authentication is older than the view's ``required_max_age``: 401
    ``insufficient_user_authentication`` with ``max_age`` in the challenge (RFC 9470 section 3)."""

    default_code = "insufficient_user_authentication"


def _step_up(request: Any, oidc: Any, max_age: int) -> exceptions.APIException:
    django_request = request._request
    if isinstance(oidc, BearerContext):
        refused = answers.refusal(django_request, TokenError(), max_age=max_age)
        # DRF asks the first authentication class for the 401's challenge: this one, with max_age.
        django_request._duo_oidc_challenge = refused.headers["WWW-Authenticate"]
        return _with_body(StepUpRequired(), {**refused.body, "max_age": max_age})
    # A session: an API cannot redirect, so it says where the browser may step up, for this API too.
    body = step_up_body(django_request, max_age, provider=oidc.provider)
    return _with_body(exceptions.PermissionDenied(code="insufficient_user_authentication"), body)


def _with_body(exc: exceptions.APIException, body: dict[str, Any]) -> exceptions.APIException:
    """Set the answer's body as given: DRF would turn ``max_age`` into a string."""
    exc.detail = body
    return exc


def _grant_is_callers(request: Any, oidc: Any) -> bool:
    """True unless the session holds a provider grant (``request.oidc``) of a user other than the one
    DRF authenticated. A session without a provider login has no grant to misattribute (no scopes)."""
    if not oidc.is_authenticated:
        return True
    session = getattr(request._request, "session", None)
    user = request.user
    stored = session.get(SESSION_KEY) if session is not None else None
    return stored is not None and stored == user._meta.pk.value_to_string(user)


def _who(request: Any, oidc: Any) -> str:
    if isinstance(oidc, BearerContext):
        return f"client {oidc.client_id}" if oidc.is_client else f"sub {oidc.sub}"
    return f"user {request.user.pk}"


class IsAuthenticatedCaller(BasePermission):
    """Allow any authenticated caller: a signed-in user (session or a user's bearer token) **or** a
    client-credentials token (a server calling with no user behind it).

    DRF's ``IsAuthenticated`` keeps meaning "a user": a client's token leaves ``request.user``
    anonymous, so ``IsAuthenticated`` refuses it (403). Put ``IsAuthenticatedCaller`` where machines
    are welcome too; ``request.auth.is_client`` then tells the two apart. A client is deliberately not
    given a user object: every ``IsAuthenticated``, ``login_required`` and ``request.user.pk`` elsewhere
    would otherwise admit it as a person.
    """

    message = "This resource needs an authenticated caller."

    def has_permission(self, request: Any, view: Any) -> bool:
        if isinstance(request.auth, BearerContext):
            return request.auth.is_authenticated and request.auth.error is None
        return bool(request.user and request.user.is_authenticated)
