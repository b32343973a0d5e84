"""Sync a Duo Admin API directory into Django: users' Duo state, mirrored groups, deprovisioning.

One run (:func:`sync_connection`), DUO.md 4.6, read-only calls only:

1. Take the sync lock in the shared cache (``add``: one run at a time across workers and hosts; the
   cache down means no run, fail closed).
2. List ALL groups, then ALL users (``duo_client``'s paging, 300 users a page, embedded groups and
   devices: no per-user call). If any page fails (rate limit after ``duo_client``'s back-off, network,
   TLS, a non-OK envelope, a malformed object, a repeated user) nothing is changed: "partial listing".
3. Remembered Duo users the listing lacks are confirmed one by one (``GET /admin/v1/users/{id}``): a
   404 is a deletion; a user who is still there means the listing moved under us, and nothing changes.
4. Plan (:mod:`.plan`): matches, deprovisioning, re-activation, managed group memberships, the guard.
5. Apply everything in one transaction; then end the deprovisioned users' sessions, forget the bearer
   memos, send the signals, and store the outcome on the connection. A dry run stops after 4.

Every change is logged with its reason (user pk, Duo username; never a secret). The database side
(reading rows, writing a plan) is :mod:`.store`. Over 300 lines on purpose: a run's order (lock,
listing, confirmation, plan, transaction, after-commit) reads top to bottom in one module.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from django.db import Error as DBError
from django.db import transaction
from django.utils import timezone

from .. import sessions as live_sessions
from ..core.errors import CacheUnavailable
from ..models import DirectoryConnection, DirectoryUser
from ..resource.context import forget_linked_users
from ..signals import directory_synced, user_deprovisioned, user_reprovisioned
from ..state.cache import shared_cache
from . import plan as planning
from .client import PAGE_SIZE, DirectoryError, admin_client, describe_error, guarded_call, iterate
from .store import apply_plan, group_work, read_identities, read_memberships, users_have_is_active

__all__ = ["LOCK_KEY", "LOCK_TTL", "Change", "SyncResult", "sync_all", "sync_connection"]

logger = logging.getLogger("django_duo_oidc")

#: The cache key of the sync lock: one run at a time, whichever connection.
LOCK_KEY = "duo_oidc:directory-sync-lock"
#: Seconds the lock lives if a run dies without releasing it; longer than any run (34 pages for 10,000
#: users, each at worst a timeout plus about a minute of duo_client's back-off). A run that outlives it
#: changes nothing.
LOCK_TTL = 3600
#: Groups per page: the maximum of ``GET /admin/v1/groups``.
GROUP_PAGE_SIZE = 100
#: More objects than this in one listing is a server that pages forever, not a directory.
MAX_OBJECTS = 1_000_000
#: Unlisted remembered users confirmed one by one at most; more fails the run (a listing that lost
#: that many users is not trusted).
MAX_CONFIRMATIONS = 100
#: Duo's error code for "Resource not found" (DUO.md 4.3): the only answer that confirms a deletion.
NOT_FOUND_CODE = 40401


@dataclass(frozen=True)
class Change:
    """One change of a run (or of a dry run: one it would make)."""

    kind: str  # deactivated, reactivated, linked, group-created, group-renamed, group-skipped,
    #           membership-added, membership-removed, deleted-in-duo
    text: str
    user_pk: int | None = None

    def __str__(self) -> str:
        return self.text


@dataclass
class SyncResult:
    """The outcome of one run: ``ok``, a one-line ``message``, ``counts`` and the ``changes``."""

    connection: str
    dry_run: bool = False
    ok: bool = False
    message: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, kind: str, text: str, user_pk: int | None = None) -> None:
        self.changes.append(Change(kind, text, user_pk))
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def summary(self) -> str:
        """One line for ``last_sync_summary`` and the command's last line."""
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        verdict = "would change" if self.dry_run else "changed"
        head = self.message or ("OK" if self.ok else "failed")
        return f"{head} ({verdict}: {counts or 'nothing'})"


class SyncFailed(Exception):
    """The run stops and changes nothing; the message is safe to print and store."""


# The lock --------------------------------------------------------------------------------------------


