"""The sync's decisions, on plain values: no database, no network, no Django (unit-tested on dicts).

:func:`parse_user` / :func:`parse_group` turn the Admin API's objects (DUO.md 4.5) into small frozen
records and refuse a malformed one (a bad page: the whole run then changes nothing). :func:`make_plan`
takes the complete listing, the provider's identities and what the last sync saw, and decides

- which Duo user each identity is (remembered ``duo_user_id`` first, else the join key, case-insensitive;
  an ambiguous key links nobody),
- who is deprovisioned (Duo status other than ``active``/``bypass``, or deleted from Duo) and who is
  re-activated (only users a sync deactivated and no one re-activated since, once Duo lists them active
  or bypass again; a user re-activated by hand loses the sync's mark, ``Plan.unmark``),
- which managed groups each linked user gains or loses (only groups mirrored from Duo),
- whether the deprovisioning guard stops the run.

:mod:`.sync` reads the database into these records, calls :func:`make_plan`, and applies the plan.
Over 300 lines on purpose: every decision of a run is here, where the unit tests see all of them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACTIVE_STATUSES",
    "DELETED_STATUS",
    "BadListing",
    "DuoGroup",
    "DuoUser",
    "IdentityInfo",
    "Plan",
    "PreviousUser",
    "allowed_deactivations",
    "deprovision_reason",
    "join_key",
    "known_deleted",
    "make_plan",
    "parse_group",
    "parse_user",
    "unlisted_links",
]

#: Duo statuses that may use the site (DUO.md 4.5); every other status deprovisions.
ACTIVE_STATUSES = frozenset({"active", "bypass"})
#: ``DirectoryUser.status`` of a user whose deletion a deprovisioning run confirmed.
DELETED_STATUS = "deleted"
# Bounds for values kept from a listing (the fields of DirectoryUser).
_MAX_TEXT = 255
_MAX_GROUPS_PER_USER = 1000  # Duo allows 100 (DUO.md 4.4); more is a bad page, not a user


class BadListing(ValueError):
    """An object of the listing is not what the Admin API sends: the page is bad, the run changes nothing."""


@dataclass(frozen=True, slots=True)
class DuoGroup:
    group_id: str
    name: str


@dataclass(frozen=True, slots=True)
class DuoUser:
    """What the sync keeps of one Duo user (memory-light: no aliases, notes, phone numbers)."""

    user_id: str
    username: str
    email: str
    realname: str
    status: str
    is_enrolled: bool
    last_login: int | None  # Unix seconds (v1 endpoints)
    groups: tuple[tuple[str, str], ...]  # (group_id, name)
    devices: tuple[int, int, int, int]  # phones, tokens, webauthn, desktop

    def device_counts(self) -> dict[str, int]:
        phones, tokens, webauthn, desktop = self.devices
        return {"phones": phones, "tokens": tokens, "webauthn": webauthn, "desktop": desktop}


@dataclass(frozen=True, slots=True)
class IdentityInfo:
    """An identity of the connection's provider and what the join key may read from it."""

    pk: int
    user_pk: int
    duo_user_id: str  # remembered from an earlier sync, or ""
    claims_email: str | None  # Identity.last_claims
    claims_username: str | None
    user_email: str  # the Django user's fields: the fallbacks
    user_username: str
    user_active: bool


@dataclass(frozen=True, slots=True)
class PreviousUser:
    """A DirectoryUser row: what an earlier sync saw."""

    duo_user_id: str
    deprovisioned: bool  # deprovisioned_at is set: a sync made the user inactive
    deleted: bool  # deleted_at is set
    # A deprovisioning run confirmed the deletion (Duo answered not found; status "deleted"): it is not
    # looked up, nor counted as missing from the listing, again.
    confirmed_deleted: bool = False


