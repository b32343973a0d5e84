"""Django Ninja integration (install the ``ninja`` extra). The only module importing ``ninja``.

- :class:`DuoBearer`: bearer access tokens, exactly as ``@bearer_auth`` validates them, usable as
  ``NinjaAPI(auth=DuoBearer())``, on a router, or per operation; ``DuoBearer(scopes=..., any_of=...,
  max_age=...)`` also requires scopes (and a recent authentication) for the operations it guards.
- :func:`install_error_handlers`: lets the API answer refusals as every other bearer view of this
  package does (RFC 6750: ``401 invalid_token`` / ``403 insufficient_scope`` with ``WWW-Authenticate``
  and ``resource_metadata``; ``401 insufficient_user_authentication`` with ``max_age``, RFC 9470;
  ``503`` with ``Retry-After`` when the provider is down). Call it once on each ``NinjaAPI``.

::

    from ninja import NinjaAPI
    from django_duo_oidc.contrib.ninja import DuoBearer, install_error_handlers

    api = install_error_handlers(NinjaAPI(auth=DuoBearer()))

    @api.get("/contacts", auth=DuoBearer(scopes="crm.contacts.read"))
    def contacts(request):
        return {"caller": request.auth.sub, "client": request.auth.is_client}

``request.auth`` and ``request.oidc`` are the token's
:class:`~django_duo_oidc.resource.context.BearerContext`; ``request.user`` the linked user (anonymous
for a client-credentials token).

Without :func:`install_error_handlers` a refusal is still a refusal (Ninja's own ``HttpError``
answer: the same status, ``{"detail": ...}``) but without the ``WWW-Authenticate`` challenge.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.security import HttpBearer

from ..core.scopes import Requirement
from ..policy.check import check_bearer, check_session_api
from ..resource import answers
from ..resource.context import BearerContext, authenticate
from ..resource.metadata import ninja_operations

__all__ = ["BearerRefused", "DuoBearer", "install_error_handlers"]

# Set on a request that a DuoBearer saw, so a 401 from Ninja (no credentials at all) carries the
# bare Bearer challenge (RFC 6750 section 3) rather than Ninja's plain "Unauthorized".
_TRIED = "_duo_oidc_ninja_bearer"


class BearerRefused(HttpError):
    """A request :class:`DuoBearer` refused; ``response`` is the answer every other bearer view would
    give (for a session without the operation's scopes: :func:`~django_duo_oidc.policy.check.check_session_api`'s).

    A subclass of Ninja's ``HttpError``, so an API without :func:`install_error_handlers` still
    answers with the right status (and no data).
    """

    def __init__(self, response: HttpResponse) -> None:
        self.response = response
        body = json.loads(response.content)  # always a JSON object (resource.answers)
        super().__init__(response.status_code, str(body.get("error_description", "Refused.")))


class DuoBearer(HttpBearer):
    """Ninja auth for ``Authorization: Bearer <token>``, validated as ``@bearer_auth`` validates it.

    :param scopes: scopes the operation requires (a space-separated string or an iterable); none by
        default (any valid token, a client's included).
    :param any_of: one of ``scopes`` is enough.
    :param max_age: the provider must have authenticated the user at most this many seconds ago
        (``auth_time``; a client token has none and is refused).

    A request without bearer credentials is left to the next auth in the list (e.g. ``django_auth``),
    and refused 401 with the bare challenge if none accepts it; but a signed-in session without
    ``scopes`` (or older than ``max_age``) is refused here, so the next auth never serves it. A
    request with a bad token, a token without the scopes, or one the provider could not confirm is
    refused here and never reaches the next auth: a session cannot stand in for a token that was
    refused. Put it first in an ``auth`` list for both to hold (an auth listed before it that accepts
    the request wins, as in Ninja).
    """

    #: Marks the operations it guards as bearer views for the policy middleware and freshness
    #: (``resource.metadata.is_bearer_view``), as ``DuoBearerAuthentication`` marks DRF views.
    duo_oidc_bearer = True

    def __init__(self, *, scopes: str | Iterable[str] = (), any_of: bool = False, max_age: int | None = None) -> None:
        # Keyword-only: Ninja calls an auth with the request, so auth=DuoBearer (the class, not an
        # instance) must fail, not build a DuoBearer from the request (truthy: every request admitted).
        super().__init__()
        self.requirement = Requirement.of(scopes, any_of=any_of, max_age=max_age)

    def __call__(self, request: HttpRequest) -> BearerContext | None:
        setattr(request, _TRIED, True)
        if "HTTP_AUTHORIZATION" not in request.META:
            # Ninja's HttpBearer reads request.headers; Ninja's TestClient puts headers in META as sent
            # ("HTTP_Authorization"). Seen the same way here; a real request's META has the canonical key.
            sent = request.headers.get("Authorization")
            if sent is not None:
                request.META["HTTP_AUTHORIZATION"] = sent
        # token_only=False: without bearer credentials the request is left untouched for the next auth.
        context = authenticate(request, token_only=False)
        if context.grant is None and context.error is None:
            self._judge_session(request)
            return None
        refused = check_bearer(request, self.requirement, view_name=_operation_name(request))
        if refused is not None:
            raise BearerRefused(refused)
        return context

    def _judge_session(self, request: HttpRequest) -> None:
        """A request without bearer credentials goes on to the next auth, e.g. ``django_auth``; the
        scopes (and ``max_age``) this operation declares bind the session that auth would admit, as
        ``HasScopes`` binds it in DRF, or ``auth=[DuoBearer(scopes=...), django_auth]`` would serve any
        signed-in user. A session that meets them, or an anonymous request, is left to the next auth.

        :raises BearerRefused: a signed-in session without the scopes (403), too old (403 with
            ``step_up_url``), or not re-confirmed while ``ON_PROVIDER_DOWN`` is ``"deny"`` (503).
        """
        requirement = self.requirement
        if not requirement.scopes and requirement.max_age is None:
            return  # any caller the next auth admits: nothing to judge
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not _takes_sessions(request):
            return
        refused = check_session_api(request, requirement, view_name=_operation_name(request))
        if refused is not None:
            raise BearerRefused(refused)

    def authenticate(self, request: HttpRequest, token: str) -> BearerContext | None:
        """Not used: :meth:`__call__` reads the header itself, refusing what ``HttpBearer`` would let
        through (a token in the query or the body, a malformed header)."""
        return self(request)

    def __repr__(self) -> str:
        r = self.requirement
        return f"<DuoBearer scopes={sorted(r.scopes)!r} any_of={r.any_of} max_age={r.max_age}>"


def _takes_sessions(request: HttpRequest) -> bool:
    """False when the operation answering ``request`` has DuoBearer auths only: no session is ever
    served there, so none is judged (it gets the bearer challenge). True when not known (Ninja's
    TestClient resolves nothing): judging then only refuses more."""
    match = getattr(request, "resolver_match", None)
    operations = ninja_operations(match.func) if match is not None else None
    for operation in operations or ():
        if request.method in operation.methods:
            return not all(getattr(auth, "duo_oidc_bearer", False) for auth in operation.auth_callbacks)
    return True


def _operation_name(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return (getattr(match, "view_name", None) or "") if match is not None else ""


def install_error_handlers(api: NinjaAPI) -> NinjaAPI:
    """Make ``api`` answer bearer refusals with this package's RFC 6750 responses; return ``api``.

    Registers a handler for :class:`BearerRefused`, and wraps the API's handler for Ninja's
    ``AuthenticationError`` so that a request a :class:`DuoBearer` saw without credentials gets
    ``401`` with ``WWW-Authenticate: Bearer realm=..., resource_metadata=...`` (other auths' 401s are
    left as they were).
    """
    previous = api._lookup_exception_handler(AuthenticationError())

    # Ninja types a handler's exception as the instance or its class; it passes the instance raised.
    def refused(request: HttpRequest, exc: BearerRefused | type[BearerRefused]) -> HttpResponse:
        assert isinstance(exc, BearerRefused)
        return exc.response

    def unauthenticated(request: HttpRequest, exc: AuthenticationError | type[AuthenticationError]) -> HttpResponse:
        assert isinstance(exc, AuthenticationError)
        if getattr(request, _TRIED, False):
            return answers.error_response(request, None)
        if previous is None:
            raise exc
        return previous(request, exc)

    api.add_exception_handler(BearerRefused, refused)
    api.add_exception_handler(AuthenticationError, unauthenticated)
    return api
