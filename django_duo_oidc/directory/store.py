"""The database side of a directory sync: read what the plan needs, and apply a plan.

:func:`read_identities` and :func:`read_memberships` turn rows into :mod:`.plan` records;
:func:`group_work` decides which Duo groups get a Django group (never taking over one this connection
did not create); :func:`apply_plan` writes a plan (called inside the sync's one transaction).
"""

from __future__ import annotations

import datetime
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import FieldDoesNotExist
from django.utils import timezone

from ..models import DirectoryConnection, DirectoryGroup, DirectoryUser, Identity
from . import plan as planning

__all__ = ["GroupWork", "apply_plan", "group_work", "read_identities", "read_memberships", "users_have_is_active"]

logger = logging.getLogger("django_duo_oidc")

_GROUP_NAME_MAX = Group._meta.get_field("name").max_length or 150

# Reading the database -------------------------------------------------------------------------------


def users_have_is_active() -> bool:
    """Whether the user model has ``is_active`` (a custom model may not: then no one can be deprovisioned)."""
    try:
        get_user_model()._meta.get_field("is_active")
    except FieldDoesNotExist:
        return False
    return True


def read_identities(connection: DirectoryConnection) -> list[planning.IdentityInfo]:
    """The connection's provider's identities, with what the join key may read (claims, user fields)."""
    user_model = get_user_model()
    username_field = user_model.USERNAME_FIELD
    email_field = user_model.get_email_field_name()
    has_email = any(f.name == email_field for f in user_model._meta.get_fields())
    rows = Identity.objects.filter(provider_id=connection.provider_id).values_list(
        "pk",
        "user_id",
        "duo_user_id",
        "last_claims",
        f"user__{username_field}",
        f"user__{email_field}" if has_email else "user_id",
        "user__is_active" if users_have_is_active() else "pk",
    )
    found = []
    for pk, user_pk, duo_user_id, claims, username, email, active in rows.iterator(chunk_size=2000):
        email = email if has_email else ""
        claims = claims if isinstance(claims, dict) else {}
        email_claim = claims.get("email")
        if claims.get("email_verified") is False:
            email_claim, email = None, ""  # an address the provider did not vouch for joins nothing
        username_claim = claims.get("preferred_username")
        found.append(
            planning.IdentityInfo(
                pk=pk,
                user_pk=user_pk,
                duo_user_id=duo_user_id or "",
                claims_email=email_claim if isinstance(email_claim, str) else None,
                claims_username=username_claim if isinstance(username_claim, str) else None,
                user_email=str(email or ""),
                user_username=str(username or ""),
                user_active=bool(active),
            )
        )
    return found


@dataclass
class GroupWork:
    mirrored: dict[str, int | None]  # duo group id -> Django group pk (None: to be created)
    create: list[planning.DuoGroup]
    rename: list[tuple[int, str]]  # (Django group pk, new name)
    rows: dict[str, DirectoryGroup]


def group_work(
    connection: DirectoryConnection, groups: dict[str, planning.DuoGroup], note: Callable[[str, str], Any]
) -> GroupWork:
    """Which Duo groups get a Django group (created, renamed) and which are skipped: a Django group with
    the wanted name that this connection did not create is never taken over. ``note(kind, text)`` is told
    each decision."""
    rows = {row.duo_group_id: row for row in DirectoryGroup.objects.filter(connection=connection)}
    mirrored: dict[str, int | None] = {}
    for mirror in rows.values():
        if mirror.group_id:
            mirrored[mirror.duo_group_id] = mirror.group_id  # also Duo groups deleted since: their members leave
    work = GroupWork(mirrored, [], [], rows)
    wanted_names: set[str] = set()
    for group in sorted(groups.values(), key=lambda g: g.group_id):
        name = f"{connection.group_prefix}{group.name}"
        row = rows.get(group.group_id)
        if len(name) > _GROUP_NAME_MAX or not group.name.strip():
            note("group-skipped", f"Duo group {group.name[:60]!r}: no usable Django group name; skipped")
            continue
        existing = Group.objects.filter(name=name).values_list("pk", flat=True).first()
        if row is not None and row.group_id:
            if existing is None and name not in wanted_names:
                work.rename.append((row.group_id, name))
                note("group-renamed", f"Django group {row.group_id} renamed to {name!r} (Duo renamed it)")
            wanted_names.add(name)
            continue
        if existing is not None or name in wanted_names:
            note(
                "group-skipped",
                f"Duo group {group.name!r}: a Django group named {name!r} exists that this connection did not "
                "create; it is not taken over",
            )
            logger.warning(
                "Directory %s: Django group %r exists and was not created by this connection: skipped",
                connection.slug,
                name,
            )
            continue
        wanted_names.add(name)
        work.create.append(group)
        mirrored[group.group_id] = None
        note("group-created", f"Django group {name!r} created for Duo group {group.name!r}")
    return work


def read_memberships(
    identities: list[planning.IdentityInfo], mirrored: dict[str, int | None]
) -> dict[int, frozenset[str]]:
    """Per user of ``identities``, the mirrored groups (by Duo group id) they are in now."""
    by_pk = {pk: duo_id for duo_id, pk in mirrored.items() if pk}
    if not by_pk:
        return {}
    through = get_user_model().groups.through
    wanted_users = {i.user_pk for i in identities}
    current: dict[int, set[str]] = {}
    for user_pk, group_pk in through.objects.filter(group_id__in=list(by_pk)).values_list("user_id", "group_id"):
        if user_pk in wanted_users:
            current.setdefault(user_pk, set()).add(by_pk[group_pk])
    return {pk: frozenset(ids) for pk, ids in current.items()}


# Applying ---------------------------------------------------------------------------------------------


