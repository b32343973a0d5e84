"""Scope strings (RFC 6749 section 3.3): parsing and the one scope decision."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Requirement", "format_scopes", "missing_scopes", "parse_scopes"]

# scope-token = 1*( %x21 / %x23-5B / %x5D-7E )  (RFC 6749 section 3.3)
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


def parse_scopes(value: str | Iterable[str] | None) -> frozenset[str]:
    """Return the set of scope tokens in a space-delimited string (or an iterable of them).

    ``None`` means no scopes. Tokens that are not valid scope-tokens are dropped: they can never
    match a requirement, and keeping them would let odd bytes into logs and templates.
    """
    if value is None:
        return frozenset()
    items = value.split(" ") if isinstance(value, str) else value
    return frozenset(s for s in items if isinstance(s, str) and _SCOPE_TOKEN.match(s))


def format_scopes(scopes: Iterable[str]) -> str:
    """Return scopes as a space-delimited string in a stable (sorted) order."""
    return " ".join(sorted(set(scopes)))


def missing_scopes(required: Iterable[str], granted: Iterable[str], *, any_of: bool = False) -> frozenset[str]:
    """Return the required scopes that are not granted (empty when the requirement is met).

    With ``any_of`` the requirement is met when at least one required scope is granted; otherwise
    every required scope must be granted. An empty requirement is always met.
    """
    required = frozenset(required)
    granted = frozenset(granted)
    if any_of:
        return frozenset() if not required or required & granted else required
    return required - granted


@dataclass(frozen=True)
class Requirement:
    """What a view needs: scopes (all, or any one of them), and optionally a recent authentication.

    The one description of a requirement that the decorator, the mixin, DRF's ``HasScopes``, scope
    rules and the RFC 9728 metadata share; :func:`missing_scopes` is the one decision on it.
    """

    scopes: frozenset[str]
    any_of: bool = False
    max_age: int | None = None

    @classmethod
    def of(
        cls, scopes: str | Iterable[str | Iterable[str]], *, any_of: bool = False, max_age: int | None = None
    ) -> Requirement:
        """Build a requirement from a space-separated string, or an iterable of strings and iterables."""
        items = [scopes] if isinstance(scopes, str) else scopes
        names = (s for item in items for group in ([item] if isinstance(item, str) else item) for s in group.split())
        return cls(frozenset(names), any_of, max_age)
