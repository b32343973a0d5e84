"""``request.oidc``: what the provider granted to this request, read lazily from the session."""

from __future__ import annotations

import functools
from typing import Any

from django.http import HttpRequest

from . import session


class OIDCContext:
    """The OIDC side of a request. Fields are computed on first use and cost no query."""

    mode = "session"

    def __init__(self, request: HttpRequest) -> None:
        self._request = request

    @functools.cached_property
    def _data(self) -> dict[str, Any] | None:
        if not getattr(self._request, "user", None) or not self._request.user.is_authenticated:
            return None
        return session.login_data(self._request)

    @property
    def is_authenticated(self) -> bool:
        """True when the user logged in through a provider in this session."""
        return self._data is not None

    @property
    def provider(self) -> str | None:
        """The slug of the provider this session logged in with."""
        return self._data["provider"] if self._data else None

    @property
    def sub(self) -> str | None:
        return self._data["sub"] if self._data else None

    @functools.cached_property
    def scopes(self) -> frozenset[str]:
        """The scopes the provider granted (never the ones requested)."""
        return session.granted_scopes(self._data)

    @property
    def expires_at(self) -> float | None:
        return self._data.get("expires_at") if self._data else None

    @property
    def auth_time(self) -> int | None:
        return self._data.get("auth_time") if self._data else None
