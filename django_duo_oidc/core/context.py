"""What ``request.oidc`` answers, whichever way the request was authenticated.

:class:`RequestContext` is the protocol that the session's context (``login.context.OIDCContext``) and
a bearer token's (``resource.context.BearerContext``) both implement, so that policy code (the one
scope check, step-up, the DRF permission) is written once against it and a type checker can tell.
Pure typing: no Django.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

__all__ = ["RequestContext"]


@runtime_checkable
class RequestContext(Protocol):
    """The OIDC side of one request: who (``sub`` at ``provider``), what was granted, how recently."""

    @property
    def mode(self) -> Literal["session", "bearer"]:
        """ "session" (a browser logged in through the provider) or "bearer" (an access token)."""
        ...

    #: True when the grant was due for a check with the provider and the provider could not answer.
    stale: bool

    @property
    def is_authenticated(self) -> bool: ...

    @property
    def provider(self) -> str | None: ...

    @property
    def sub(self) -> str | None: ...

    @property
    def scopes(self) -> frozenset[str]:
        """The scopes the provider granted (never the ones requested), as last confirmed."""
        ...

    @property
    def expires_at(self) -> float | None: ...

    @property
    def auth_time(self) -> float | None:
        """When the provider says the user last authenticated; None when it did not say."""
        ...

    def require_scopes(self, required: frozenset[str], *, any_of: bool = False, deny_stale: bool = True) -> None:
        """Raise ``InsufficientScope`` (or ``ProviderUnavailable`` when stale and ``deny_stale``) unless met."""
        ...

    def authenticated_within(self, max_age: int, now: float | None = None) -> bool:
        """True when the provider asserted an authentication at most ``max_age`` seconds old."""
        ...

    def access_token(self, *, force: bool = False) -> str:
        """A currently valid access token of the session's grant, to call other APIs for the user.

        Raises ``ReauthenticationRequired`` when there is none to hand out: always for a bearer request
        (its caller's token is not this site's to pass on).
        """
        ...

    async def aaccess_token(self, *, force: bool = False) -> str:
        """:meth:`access_token` for async code."""
        ...
