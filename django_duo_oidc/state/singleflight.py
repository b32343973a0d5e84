"""One worker does the work, the others wait for its result: coordination through Django's cache.

With a shared cache (Redis) this spans processes: N workers that find the same session's token due
for refresh or introspection make one provider call between them. A refresh done twice with a
rotating refresh token would revoke the whole grant (REAL.md: oidc-provider does exactly that).

When the cache fails before the work starts (the result cannot be read, the lock cannot be taken),
:class:`~django_duo_oidc.core.errors.CacheUnavailable` is raised and nothing is computed: without the
lock every worker would call the provider. Once the work is done its result is returned even if the
cache then fails to store it (a refresh the provider already answered must not be thrown away); its
lock is then left to expire, so that no waiting worker does the same work again (they give up with
``ProviderUnavailable``, their requests are stale).

Results are sealed in the cache and bound to their key and expiry (:class:`~.cache.SealedView`): a
refreshed token set holds tokens, and an introspection answer must not be forgeable, moved or replayed
by whoever can write to the cache. A result that does not open is ignored and computed again. Results
must be JSON values.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from ..core import errors
from .cache import SealedView

# What compute returns: a JSON object or None, which reads back from the cache as what it was (a dict
# with string keys, or None); other JSON values would not (a tuple comes back a list).
T = TypeVar("T", bound=dict[str, Any] | None)

logger = logging.getLogger("django_duo_oidc")


def single_flight(
    cache: Any,
    key: str,
    compute: Callable[[], T],
    *,
    ttl: float | Callable[[T], float],
    lock_timeout: float,
    error_ttl: float = 5,
) -> T:
    """Return the shared result for ``key``, computing it in at most one worker at a time.

    ``ttl`` may be a function of the result (a token's answer is worth keeping only until it expires).
    A :class:`~django_duo_oidc.core.errors.DuoOIDCError` raised by ``compute`` is shared too, for
    ``error_ttl`` seconds, so waiting workers see the same refusal instead of trying again.

    :raises CacheUnavailable: the cache failed before ``compute`` ran (it then did not run).
    """
    result_key, lock_key = f"{key}:result", f"{key}:lock"
    deadline = time.monotonic() + lock_timeout
    while True:
        found = _open(cache, result_key)
        if found is not None:
            return cast(T, _unwrap(found))  # what compute returned for this key, stored as JSON (T's bound)
        if cache.add(lock_key, 1, lock_timeout):
            # Another worker may have published its result and released the lock between our read
            # and our add: read again before computing, or the work is done twice.
            try:
                found = _open(cache, result_key)
            except errors.CacheUnavailable:
                _forget(cache, lock_key)
                raise
            if found is not None:
                _forget(cache, lock_key)
                return cast(T, _unwrap(found))  # as above
            try:
                value = compute()
            except errors.CacheUnavailable:
                _forget(cache, lock_key)
                raise  # about this worker's cache access, not an answer to share
            except errors.DuoOIDCError as exc:
                if _publish(cache, result_key, ("error", type(exc).__name__, exc.description, exc.error), error_ttl):
                    _forget(cache, lock_key)
                raise
            except BaseException:
                _forget(cache, lock_key)
                raise
            # The result is published before the lock is released, so no worker computes twice. When it
            # cannot be published the lock is left to expire: the waiting workers give up (provider
            # unavailable, a stale request) instead of computing again, which for a refresh would spend
            # the same refresh token twice.
            if _publish(cache, result_key, ("ok", value), ttl(value) if callable(ttl) else ttl):
                _forget(cache, lock_key)
            return value
        if time.monotonic() >= deadline:
            raise errors.ProviderUnavailable("Another worker's call to the identity provider did not finish in time.")
        time.sleep(0.02)


def shared_result(cache: Any, key: str) -> Any:
    """Return the successful result shared under ``key``, or None (none, a refusal, or unreadable)."""
    found = _open(cache, f"{key}:result")
    return found[1] if found is not None and found[0] == "ok" else None


def forget_result(cache: Any, key: str) -> None:
    """Drop the result shared under ``key`` (the next caller computes again)."""
    cache.delete(f"{key}:result")


def _open(cache: Any, key: str) -> list[Any] | None:
    """The result shared under ``key``; None when there is none, or it was not sealed for this key."""
    entry = SealedView(cache).get(key)
    return entry if isinstance(entry, list) and entry and entry[0] in ("ok", "error") else None


def _publish(cache: Any, key: str, entry: tuple[Any, ...], timeout: float) -> bool:
    """Share ``entry``; False when the cache failed (logged, not raised: the caller has its answer)."""
    try:
        SealedView(cache).set(key, list(entry), timeout)
    except errors.CacheUnavailable:
        logger.warning("A single-flight result could not be shared: the shared cache failed")
        return False
    return True


def _forget(cache: Any, key: str) -> None:
    """Release a lock; on a cache failure it expires by itself after ``lock_timeout``."""
    try:
        cache.delete(key)
    except errors.CacheUnavailable:
        logger.warning("A single-flight lock could not be released: the shared cache failed")


def _unwrap(found: Any) -> Any:
    if found[0] == "ok":
        return found[1]
    _tag, name, description, error = found
    cls = getattr(errors, name, errors.DuoOIDCError)
    if cls is errors.InvalidClaim:
        raise errors.InvalidClaim("sub", description)
    if cls is errors.InsufficientScope:
        raise errors.DuoOIDCError(description)
    raise cls(description, error=error)