class _Lock:
    def __init__(self) -> None:
        self.token = secrets.token_hex(16)
        self.taken_at = time.monotonic()

    def acquire(self) -> None:
        try:
            taken = shared_cache().add(LOCK_KEY, self.token, LOCK_TTL)
        except CacheUnavailable:
            raise SyncFailed("The shared cache is unavailable: no sync without its lock.") from None
        if not taken:
            raise SyncFailed("Another sync is running; this one did nothing.")

    def still_held(self) -> bool:
        if time.monotonic() - self.taken_at > LOCK_TTL - 60:
            return False
        try:
            return bool(shared_cache().get(LOCK_KEY) == self.token)
        except CacheUnavailable:
            return False

    def release(self) -> None:
        # Not atomic (Django's cache API has no compare-and-delete), but only ever deletes our own token
        # unless the lock expired between the two calls, which still_held() makes a run refuse to apply.
        try:
            if shared_cache().get(LOCK_KEY) == self.token:
                shared_cache().delete(LOCK_KEY)
        except CacheUnavailable:
            logger.error("The directory sync lock could not be released; it expires in %s s", LOCK_TTL)


# Listing ---------------------------------------------------------------------------------------------


def _listing(connection: DirectoryConnection, client: Any, path: str, limit: int) -> Iterator[Any]:
    # duo_client pages by metadata.next_offset and backs off on 429 itself; we only count.
    for n, obj in enumerate(iterate(connection, client.json_paging_api_call("GET", path, {"limit": str(limit)}))):
        if n >= MAX_OBJECTS:
            raise planning.BadListing("more objects than any directory holds")
        yield obj


def _list_everything(
    connection: DirectoryConnection, client: Any
) -> tuple[dict[str, planning.DuoGroup], dict[str, planning.DuoUser]]:
    groups: dict[str, planning.DuoGroup] = {}
    for obj in _listing(connection, client, "/admin/v1/groups", GROUP_PAGE_SIZE):
        group = planning.parse_group(obj)
        if group.group_id in groups:
            raise planning.BadListing("the group listing repeats a group (it moved while paging)")
        groups[group.group_id] = group
    users: dict[str, planning.DuoUser] = {}
    for obj in _listing(connection, client, "/admin/v1/users", PAGE_SIZE):
        user = planning.parse_user(obj)
        if user.user_id in users:
            raise planning.BadListing("the user listing repeats a user (it moved while paging)")
        users[user.user_id] = user
    return groups, users


def _confirm_deleted(
    connection: DirectoryConnection, client: Any, duo_ids: list[str], *, force: bool = False
) -> list[str]:
    """The ids Duo answers not found (404 with Duo's code 40401, DUO.md 4.3) for; a user still there means
    the listing skipped them: fail. A 404 without Duo's envelope (a proxy, a gateway, a wrong path) did not
    come from Duo and confirms nothing: fail too."""
    if len(duo_ids) > MAX_CONFIRMATIONS and not force:
        raise SyncFailed(
            f"{len(duo_ids)} linked Duo users are missing from the listing (more than {MAX_CONFIRMATIONS}): "
            "the listing is not trusted; nothing was changed."
        )
    deleted = []
    for duo_id in duo_ids:
        try:
            found = guarded_call(connection, client.get_user_by_id, duo_id)
        except DirectoryError as exc:
            if exc.kind == "not_found" and exc.code == NOT_FOUND_CODE:
                deleted.append(duo_id)
                continue
            if exc.kind == "not_found":
                raise SyncFailed(
                    "A user lookup was answered 404 without Duo's not-found code (40401): the answer did not come "
                    "from Duo (a proxy or gateway in front?), so no deletion is confirmed; nothing was changed."
                ) from None
            raise
        if isinstance(found, dict) and found.get("user_id") == duo_id:
            raise SyncFailed(
                "A linked Duo user was missing from the listing but still exists (the directory changed while it "
                "was read): nothing was changed; run again."
            )
        raise planning.BadListing("Duo answered a user lookup with another object")
    return deleted


def _describe(plan: planning.Plan, result: SyncResult, connection: DirectoryConnection, work: Any) -> None:
    for identity_pk, duo_id in plan.new_links.items():
        result.add("linked", f"identity {identity_pk} linked to Duo user {duo_id}")
    for duo_id in plan.deleted_ids:
        result.add("deleted-in-duo", f"Duo user {duo_id} is no longer listed")
    for item in plan.deactivate:
        result.add(
            "deactivated",
            f"user {item.user_pk} (Duo {item.username!r}) deactivated and signed out: {item.reason}",
            item.user_pk,
        )
    for back in plan.reactivate:
        result.add(
            "reactivated", f"user {back.user_pk} (Duo {back.username!r}) re-activated: active in Duo", back.user_pk
        )
    names = {row.duo_group_id: row.name for row in work.rows.values()} if work else {}
    for user_pk, (add, remove) in sorted(plan.memberships.items()):
        for gid in sorted(add):
            result.add("membership-added", f"user {user_pk} added to {names.get(gid, gid)!r}", user_pk)
        for gid in sorted(remove):
            result.add("membership-removed", f"user {user_pk} removed from {names.get(gid, gid)!r}", user_pk)


