"""``request.oidc``: what the provider granted to this request, read from the already-loaded session."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Literal

from asgiref.sync import sync_to_async
from django.http import HttpRequest

from ..core.errors import InsufficientScope, ProviderUnavailable
from ..core.scopes import missing_scopes
from . import renewal, session


class OIDCContext:
    """The OIDC side of a request. Every field reads the session, which the middleware keeps fresh."""

    mode: Literal["session"] = "session"
    #: True when the grant was due for a check with the provider and the provider could not answer.
    stale = False

    def __init__(self, request: HttpRequest) -> None:
        self._request = request

    @property
    def _data(self) -> dict[str, Any] | None:
        return session.login_data(self._request)

    @property
    def is_authenticated(self) -> bool:
        """True when this session logged in through a provider."""
        return self._data is not None

    @property
    def provider(self) -> str | None:
        """The slug of the provider this session logged in with."""
        data = self._data
        return data["provider"] if data else None

    @property
    def sub(self) -> str | None:
        data = self._data
        return data["sub"] if data else None

    @property
    def scopes(self) -> frozenset[str]:
        """The scopes the provider granted (never the ones requested), as last confirmed."""
        return session.granted_scopes(self._data)

    @property
    def expires_at(self) -> float | None:
        data = self._data
        return data.get("expires_at") if data else None

    @property
    def auth_time(self) -> float | None:
        """When the user last authenticated at the provider, as the provider asserted it (``auth_time``).

        None when the ID token had none: the Django login time proves nothing about the provider's
        authentication (a silent login would pass for a fresh one), so it never stands in for it.
        """
        data = self._data
        value = data.get("auth_time") if data else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None  # validated at login (core.tokens); a session stored before that is "not recent"
        return float(value)

    def require_scopes(self, required: frozenset[str], *, any_of: bool = False, deny_stale: bool = True) -> None:
        """Raise unless the granted scopes meet ``required``: the one scope decision for session requests.

        :raises ProviderUnavailable: the grant could not be re-checked and ``deny_stale`` (fail closed).
        :raises InsufficientScope: scopes are missing (``.missing`` names them).
        """
        if self.stale and deny_stale:
            raise ProviderUnavailable("Your access could not be confirmed with the identity provider right now.")
        granted = self.scopes
        if missing_scopes(required, granted, any_of=any_of):
            raise InsufficientScope(required, granted)

    def authenticated_within(self, max_age: int, now: float | None = None) -> bool:
        """True when the provider asserted an authentication at most ``max_age`` seconds old.

        Without ``auth_time`` the answer is False: the step-up login then sends ``max_age``, which makes
        ``auth_time`` required in the new ID token (OIDC Core 3.1.2.1) and checked (3.1.3.7 step 13).
        """
        now = time.time() if now is None else now
        auth_time = self.auth_time
        if auth_time is not None and now - auth_time <= max_age:
            return True
        # A step-up just completed for this very page counts once (core.step_up), for every check of
        # this one request no stricter than the max_age that step-up met.
        met: int | None = getattr(self, "_step_up_met", None)
        if met is None:
            met = self._step_up_met = session.take_step_up(self._request, max_age=max_age, now=now)
        return met is not None and met <= max_age

    def access_token(self, *, force: bool = False) -> str:
        """Return a currently valid access token of this session's grant, to call an API for the user.

        Renewed with the refresh token when it is due (single-flight across workers), or when
        ``force`` (the API answered 401); the new tokens are kept sealed in the session. Never put it
        in a page, a cookie, a URL or a log: :mod:`django_duo_oidc.outbound` attaches it for you.

        :raises ReauthenticationRequired: it cannot be renewed (the session has then ended) or this
            session has no provider login; answer with :func:`django_duo_oidc.login.renewal.login_again`
            (the middleware does when the view lets it through).
        :raises ProviderUnavailable: it has expired and the provider cannot renew it right now.
        """
        return renewal.current_access_token(self._request, force=force)

    async def aaccess_token(self, *, force: bool = False) -> str:
        """:meth:`access_token` for async views."""
        return await sync_to_async(renewal.current_access_token)(self._request, force=force)


if TYPE_CHECKING:  # the session context is a RequestContext: a type checker holds it to that
    from ..core.context import RequestContext

    _conforms: type[RequestContext] = OIDCContext
