"""The enabled provider rows as this process last read them, re-read from the database at most every
:data:`ENABLED_TTL` seconds per process.

One read serves two readers, so neither costs a query of its own: the bearer registry
(:mod:`django_duo_oidc.resource.registry`: which providers' tokens are trusted) and the check that ends
the browser sessions of a provider that was disabled, deleted or renamed
(:func:`django_duo_oidc.freshness.revalidation.end_if_provider_gone`). A provider an admin disables is
therefore refused by every process within :data:`ENABLED_TTL` seconds, for bearer tokens and sessions alike.

A read that fails (the database is down) raises the database's error and leaves the memo due, so the
next call reads again; each reader decides what that failure means for its request.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from ..models import Provider

__all__ = ["ENABLED_TTL", "EnabledProviders", "enabled_providers", "forget"]

#: The enabled providers are re-read from the database at most this often per process (seconds).
ENABLED_TTL = 5.0


@dataclass(frozen=True)
class EnabledProviders:
    """One read of the enabled provider rows (a new object for each read: compare with ``is``)."""

    #: The rows, the default first (the model's ordering), each with ``introspect_with`` loaded.
    rows: tuple[Provider, ...]
    #: When they were read (``time.time()``, comparable with the times a session stores).
    read_at: float

    @functools.cached_property
    def slugs(self) -> frozenset[str]:
        """The slugs of the enabled providers."""
        return frozenset(provider.slug for provider in self.rows)


class _Memo:
    def __init__(self) -> None:
        self.expires = 0.0  # time.monotonic() of the next read; 0 forces one
        self.read = EnabledProviders((), 0.0)

    def current(self) -> EnabledProviders:
        if time.monotonic() < self.expires:
            return self.read
        read_at = time.time()
        rows = tuple(Provider.objects.filter(enabled=True).select_related("introspect_with"))
        self.read = EnabledProviders(rows, read_at)
        self.expires = time.monotonic() + ENABLED_TTL
        return self.read


_memo = _Memo()


def enabled_providers() -> EnabledProviders:
    """The enabled provider rows, from this process's memory when they were read less than
    :data:`ENABLED_TTL` seconds ago (no query), else read now (one query).

    :raises django.db.DatabaseError: the read failed; the next call reads again.
    """
    return _memo.current()


def forget() -> None:
    """Read the providers again on the next call (tests; after changing providers in code)."""
    _memo.expires = 0.0