def sync_connection(connection: DirectoryConnection, *, dry_run: bool = False, force: bool = False) -> SyncResult:
    """Run one sync of ``connection``; never raises for Duo, cache or database trouble (``result.ok``).

    ``dry_run``: compute the same plan and write nothing (not even ``last_sync_*``). ``force``: apply
    even when the run would deactivate more than ``max_deprovision_percent`` of the linked users.
    """
    result = SyncResult(connection.slug, dry_run=dry_run)
    lock = _Lock()
    try:
        lock.acquire()
    except SyncFailed as exc:
        result.message = str(exc)
        logger.error("Directory %s: sync not run: %s", connection.slug, result.message)
        directory_synced.send(sender=DirectoryConnection, connection=connection, result=result, dry_run=dry_run)
        return result
    try:
        _run(connection, result, lock, dry_run=dry_run, force=force)
    except SyncFailed as exc:
        result.ok, result.message = False, str(exc)
        result.changes.clear()
        result.counts = {}
    except (DirectoryError, planning.BadListing) as exc:
        result.ok = False
        if isinstance(exc, DirectoryError) and exc.kind == "config":
            result.message = f"Not run: {exc.message} No one's access changed."
        else:
            why = exc.message if isinstance(exc, DirectoryError) else f"a bad page ({exc})."
            result.message = f"Partial listing: no one's access changed. {why}"
        result.changes.clear()
        result.counts = {}
    except DBError as exc:
        result.ok = False
        result.message = f"The database failed ({type(exc).__name__}): the run was rolled back."
        result.changes.clear()
        result.counts = {}
    finally:
        lock.release()
    level = logging.INFO if result.ok else logging.ERROR
    logger.log(level, "Directory %s: %s%s", connection.slug, "dry run: " if dry_run else "", result.summary())
    if not dry_run:
        _store_outcome(connection, result)
    directory_synced.send(sender=DirectoryConnection, connection=connection, result=result, dry_run=dry_run)
    return result


def _store_outcome(connection: DirectoryConnection, result: SyncResult) -> None:
    connection.last_sync_at = timezone.now()
    connection.last_sync_ok = result.ok
    connection.last_sync_summary = result.summary()[:2000]
    try:
        connection.save(update_fields=["last_sync_at", "last_sync_ok", "last_sync_summary"])
    except DBError as exc:
        logger.error("Directory %s: the sync outcome could not be stored (%s)", connection.slug, type(exc).__name__)


def _run(connection: DirectoryConnection, result: SyncResult, lock: _Lock, *, dry_run: bool, force: bool) -> None:
    if connection.deprovision and not users_have_is_active():
        raise SyncFailed("The user model has no is_active field: users cannot be deprovisioned. Turn deprovision off.")
    client = admin_client(connection)
    try:
        groups, users = _list_everything(connection, client)
    except (RuntimeError, OSError) as exc:  # anything iterate() did not already translate
        raise describe_error(exc, connection) from None
    result.counts = {}
    identities = read_identities(connection)
    previous = {
        duo_id: planning.PreviousUser(
            duo_id,
            deprovisioned is not None,
            deleted is not None,
            deleted is not None and status == planning.DELETED_STATUS,
        )
        for duo_id, deprovisioned, deleted, status in DirectoryUser.objects.filter(connection=connection).values_list(
            "duo_user_id", "deprovisioned_at", "deleted_at", "status"
        )
    }
    unlisted = planning.unlisted_links(users, identities, previous)
    linked_estimate = len({i.user_pk for i in identities if i.duo_user_id in previous})
    if (
        connection.deprovision
        and not force
        and len(unlisted) > planning.allowed_deactivations(linked_estimate, connection.max_deprovision_percent)
    ):
        raise SyncFailed(
            f"{len(unlisted)} linked Duo users are missing from the listing, more than the "
            f"{connection.max_deprovision_percent}% a run may deactivate: nothing was changed. Check the connection "
            "and Duo, then run again with --force if it is right."
        )
    # Only a deprovisioning run needs to know: without it, unlisted users are merely marked deleted_at.
    confirmed = (
        _confirm_deleted(connection, client, unlisted, force=force) if unlisted and connection.deprovision else []
    )
    if connection.deprovision:
        confirmed += planning.known_deleted(users, identities, previous)
    work = group_work(connection, groups, result.add) if connection.manage_groups else None
    plan = planning.make_plan(
        users=users,
        groups={gid: groups[gid] for gid in (work.mirrored if work else {}) if gid in groups},
        identities=identities,
        previous=previous,
        confirmed_deleted=confirmed,
        match=connection.match,
        deprovision=connection.deprovision,
        manage_groups=connection.manage_groups,
        max_percent=connection.max_deprovision_percent,
        force=force,
        current_groups=read_memberships(identities, work.mirrored) if work else None,
    )
    for warning in plan.ambiguous:
        result.warnings.append(warning)
        logger.warning("Directory %s: ambiguous match: %s", connection.slug, warning)
    if plan.blocked:
        raise SyncFailed(plan.blocked)
    _describe(plan, result, connection, work)
    result.counts.update({"users listed": len(users), "groups listed": len(groups), "linked users": plan.linked_users})
    if dry_run:
        result.ok, result.message = True, "Dry run: nothing was written"
        return
    if not lock.still_held():
        raise SyncFailed(
            "The sync lock expired during the run (or the cache keeps nothing, e.g. DummyCache): nothing was changed."
        )
    try:
        with transaction.atomic():
            apply_plan(connection, plan, users, groups, work, confirmed)
    except ObjectDoesNotExist:  # rolled back: a user or row the plan names was deleted here meanwhile
        raise SyncFailed(
            "A Django user or row this run planned for was deleted while it ran: nothing was changed; run again."
        ) from None
    result.ok, result.message = True, "Sync complete"
    forget_linked_users()  # bearer memos: at once here, within 1 s in other processes (the shared mark)
    try:
        _after_commit(connection, plan, result)
    except DBError as exc:  # committed already: the users are inactive; say what was not done
        result.warnings.append(f"after the commit the database failed ({type(exc).__name__}): signals not all sent")
        logger.error("Directory %s: the database failed after the commit (%s)", connection.slug, type(exc).__name__)