def _text(value: Any, name: str, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise BadListing(f"{name} is not a string")
    return value[:_MAX_TEXT]


def _count(value: Any) -> int:
    if value is None:
        return 0
    if not isinstance(value, list):
        raise BadListing("a device list is not a list")
    return len(value)


def parse_group(obj: Any) -> DuoGroup:
    """A group object of ``GET /admin/v1/groups``; :class:`BadListing` when malformed."""
    if not isinstance(obj, dict):
        raise BadListing("a group is not an object")
    return DuoGroup(_text(obj.get("group_id"), "group_id", required=True), _text(obj.get("name"), "name"))


def parse_user(obj: Any) -> DuoUser:
    """A user object of ``GET /admin/v1/users`` (with its embedded groups and devices)."""
    if not isinstance(obj, dict):
        raise BadListing("a user is not an object")
    groups_in = obj.get("groups") or []
    if not isinstance(groups_in, list) or len(groups_in) > _MAX_GROUPS_PER_USER:
        raise BadListing("a user's groups are not a list")
    groups = tuple(sorted({(g.group_id, g.name) for g in map(parse_group, groups_in)}))
    last_login = obj.get("last_login")
    if last_login is not None and (not isinstance(last_login, int) or isinstance(last_login, bool)):
        raise BadListing("last_login is not a number")
    enrolled = obj.get("is_enrolled", False)
    if not isinstance(enrolled, bool):
        raise BadListing("is_enrolled is not a boolean")
    status = _text(obj.get("status"), "status", required=True).strip().lower()
    return DuoUser(
        user_id=_text(obj.get("user_id"), "user_id", required=True),
        username=_text(obj.get("username"), "username"),
        email=_text(obj.get("email"), "email"),
        realname=_text(obj.get("realname"), "realname"),
        status=status,
        is_enrolled=enrolled,
        last_login=last_login,
        groups=groups,
        devices=(
            _count(obj.get("phones")),
            _count(obj.get("tokens")),
            _count(obj.get("webauthncredentials")),
            _count(obj.get("desktoptokens") or obj.get("desktop_authenticators")),
        ),
    )


def deprovision_reason(status: str | None) -> str | None:
    """The reason code for deprovisioning a user with Duo ``status`` (None: deleted), or None when active."""
    if status is None:
        return "duo-deleted"
    if status in ACTIVE_STATUSES:
        return None
    if status in ("disabled", "locked out", "pending deletion"):
        return "duo-" + status.replace(" ", "-")
    return "duo-status-unknown"  # fail closed: a status Duo may add later does not keep access


def join_key(identity: IdentityInfo, match: str) -> str:
    """The identity's join key, casefolded: the login's claim, else the Django user's field ("" = none)."""
    if match == "email":
        value = identity.claims_email or identity.user_email
    else:
        value = identity.claims_username or identity.user_username
    return (value or "").strip().casefold()


def _duo_key(user: DuoUser, match: str) -> str:
    return (user.email if match == "email" else user.username).strip().casefold()


def unlisted_links(
    users: Mapping[str, DuoUser], identities: Iterable[IdentityInfo], previous: Mapping[str, PreviousUser]
) -> list[str]:
    """Remembered Duo user ids this connection saw before (``previous``) that the listing lacks.

    Each must be confirmed deleted before it counts (an offset listing can skip a user when another is
    deleted while it pages). An id this connection never listed is another directory's (two Duo accounts
    can govern one provider): never a deletion here. A deletion an earlier run confirmed is not missing
    again (:func:`known_deleted`): counted in every run, departed users would pile up against the guard
    until no run could deprovision anyone.
    """
    return _unlisted_remembered(users, identities, previous, confirmed_deleted=False)


def known_deleted(
    users: Mapping[str, DuoUser], identities: Iterable[IdentityInfo], previous: Mapping[str, PreviousUser]
) -> list[str]:
    """Remembered Duo user ids whose deletion an earlier run confirmed and that the listing still lacks:
    deleted without asking Duo again (a user re-activated here by hand meanwhile is deactivated again)."""
    return _unlisted_remembered(users, identities, previous, confirmed_deleted=True)


def _unlisted_remembered(
    users: Mapping[str, DuoUser],
    identities: Iterable[IdentityInfo],
    previous: Mapping[str, PreviousUser],
    *,
    confirmed_deleted: bool,
) -> list[str]:
    """Linked Duo user ids the listing lacks that an earlier run listed, whose deletion was (or was not
    yet) confirmed."""
    return sorted(
        {
            i.duo_user_id
            for i in identities
            if i.duo_user_id
            and i.duo_user_id not in users
            and i.duo_user_id in previous
            and bool(previous[i.duo_user_id].confirmed_deleted) is confirmed_deleted
        }
    )


def allowed_deactivations(linked: int, max_percent: int) -> int:
    """How many linked users one run may deactivate: ``floor(linked * max_percent / 100)``, and at least
    one while ``max_percent`` > 0 (so a single disabled user of a small directory is still deprovisioned).
    ``max_percent`` 0 allows none (every deactivation then needs ``force``)."""
    if max_percent <= 0:
        return 0
    return max(1, math.floor(linked * min(max_percent, 100) / 100))


@dataclass(frozen=True, slots=True)
class Deactivation:
    identity_pk: int
    user_pk: int
    duo_user_id: str
    username: str  # Duo username (or the Django one for a user Duo deleted)
    reason: str


@dataclass(frozen=True, slots=True)
class Reactivation:
    identity_pk: int
    user_pk: int
    duo_user_id: str
    username: str


@dataclass
class Plan:
    """Everything a run would change. ``blocked`` holds why it must change nothing (the guard)."""

    links: dict[str, int] = field(default_factory=dict)  # duo_user_id -> identity pk, this run's matches
    new_links: dict[int, str] = field(default_factory=dict)  # identity pk -> duo_user_id to remember
    ambiguous: list[str] = field(default_factory=list)  # safe descriptions, logged as warnings
    deleted_ids: list[str] = field(default_factory=list)  # known to an earlier sync, not listed now
    deactivate: list[Deactivation] = field(default_factory=list)
    reactivate: list[Reactivation] = field(default_factory=list)
    # Duo user ids whose "deactivated by a sync" mark is over: active in Duo and active here again (an
    # administrator re-activated them first), so a later deactivation by hand is never undone by a run.
    unmark: list[str] = field(default_factory=list)
    # user pk -> (duo group ids to add, duo group ids to remove), managed groups only
    memberships: dict[int, tuple[frozenset[str], frozenset[str]]] = field(default_factory=dict)
    linked_users: int = 0
    allowed: int = 0
    blocked: str = ""


def _match(
    users: Mapping[str, DuoUser], identities: Iterable[IdentityInfo], match: str, plan: Plan
) -> dict[str, IdentityInfo]:
    """Duo user id -> identity. Remembered ids first; then the join key, one-to-one only."""
    by_remembered: dict[str, list[IdentityInfo]] = defaultdict(list)
    unremembered: list[IdentityInfo] = []
    for identity in identities:
        if identity.duo_user_id:
            by_remembered[identity.duo_user_id].append(identity)
        else:
            unremembered.append(identity)
    linked: dict[str, IdentityInfo] = {}
    for duo_id, found in by_remembered.items():
        if len(found) > 1:
            plan.ambiguous.append(f"Duo user {duo_id} is remembered on {len(found)} identities: none is linked")
            continue
        linked[duo_id] = found[0]
    keyed_identities: dict[str, list[IdentityInfo]] = defaultdict(list)
    for identity in unremembered:
        key = join_key(identity, match)
        if key:
            keyed_identities[key].append(identity)
    keyed_users: dict[str, list[DuoUser]] = defaultdict(list)
    for user in users.values():
        if user.user_id in linked or user.user_id in by_remembered:
            continue
        key = _duo_key(user, match)
        if key:
            keyed_users[key].append(user)
    for key, duo_users in keyed_users.items():
        candidates = keyed_identities.get(key, [])
        if not candidates:
            continue
        if len(duo_users) > 1 or len(candidates) > 1:
            names = ", ".join(sorted(u.username or u.user_id for u in duo_users))
            plan.ambiguous.append(
                f"{len(duo_users)} Duo user(s) ({names}) and {len(candidates)} identit(y/ies) share one {match}: "
                "none is linked"
            )
            continue
        linked[duo_users[0].user_id] = candidates[0]
        plan.new_links[candidates[0].pk] = duo_users[0].user_id
    return linked


def make_plan(
    *,
    users: Mapping[str, DuoUser],
    groups: Mapping[str, DuoGroup],
    identities: Iterable[IdentityInfo],
    previous: Mapping[str, PreviousUser],
    confirmed_deleted: Iterable[str] = (),
    match: str = "email",
    deprovision: bool = True,
    manage_groups: bool = True,
    max_percent: int = 10,
    force: bool = False,
    current_groups: Mapping[int, frozenset[str]] | None = None,
) -> Plan:
    """Decide a run from a COMPLETE listing (``users`` and ``groups`` by id).

    ``previous``: DirectoryUser rows by Duo user id. ``confirmed_deleted``: Duo user ids not listed and
    confirmed gone (the caller asks Duo about each before a deletion counts). ``current_groups``: per
    Django user pk, the managed groups (by Duo group id) the user is in now.
    """
    plan = Plan()
    linked = _match(users, identities, match, plan)
    plan.links = {duo_id: identity.pk for duo_id, identity in linked.items()}
    deleted = set(confirmed_deleted)
    plan.deleted_ids = sorted(duo_id for duo_id, row in previous.items() if duo_id not in users and not row.deleted)
    # One Django user may have several identities: the user counts once, and is deactivated once.
    users_seen: set[int] = set()
    deactivated_users: set[int] = set()
    for duo_id, identity in sorted(linked.items()):
        duo_user = users.get(duo_id)
        if duo_user is None and duo_id not in deleted:
            continue  # not listed and not confirmed deleted (or another directory's): no decision on a guess
        users_seen.add(identity.user_pk)
        status = duo_user.status if duo_user else None
        reason = deprovision_reason(status)
        username = duo_user.username if duo_user else identity.user_username
        row = previous.get(duo_id)
        if reason and deprovision:
            if identity.user_active and identity.user_pk not in deactivated_users:
                deactivated_users.add(identity.user_pk)
                plan.deactivate.append(Deactivation(identity.pk, identity.user_pk, duo_id, username, reason))
        elif reason is None and row is not None and row.deprovisioned:
            if identity.user_active:
                plan.unmark.append(duo_id)  # re-activated by hand already: the sync's deactivation is over
            else:
                plan.reactivate.append(Reactivation(identity.pk, identity.user_pk, duo_id, username))
        if manage_groups and current_groups is not None:
            wanted = frozenset(gid for gid, _name in (duo_user.groups if duo_user else ()) if gid in groups)
            current = current_groups.get(identity.user_pk, frozenset())
            add, remove = wanted - current, current - wanted
            if add or remove:
                plan.memberships[identity.user_pk] = (add, remove)
    # A user re-activated by one identity and deactivated by another stays inactive.
    plan.reactivate = [r for r in plan.reactivate if r.user_pk not in deactivated_users]
    plan.linked_users = len(users_seen)
    plan.allowed = allowed_deactivations(plan.linked_users, max_percent)
    if len(plan.deactivate) > plan.allowed and not force:
        plan.blocked = (
            f"This run would deactivate {len(plan.deactivate)} of {plan.linked_users} linked users, more than "
            f"the {max_percent}% allowed ({plan.allowed}): nothing was changed. Check the join key and Duo, "
            "then run again with --force if it is right."
        )
    return plan
