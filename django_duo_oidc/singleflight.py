"""One worker does the work, the others wait for its result: coordination through Django's cache.

With a shared cache (Redis) this spans processes: N workers that find the same session's token due
for refresh or introspection make one provider call between them. A refresh done twice with a
rotating refresh token would revoke the whole grant (REAL.md: oidc-provider does exactly that).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from .core import errors

T = TypeVar("T")


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
    """
    result_key, lock_key = f"{key}:result", f"{key}:lock"
    deadline = time.monotonic() + lock_timeout
    while True:
        found = cache.get(result_key)
        if found is not None:
            return _unwrap(found)
        if cache.add(lock_key, 1, lock_timeout):
            # Another worker may have published its result and released the lock between our read
            # and our add: read again before computing, or the work is done twice.
            found = cache.get(result_key)
            if found is not None:
                cache.delete(lock_key)
                return _unwrap(found)
            try:
                value = compute()
            except errors.DuoOIDCError as exc:
                cache.set(result_key, ("error", type(exc).__name__, exc.description, exc.error), error_ttl)
                raise
            except BaseException:
                cache.delete(lock_key)
                raise
            else:
                # The result is published before the lock is released, so no worker computes twice.
                cache.set(result_key, ("ok", value), ttl(value) if callable(ttl) else ttl)
            finally:
                cache.delete(lock_key)
            return value
        if time.monotonic() >= deadline:
            raise errors.ProviderUnavailable("Another worker's call to the identity provider did not finish in time.")
        time.sleep(0.02)


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