def _after_commit(connection: DirectoryConnection, plan: planning.Plan, result: SyncResult) -> None:
    """End sessions, send signals, log each change."""
    user_model = get_user_model()
    rows = {
        row.duo_user_id: row
        for row in DirectoryUser.objects.filter(
            connection=connection,
            duo_user_id__in=[i.duo_user_id for i in plan.deactivate] + [i.duo_user_id for i in plan.reactivate],
        )
    }
    for item in plan.deactivate:
        user = user_model._default_manager.filter(pk=item.user_pk).first()
        if user is None:  # deleted here since the commit: no session or signal left to send
            continue
        try:
            ended = live_sessions.end_sessions(user, reason=item.reason)
        except Exception as exc:  # the user is inactive anyway: get_user refuses them on the next request
            ended = 0
            result.warnings.append(f"sessions of user {item.user_pk} could not be ended ({type(exc).__name__})")
            logger.error(
                "Directory %s: sessions of user %s could not be ended (%s); the user is inactive and is refused "
                "at the next request",
                connection.slug,
                item.user_pk,
                type(exc).__name__,
            )
        result.counts["sessions ended"] = result.counts.get("sessions ended", 0) + ended
        logger.warning(
            "Directory %s: deactivated user %s (Duo user %s, %s): %s; %s session(s) ended",
            connection.slug,
            item.user_pk,
            item.duo_user_id,
            item.username,
            item.reason,
            ended,
        )
        user_deprovisioned.send(
            sender=DirectoryConnection,
            user=user,
            connection=connection,
            reason=item.reason,
            directory_user=rows.get(item.duo_user_id),
        )
    for back in plan.reactivate:
        user = user_model._default_manager.filter(pk=back.user_pk).first()
        if user is None:
            continue
        logger.warning(
            "Directory %s: re-activated user %s (Duo user %s, %s): active in Duo again",
            connection.slug,
            back.user_pk,
            back.duo_user_id,
            back.username,
        )
        user_reprovisioned.send(
            sender=DirectoryConnection, user=user, connection=connection, directory_user=rows.get(back.duo_user_id)
        )
    for change in result.changes:
        if change.kind not in ("deactivated", "reactivated"):
            logger.info("Directory %s: %s", connection.slug, change.text)


def sync_all(*, slug: str | None = None, dry_run: bool = False, force: bool = False) -> list[SyncResult]:
    """Sync the connection ``slug``, or every enabled connection; one result each.

    A disabled connection is never synced, even by name (``enabled`` is the switch that stops a
    connection that misbehaves, whatever cron still says): its result fails and says so.
    """
    connections = DirectoryConnection.objects.select_related("provider")
    if slug is None:
        return [sync_connection(c, dry_run=dry_run, force=force) for c in connections.filter(enabled=True)]
    results = []
    for connection in connections.filter(slug=slug):
        if connection.enabled:
            results.append(sync_connection(connection, dry_run=dry_run, force=force))
        else:
            results.append(
                SyncResult(connection.slug, dry_run=dry_run, message="The connection is disabled: not synced.")
            )
    return results
