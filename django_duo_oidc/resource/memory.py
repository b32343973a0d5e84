"""What a process remembers about tokens it has judged: the proven grant (never the token) or the
refusal (its error class, description and claim: never the exception, its traceback or the token),
under the token's SHA-256, bounded in entries and in bytes (``SEEN_MAX``, ``SEEN_MAX_BYTES``), the
oldest entries going first.

And the users those tokens are linked to (:func:`remember_user`, :func:`user_copy`): a pristine copy
of each, handed out as a new instance per request, so a seen token costs no query even when the view
reads ``request.user``; :mod:`.context` says for how long, and forgets them when users change.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import logging
import sys
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.db.models.base import ModelState

from ..core.bearer import (
    AccessGrant,
)
from ..core.errors import (
    InvalidClaim,
    MalformedToken,
    TokenError,
    UnknownKey,
)

logger = logging.getLogger("django_duo_oidc")

# Tokens remembered per process (proven or refused), bounded twice: at most SEEN_MAX entries and about
# SEEN_MAX_BYTES of accounted size (a refusal is a fixed ~ENTRY_OVERHEAD; a proven grant adds the size
# of its claims, which a provider may make large). The oldest entries go first. So a flood of forged
# tokens costs a worker at most ~SEEN_MAX * ENTRY_OVERHEAD (about 5 MB), never the tokens themselves.
SEEN_MAX = 10_000
SEEN_MAX_BYTES = 16 * 1024 * 1024
ENTRY_OVERHEAD = 512
# How long a refusal is remembered.
REFUSED_FOR = 60.0


@dataclass(frozen=True, slots=True)
class _Seen:
    grant: AccessGrant
    version: tuple[Any, ...]
    # When the provider last confirmed the token by introspection; None in jwt mode (never asked).
    checked_at: float | None
    local: AccessGrant | None  # what the JWT itself said, kept to merge with later introspections
    size: int = 0  # accounted bytes (see SEEN_MAX_BYTES)

    @classmethod
    def of(
        cls,
        grant: AccessGrant,
        version: tuple[Any, ...],
        checked_at: float | None,
        local: AccessGrant | None,
        *,
        token_length: int,
    ) -> _Seen:
        # Claims read from the JWT itself are bounded by the token: about 1.5 times its length in Python
        # objects (the first sight of a token costs no walk over them). Claims from an introspection
        # answer are not bounded by the token: those are measured.
        size = ENTRY_OVERHEAD + (3 * token_length // 2 if local is not None else 0)
        if local is None or grant.claims is not local.claims:
            size += _approx_size(grant.claims)
        return cls(grant, version, checked_at, local, size)


@dataclass(frozen=True, slots=True)
class _Refused:
    """A remembered refusal: only what the answer and the log line need, never the exception itself
    (its traceback holds the request's frames and the token, and grows each time it is raised again)."""

    error: type[TokenError]
    description: str
    claim: str | None
    until: float
    size: int = ENTRY_OVERHEAD

    @classmethod
    def of(cls, exc: TokenError, until: float) -> _Refused:
        error = type(exc)
        while error.__module__ != TokenError.__module__:  # a private subclass: its public base, whose
            error = error.__base__  # type: ignore[assignment]  # constructor exception() knows
        description, claim = exc.description, getattr(exc, "claim", None)
        # The description and claim are accounted too: a description may quote what the sender sent.
        size = ENTRY_OVERHEAD + sys.getsizeof(description) + (sys.getsizeof(claim) if claim else 0)
        return cls(error, description, claim, until, size)

    def exception(self) -> TokenError:
        """A fresh exception, equal to the one refused (raised anew, its traceback starts empty)."""
        if issubclass(self.error, InvalidClaim):
            return self.error(self.claim or "", self.description)
        return self.error(self.description)


def _approx_size(value: Any) -> int:
    """Approximate bytes held by a JSON-like value (claims, an introspection answer); iterative, so a
    deeply nested answer cannot exhaust the stack."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return total


class _UntrustedIssuer(InvalidClaim):
    """No enabled provider has the token's issuer (yet)."""


class _NoIntrospector(MalformedToken):
    """An opaque token, and no enabled provider introspects (yet)."""


# Refusals that depend on this site's configuration or the provider's keys, not on the token alone:
# never remembered, so a provider added or a key rotated in is honoured at the next provider-list
# read (providers.enabled.ENABLED_TTL) or JWKS refetch, not REFUSED_FOR later. Each costs a parse and a dict lookup.
_NOT_REMEMBERED = (UnknownKey, _UntrustedIssuer, _NoIntrospector)

_seen: OrderedDict[bytes, _Seen | _Refused] = OrderedDict()
_seen_bytes = 0  # the sum of the entries' sizes
_seen_lock = threading.Lock()


def _remember(digest: bytes, entry: _Seen | _Refused) -> None:
    global _seen_bytes
    with _seen_lock:
        old = _seen.pop(digest, None)
        if old is not None:
            _seen_bytes -= old.size
        if entry.size > SEEN_MAX_BYTES:
            return  # larger than the whole budget: proven again next time rather than evict everything
        while _seen and (len(_seen) >= SEEN_MAX or _seen_bytes + entry.size > SEEN_MAX_BYTES):
            _digest, evicted = _seen.popitem(last=False)  # the oldest entry first
            _seen_bytes -= evicted.size
        _seen[digest] = entry
        _seen_bytes += entry.size


def forget() -> None:
    """Forget every token this process has judged."""
    global _seen_bytes
    with _seen_lock:
        _seen.clear()
        _seen_bytes = 0


# Linked users -----------------------------------------------------------------------------------
# A pristine instance of each user a bearer token was linked to, by pk, with when (monotonic) it must
# be read again. It is never handed out: each request gets its own copy (user_copy), so two requests
# in two threads never share one mutable instance (a view setting an attribute, or Django's permission
# caches, stay in that request). At most USER_COPIES_MAX users; when full, all are forgotten.
USER_COPIES_MAX = 10_000
_user_copies: dict[Any, tuple[Any, float]] = {}


def remember_user(user: Any, until: float) -> None:
    """Keep a pristine copy of ``user`` (just read, active) until ``until`` (monotonic)."""
    if len(_user_copies) >= USER_COPIES_MAX:
        _user_copies.clear()
    _user_copies[user.pk] = (_Template.of(user), until)


def user_copy(pk: Any) -> Any | None:
    """A new instance of the remembered user ``pk``, or None when none is remembered (or it expired)."""
    found = _user_copies.get(pk)
    if found is None or time.monotonic() >= found[1]:
        return None
    return found[0].instance()


def forget_users() -> None:
    """Forget every remembered user (a user or an identity changed)."""
    _user_copies.clear()


# Field values shared between copies as they are: immutable. Anything else (a JSONField's dict on a
# custom user model) is deep-copied, so no request can change what the next one is given.
_IMMUTABLE = (str, int, float, bool, bytes, type(None), datetime.date, datetime.time, decimal.Decimal, uuid.UUID)


@dataclass(frozen=True, slots=True)
class _Template:
    """What a user instance is made from: its class, its immutable field values (shared by every copy)
    and its other values (deep-copied for each), without Django's per-instance ``_*_cache`` attributes.
    A new instance costs a dict copy and a ``ModelState``: about 5 times cheaper than ``copy.copy``
    (which pickles and unpickles), and as independent (a related object is loaded anew when read)."""

    cls: type
    shared: dict[str, Any]
    copied: tuple[tuple[str, Any], ...]
    db: str | None

    @classmethod
    def of(cls, user: Any) -> _Template:
        shared: dict[str, Any] = {}
        copied: list[tuple[str, Any]] = []
        for name, value in user.__dict__.items():
            if name == "_state" or (name.startswith("_") and name.endswith("_cache")):
                continue
            if isinstance(value, _IMMUTABLE):
                shared[name] = value
            else:
                copied.append((name, copy.deepcopy(value)))
        return cls(type(user), shared, tuple(copied), user._state.db)

    def instance(self) -> Any:
        new: Any = object.__new__(self.cls)
        values = self.shared.copy()
        for name, value in self.copied:
            values[name] = copy.deepcopy(value)
        state = ModelState()
        state.db, state.adding = self.db, False
        values["_state"] = state
        new.__dict__ = values
        return new
