"""The request side of a bearer token: ``request.oidc`` (:class:`BearerContext`), ``request.user``
(the linked user, checked for ``is_active``), and :func:`authenticate`, which only views that opt in
call (``@bearer_auth``, ``BearerAuthMixin``, the DRF class): a token never authenticates a view that
did not ask for one.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Literal

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject
from django.views.decorators.debug import sensitive_variables

from ..core.bearer import (
    AccessGrant,
    token_from_header,
)
from ..core.errors import (
    DuoOIDCError,
    InsufficientScope,
    InvalidClaim,
    InvalidRequest,
    ProviderUnavailable,
    ReauthenticationRequired,
    TokenExpired,
)
from ..core.scopes import format_scopes, missing_scopes
from ..models import Provider
from ..request import attach
from .answers import error_response
from .identities import _InactiveUser, forget_linked_users, linked_user_pk, load_user
from .memory import user_copy
from .validation import validate

logger = logging.getLogger("django_duo_oidc")

# Where the linked users are remembered and forgotten (.identities); still importable from here.
__all__ = ["BearerContext", "authenticate", "authenticate_or_refuse", "forget_linked_users"]
_ = _InactiveUser


class BearerContext:
    """``request.oidc`` on a bearer-authenticated request: the same questions as a session's, answered
    from the token's grant. ``error`` holds why the request is refused, if it is."""

    mode: Literal["bearer"] = "bearer"

    def __init__(
        self,
        *,
        grant: AccessGrant | None = None,
        provider: Provider | None = None,
        error: DuoOIDCError | None = None,
        stale: bool = False,
    ) -> None:
        self.grant = grant
        self.error = error
        self.stale = stale
        self._provider = provider

    @property
    def is_authenticated(self) -> bool:
        """True when a valid token was presented (a user's or a client's)."""
        return self.grant is not None

    @property
    def provider(self) -> str | None:
        return self._provider.slug if self._provider is not None else None

    @property
    def sub(self) -> str | None:
        return self.grant.sub if self.grant else None

    @property
    def client_id(self) -> str | None:
        """The OAuth client the token was issued to, when the provider says."""
        return self.grant.client_id if self.grant else None

    @property
    def is_client(self) -> bool:
        """True for a client-credentials token: a server calling, with no user behind it."""
        return bool(self.grant and self.grant.is_client)

    @property
    def scopes(self) -> frozenset[str]:
        return self.grant.scopes if self.grant else frozenset()

    @property
    def expires_at(self) -> float | None:
        return self.grant.expires_at if self.grant else None

    @property
    def auth_time(self) -> float | None:
        return self.grant.auth_time if self.grant else None

    @property
    def claims(self) -> dict[str, Any]:
        """The token's claims (or the introspection answer), for reading; the token itself is not kept."""
        return dict(self.grant.claims) if self.grant else {}

    def require_scopes(self, required: frozenset[str], *, any_of: bool = False, deny_stale: bool = True) -> None:
        """The same decision as a session's (:meth:`OIDCContext.require_scopes`)."""
        if self.stale and deny_stale:
            raise ProviderUnavailable("Your access could not be confirmed with the identity provider right now.")
        if missing_scopes(required, self.scopes, any_of=any_of):
            raise InsufficientScope(required, self.scopes)

    def authenticated_within(self, max_age: int, now: float | None = None) -> bool:
        auth_time = self.auth_time
        return auth_time is not None and (now or time.time()) - auth_time <= max_age

    def access_token(self, *, force: bool = False) -> str:
        """Always raises ``ReauthenticationRequired``: a bearer request has no session grant to act with,
        and its caller's token is not this site's to pass on (RFC 8693 token exchange is the way)."""
        raise ReauthenticationRequired("A bearer request has no signed-in session whose token could be handed out.")

    async def aaccess_token(self, *, force: bool = False) -> str:
        """As :meth:`access_token`: always raises ``ReauthenticationRequired``."""
        return self.access_token(force=force)

    def __repr__(self) -> str:
        state = "error" if self.error else "client" if self.is_client else "user" if self.grant else "none"
        return f"<BearerContext {state} provider={self.provider} scopes={format_scopes(self.scopes)!r}>"


if TYPE_CHECKING:  # the bearer context is a RequestContext: a type checker holds it to that
    from ..core.context import RequestContext

    _conforms: type[RequestContext] = BearerContext