def _timestamp(seconds: int | None) -> datetime.datetime | None:
    if seconds is None:
        return None
    try:
        return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def apply_plan(
    connection: DirectoryConnection,
    plan: planning.Plan,
    users: dict[str, planning.DuoUser],
    groups: dict[str, planning.DuoGroup],
    work: GroupWork | None,
    confirmed_deleted: list[str],
) -> None:
    """Write ``plan`` (call inside a transaction): groups, links, snapshots, memberships, then access
    (``is_active`` saved through the model, so ``post_save`` forgets this process's bearer memos)."""
    now = timezone.now()
    user_model = get_user_model()
    # Groups first: memberships name them.
    mirrored = dict(work.mirrored) if work else {}
    if work:
        for group_pk, name in work.rename:
            Group.objects.filter(pk=group_pk).update(name=name)
        for group in work.create:
            django_group = Group.objects.create(name=f"{connection.group_prefix}{group.name}")
            mirrored[group.group_id] = django_group.pk
            row = work.rows.get(group.group_id)
            if row is None:
                work.rows[group.group_id] = DirectoryGroup.objects.create(
                    connection=connection, duo_group_id=group.group_id, name=group.name, group=django_group
                )
            else:
                row.group = django_group
                row.name = group.name
                row.save(update_fields=["group", "name"])
        for group in groups.values():
            row = work.rows.get(group.group_id)
            if row is None:
                work.rows[group.group_id] = DirectoryGroup.objects.create(
                    connection=connection, duo_group_id=group.group_id, name=group.name
                )
            elif row.name != group.name:
                row.name = group.name
                row.save(update_fields=["name"])
    # Remembered links.
    Identity.objects.bulk_update(
        [Identity(pk=pk, duo_user_id=duo_id) for pk, duo_id in plan.new_links.items()], ["duo_user_id"], batch_size=500
    )
    _store_snapshots(connection, plan, users, confirmed_deleted, now)
    # Managed group memberships: one insert for all additions, one delete per group for removals.
    through = user_model.groups.through
    additions, removals = [], defaultdict(list)
    for user_pk, (add, remove) in plan.memberships.items():
        additions += [through(user_id=user_pk, group_id=mirrored[g]) for g in add if mirrored.get(g)]
        for g in remove:
            if mirrored_pk := mirrored.get(g):
                removals[mirrored_pk].append(user_pk)
    for group_pk, user_pks in removals.items():
        for chunk in _chunks(user_pks):
            through.objects.filter(group_id=group_pk, user_id__in=chunk).delete()
    through.objects.bulk_create(additions, batch_size=500, ignore_conflicts=True)
    # Access: saved through the model, so post_save forgets the bearer memos of this process.
    for item in plan.deactivate:
        user = user_model._default_manager.get(pk=item.user_pk)
        user.is_active = False
        user.save(update_fields=["is_active"])
        DirectoryUser.objects.filter(connection=connection, duo_user_id=item.duo_user_id).update(deprovisioned_at=now)
    for back in plan.reactivate:
        user = user_model._default_manager.get(pk=back.user_pk)
        user.is_active = True
        user.save(update_fields=["is_active"])
        DirectoryUser.objects.filter(connection=connection, duo_user_id=back.duo_user_id).update(deprovisioned_at=None)
    for chunk in _chunks(plan.unmark):
        DirectoryUser.objects.filter(connection=connection, duo_user_id__in=chunk).update(deprovisioned_at=None)


_SNAPSHOT_FIELDS = ("username", "email", "realname", "status", "is_enrolled", "last_login", "groups", "devices")


def _chunks(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _store_snapshots(
    connection: DirectoryConnection,
    plan: planning.Plan,
    users: dict[str, planning.DuoUser],
    confirmed_deleted: list[str],
    now: datetime.datetime,
) -> None:
    """Upsert one DirectoryUser per listed Duo user; mark the others deleted. Only changed rows are
    written one by one (Django's bulk_update is slow on wide rows); ``seen_at`` is one UPDATE."""
    existing = {row.duo_user_id: row for row in DirectoryUser.objects.filter(connection=connection)}
    to_create, to_update = [], []
    for duo_id, duo_user in users.items():
        row = existing.get(duo_id)
        values = {
            "username": duo_user.username,
            "email": duo_user.email,
            "realname": duo_user.realname,
            "status": duo_user.status,
            "is_enrolled": duo_user.is_enrolled,
            "last_login": _timestamp(duo_user.last_login),
            "groups": [{"group_id": gid, "name": name} for gid, name in duo_user.groups],
            "devices": duo_user.device_counts(),
            "identity_id": plan.links.get(duo_id),
        }
        if row is None:
            to_create.append(DirectoryUser(connection=connection, duo_user_id=duo_id, seen_at=now, **values))
        elif any(getattr(row, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(row, name, value)
            to_update.append(row)
    DirectoryUser.objects.bulk_create(to_create, batch_size=500)
    DirectoryUser.objects.bulk_update(to_update, [*_SNAPSHOT_FIELDS, "identity"], batch_size=200)
    gone = [duo_id for duo_id in existing if duo_id not in users]
    for chunk in _chunks(gone):
        DirectoryUser.objects.filter(connection=connection, duo_user_id__in=chunk, deleted_at=None).update(
            deleted_at=now
        )
    for chunk in _chunks(confirmed_deleted):
        DirectoryUser.objects.filter(connection=connection, duo_user_id__in=chunk).update(
            status=planning.DELETED_STATUS
        )
    for chunk in _chunks([row.pk for duo_id, row in existing.items() if duo_id in users]):
        DirectoryUser.objects.filter(pk__in=chunk).update(seen_at=now, deleted_at=None)
