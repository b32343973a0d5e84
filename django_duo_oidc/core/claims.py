"""Claims to user fields and group rules, with no ORM: the Django glue applies the result."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

__all__ = [
    "ClaimMapping",
    "GroupRuleSpec",
    "UserFields",
    "claim_values",
    "glob_matches_any_value",
    "group_value_matches",
    "map_claims",
    "matching_rules",
]


@dataclass(frozen=True)
class ClaimMapping:
    """Which claims fill which user fields.

    The defaults work with Duo, which sends ``email``, ``name``, ``given_name`` and
    ``family_name`` but usually no ``preferred_username`` and no ``email_verified``.
    """

    username_claims: tuple[str, ...] = ("preferred_username", "email")
    email_claim: str = "email"
    first_name_claim: str = "given_name"
    last_name_claim: str = "family_name"


@dataclass(frozen=True)
class UserFields:
    """User attributes read from the claims; ``None`` means the claim was absent."""

    username: str | None
    email: str | None
    first_name: str | None
    last_name: str | None


@dataclass(frozen=True)
class GroupRuleSpec:
    """When ``claim`` holds ``value`` (or a list containing it), the rule applies."""

    claim: str
    value: str
    group: str | None = None
    staff: bool = False


def _string(claims: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = claims.get(name) if name else None
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:limit] if value else None


def map_claims(claims: Mapping[str, Any], mapping: ClaimMapping) -> UserFields:
    """Return the user fields the claims provide under ``mapping``."""
    username = next((v for v in (_string(claims, c, 150) for c in mapping.username_claims) if v), None)
    return UserFields(
        username=username,
        email=_string(claims, mapping.email_claim, 254),
        first_name=_string(claims, mapping.first_name_claim, 150),
        last_name=_string(claims, mapping.last_name_claim, 150),
    )


def claim_values(claims: Mapping[str, Any], name: str) -> frozenset[str]:
    """Return the string values of a claim that may be a string or a list of strings.

    Duo sends no group claim by default; an admin may map one, as a string or a list.
    """
    value = claims.get(name)
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


_WILDCARDS = frozenset("*?")


def group_value_matches(rule_value: str, sent: str) -> bool:
    """Whether a claim value ``sent`` matches a group rule's value.

    - A value with ``*`` or ``?`` is a glob over the whole value (``crm-*``, ``/org/*``, ``*/crm-users``);
      only those two are wildcards (a ``[`` is itself: an existing rule ``[Admin] Finance`` stays exact).
    - A value starting with ``/`` is a path: only that exact path matches.
    - Any other value matches itself, or the top-level group path ``/<value>`` (Keycloak sends groups as
      full paths: ``/crm-users``). A nested path (``/org/crm-users``) needs that exact path or a glob:
      a subgroup anyone may create somewhere else never matches a rule by its last name.
    - A value that names nothing (:func:`glob_matches_any_value`: ``*``, ``/*``...) is no glob: it matches
      only itself, as before globs existed, so a row written then (or around the admin's refusal) never
      comes to match every user.
    Case-sensitive, as the claim is.
    """
    if _WILDCARDS & set(rule_value) and not glob_matches_any_value(rule_value):
        return fnmatch.fnmatchcase(sent, rule_value.replace("[", "[[]"))
    if sent == rule_value:
        return True
    return not rule_value.startswith("/") and sent == "/" + rule_value


def glob_matches_any_value(rule_value: str) -> bool:
    """Whether a group rule's value is a glob that names nothing: only ``*``, ``?`` and ``/`` with at
    least one ``*`` (``*``, ``?*``, ``/*``, ``*/*``). It matches whatever group (or group path) a user
    has, so a staff rule on it makes everyone with any group staff; the admin refuses such a value."""
    return "*" in rule_value and set(rule_value) <= {"*", "?", "/"}


class RuleLike(Protocol):
    """What :func:`matching_rules` reads of a rule: a :class:`GroupRuleSpec`, or a ``GroupRule`` row."""

    @property
    def claim(self) -> str: ...

    @property
    def value(self) -> str: ...


_Rule = TypeVar("_Rule", bound=RuleLike)


def matching_rules(claims: Mapping[str, Any], rules: Iterable[_Rule]) -> list[_Rule]:
    """Return the rules whose claim holds a value they match (:func:`group_value_matches`), as given."""
    matched = []
    for rule in rules:
        values = claim_values(claims, rule.claim)
        if rule.value in values or any(group_value_matches(rule.value, v) for v in values):
            matched.append(rule)
    return matched