@sensitive_variables()  # the token, here and in every function it calls
def authenticate(request: HttpRequest, *, token_only: bool = True) -> BearerContext:
    """Authenticate ``request`` by its bearer token, once; set ``request.oidc`` and ``request.user``.

    Never raises for anything the client sent: the outcome, including a refusal, is in the context.
    A request without a bearer token gets a context with neither grant nor error. With ``token_only``
    (views that answer to tokens only: ``@bearer_auth``, ``BearerAuthMixin``) that empty context is
    set and the user is anonymous, so a session never opens the view. With ``token_only=False``
    (DRF, where the next authentication class may accept the session) a request without bearer
    credentials is left untouched: nothing is set and the empty context is only returned.

    ``request.user`` is the token's linked user, read when the view first touches it (a copy of the
    one remembered, else one query); anonymous for a client's token, a subject with no identity here,
    or a refusal. A linked user who is inactive refuses the token (``invalid_token``); see
    :data:`.identities.SHARED_CHECK_INTERVAL` for how soon a change is seen.
    """
    existing = getattr(request, "oidc", None)
    if isinstance(existing, BearerContext):
        return existing
    context, user_pk = _authenticate(request)
    if not token_only and context.grant is None and context.error is None:
        return context
    attach(request, context)
    loaded: list[Any] = []

    def load() -> Any:
        if not loaded:
            loaded.append(load_user(user_pk))
        return loaded[0]

    user: Any = AnonymousUser()
    if user_pk is not None:
        remembered = user_copy(user_pk)  # a copy costs less than the lazy object that would read it
        if remembered is not None:
            loaded.append(remembered)
            user = remembered
        else:
            user = SimpleLazyObject(load)

    async def auser() -> Any:  # as django.contrib.auth's middleware offers async views
        if user_pk is None:
            return user
        if not loaded:
            remembered = user_copy(user_pk)  # taken once: no database call on the event loop
            if remembered is None:
                return await sync_to_async(load)()
            loaded.append(remembered)
        return loaded[0]

    request.user = user
    request.auser = auser
    return context


def _hide_posted_token(request: HttpRequest) -> None:
    """A token posted in a form (refused below) must not show in an error report of this request."""
    hidden = getattr(request, "sensitive_post_parameters", [])
    if hidden != "__ALL__" and "access_token" not in hidden:
        # Django's own attribute (sensitive_post_parameters sets it), which django-stubs does not declare.
        request.sensitive_post_parameters = [*hidden, "access_token"]  # type: ignore[attr-defined]


def _authenticate(request: HttpRequest) -> tuple[BearerContext, int | None]:
    _hide_posted_token(request)
    try:
        token = token_from_header(request.META.get("HTTP_AUTHORIZATION"))
        # RFC 6750 sections 2.2/2.3 are optional and RFC 9700 section 2.5 says not to put tokens in
        # URLs: a token anywhere but the header is refused (invalid_request), never silently ignored.
        query = request.META.get("QUERY_STRING", "")
        # Parsed only when it may name access_token (percent-encoded or not): most API calls have none.
        if (query and ("access_token" in query or "%" in query) and "access_token" in request.GET) or (
            request.content_type == "application/x-www-form-urlencoded"
            and request.method in ("POST", "PUT", "PATCH", "DELETE")
            and "access_token" in request.POST
        ):
            raise InvalidRequest("Access tokens are accepted in the Authorization header only.")
        if token is None:
            return BearerContext(), None
        grant, provider, stale = validate(token)
        user_pk = linked_user_pk(grant, provider)
    except DuoOIDCError as exc:
        _log_refusal(request, exc)
        return BearerContext(error=exc), None
    return BearerContext(grant=grant, provider=provider, stale=stale), user_pk


def _log_refusal(request: HttpRequest, exc: DuoOIDCError) -> None:
    reason = f"{type(exc).__name__}: {exc.description}"
    if isinstance(exc, InvalidClaim):
        reason += f" (claim {exc.claim})"
    level = logging.INFO if isinstance(exc, TokenExpired) else logging.WARNING
    if getattr(exc, "remembered", False):
        level = logging.DEBUG  # the same token refused again: logged when first refused
    logger.log(level, "Bearer request to %s refused: %s", request.path, reason)


def authenticate_or_refuse(request: HttpRequest) -> HttpResponse | None:
    """Authenticate the request by bearer token; return None if it may proceed, else the refusal."""
    context = authenticate(request)
    if context.error is not None:
        return error_response(request, context.error)
    if context.grant is None:
        return error_response(request, None)
    return None
