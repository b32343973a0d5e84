"""The shared cache, as django-duo-oidc uses it: every access goes through :func:`shared_cache`.

The cache (``DUO_OIDC["CACHE_ALIAS"]``, Redis in production) holds what the workers share: discovery
documents, JWKS, single-flight locks and results, the provider-down flag, used login states, client
tokens. When it fails (Redis restarting, network, a full or read-only server), whatever the backend
raises becomes :class:`~django_duo_oidc.core.errors.CacheUnavailable`, a ``ProviderUnavailable``: the
request is answered as if the provider could not be asked (fail closed: a 503, a stale session),
never as a 500, and never by skipping the check the cache was read for.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ..conf import conf
from ..core.errors import CacheUnavailable
from .encryption import SealedValueError, open_bound, seal_bound

__all__ = ["SealedView", "SharedCache", "shared_cache"]

logger = logging.getLogger("django_duo_oidc")


class SharedCache:
    """Django's cache API (the part this app uses) over ``caches[alias]``; backend errors become
    :class:`CacheUnavailable`. The backend is looked up on each call, so ``override_settings`` works."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def _call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(caches[self.alias], operation)(*args, **kwargs)
        except Exception as exc:
            # The class name says enough (ConnectionError, TimeoutError, ...); the message may name hosts.
            logger.error("The shared cache %r failed on %s: %s", self.alias, operation, type(exc).__name__)
            raise CacheUnavailable() from exc

    def get(self, key: str, default: Any = None) -> Any:
        return self._call("get", key, default)

    def set(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT) -> None:
        self._call("set", key, value, timeout)

    def add(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT) -> bool:
        return bool(self._call("add", key, value, timeout))

    def delete(self, key: str) -> bool:
        return bool(self._call("delete", key))

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        return dict(self._call("get_many", keys))

    def set_many(self, data: dict[str, Any], timeout: Any = DEFAULT_TIMEOUT) -> list[str]:
        return list(self._call("set_many", data, timeout) or [])

    def delete_many(self, keys: list[str]) -> None:
        self._call("delete_many", keys)

    def incr(self, key: str, delta: int = 1) -> int:
        return int(self._call("incr", key, delta))

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT) -> bool:
        return bool(self._call("touch", key, timeout))

    def __repr__(self) -> str:
        return f"<SharedCache {self.alias!r}>"


def shared_cache() -> SharedCache:
    """Return the app's shared cache (``DUO_OIDC["CACHE_ALIAS"]``)."""
    return SharedCache(conf.cache_alias)


class SealedView:
    """The shared cache with every value sealed and bound to its key and expiry (:func:`seal_bound`).

    For what the app must be able to trust when it reads it back: the discovery document (where the
    client secret is sent) and the JWKS (which keys sign valid tokens). A value planted, moved or
    replayed by someone who can write to the cache but holds no key reads as missing: fetched again.
    """

    def __init__(self, cache: Any) -> None:  # a SharedCache, or anything with its get/set/add/delete
        self.cache = cache

    def get(self, key: str, default: Any = None) -> Any:
        found = self.cache.get(key)
        if found is None:
            return default
        try:
            return open_bound(key, found)
        except SealedValueError:
            logger.warning("Ignored a shared cache entry that was not sealed for its key (or expired)")
            return default

    def set(self, key: str, value: Any, timeout: float | None) -> None:
        self.cache.set(key, seal_bound(key, value, timeout), timeout)

    def add(self, key: str, value: Any, timeout: float | None) -> bool:
        return bool(self.cache.add(key, seal_bound(key, value, timeout), timeout))

    def delete(self, key: str) -> bool:
        return bool(self.cache.delete(key))
