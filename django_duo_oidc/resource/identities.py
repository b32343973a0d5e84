"""Which user a bearer token's subject is linked to: the identity queries behind ``request.user``,
and what a process remembers of their answers (:func:`linked_user_pk`, :func:`load_user`) and when
it forgets them (:func:`forget_linked_users`).
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from typing import Any, TypedDict

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import FieldDoesNotExist
from django.db import Error as DBError
from django.db import transaction

from ..conf import conf
from ..core.bearer import AccessGrant
from ..core.errors import CacheUnavailable, InvalidClaim, ProviderUnavailable
from ..models import Identity, Provider
from ..state.cache import shared_cache
from .memory import forget_users, remember_user, user_copy

logger = logging.getLogger("django_duo_oidc")


@functools.cache
def users_have_is_active() -> bool:
    try:
        get_user_model()._meta.get_field("is_active")
    except FieldDoesNotExist:
        return False  # a custom user model without the field: every user may log in (AbstractBaseUser)
    return True


def identity_link(provider: Provider, sub: str) -> tuple[int, bool] | None:
    """``(user pk, may log in)`` of the identity ``(provider, sub)``, in one indexed query, or None."""
    identities = Identity.objects.filter(provider_id=provider.pk, sub=sub)
    if users_have_is_active():
        row = identities.values_list("user_id", "user__is_active")[:1]
        return (row[0][0], bool(row[0][1])) if row else None
    pks = identities.values_list("user_id", flat=True)[:1]
    return (pks[0], True) if pks else None


def identity_link_by_username(provider: Provider, username: str) -> tuple[int, bool] | None:
    """``(user pk, may log in)`` of the one identity of ``provider`` whose last login said ``username``
    (its ``preferred_username`` claim, kept in ``Identity.last_claims``); None when none or several do,
    and always None unless ``LINK_TOKENS_BY_USERNAME`` is on.

    Only this provider's identities, and only what this provider asserted at login (never the Django
    username, which an administrator or another provider may have chosen). Still only as good as the
    provider's usernames: one renamed and reused there would hand the old account to the new holder,
    hence the opt-in.
    """
    if not conf.link_tokens_by_username:
        return None
    identities = Identity.objects.filter(provider_id=provider.pk, last_claims__preferred_username=username)
    fields = ("user_id", "user__is_active") if users_have_is_active() else ("user_id",)
    rows = list(identities.values_list(*fields)[:2])
    if len(rows) > 1:
        logger.warning("Token username matches several identities of provider %s: linked to none", provider.slug)
        return None
    if not rows:
        return None
    return (rows[0][0], bool(rows[0][1]) if len(rows[0]) > 1 else True)


class _InactiveUser(InvalidClaim):
    """The token's subject is linked to a user who is inactive on this site."""

    def __init__(self) -> None:
        super().__init__("sub", "The user linked to the token's subject is inactive on this site.")


# Which user a user token's subject is linked to and whether it may log in, and the user itself once
# read (memory.remember_user): remembered per process for at most the freshness window
# (REVALIDATE_SECONDS), so a seen token costs no query even when the view reads request.user. Forgotten
# at once in this process when a user or an identity is saved or deleted (apps.py connects
# forget_linked_users; a directory sync calls it), and within SHARED_CHECK_INTERVAL in every other
# process, which reads a shared mark (USERS_CHANGED_KEY) that often. A change that sends no signal (a
# queryset update()) is seen within the window. With the cache down, nothing is remembered longer than
# SHARED_CHECK_INTERVAL: more queries, never a stale user.
USERS_MAX = 10_000
SHARED_CHECK_INTERVAL = 1.0
USERS_CHANGED_KEY = "duo_oidc:bearer:users-changed"
_users: dict[tuple[int, str], tuple[int | None, bool, float]] = {}
# Bumped by every forget: a link read before a save that forgot the memo is not stored after it.
_generation = [0]


class _SharedMark(TypedDict):
    seen: object  # the shared mark as last read (a string; None before the first, or whatever the cache held)
    next: float  # when (monotonic) to read it again


_shared: _SharedMark = {"seen": None, "next": 0.0}
# Saves that change neither a link nor the user a request is given: each login updates the user's
# last_login and the identity's last_login_at and granted_staff (a staff change saves the user's
# is_staff too, which is not harmless). Without them every login anywhere would empty every memo.
_HARMLESS_UPDATES = frozenset({"last_login"})
_HARMLESS_IDENTITY_UPDATES = frozenset({"last_login_at", "granted_staff"})


def forget_linked_users(**kwargs: Any) -> None:
    """Forget which users token subjects are linked to, here and (through the shared cache) in every
    other process (a user or an identity changed; a user deprovisioned).

    Now, and again when the saving transaction commits: ``post_save`` runs before the commit, and a
    request in another thread reading meanwhile would otherwise remember the old row.
    """
    update_fields = kwargs.get("update_fields")
    harmless = _HARMLESS_IDENTITY_UPDATES if kwargs.get("sender") is Identity else _HARMLESS_UPDATES
    if update_fields and set(update_fields) <= harmless:
        return
    _forget_everywhere()
    transaction.on_commit(_forget_everywhere)


def _forget_everywhere() -> None:
    _forget()
    mark = secrets.token_hex(8)
    try:
        shared_cache().set(USERS_CHANGED_KEY, mark, None)
    except CacheUnavailable:
        logger.warning("Other processes will see a user change within REVALIDATE_SECONDS: the shared cache failed")
        return
    _shared["seen"] = mark


def _forget() -> None:
    _generation[0] += 1
    _users.clear()
    forget_users()


def _hear_of_changes(now: float) -> None:
    """Forget the memo when another process changed a user (read at most every SHARED_CHECK_INTERVAL)."""
    if now < _shared["next"]:
        return
    _shared["next"] = now + SHARED_CHECK_INTERVAL
    try:
        mark = shared_cache().get(USERS_CHANGED_KEY)
    except CacheUnavailable:
        _forget()  # changes elsewhere cannot be heard of: remember nothing past this interval
        return
    if mark != _shared["seen"]:
        _shared["seen"] = mark
        _forget()


def linked_user_pk(grant: AccessGrant, provider: Provider) -> int | None:
    """The pk of the active user linked to a user token's subject, or None (a client, or no link here).

    :raises _InactiveUser: the linked user may not log in (``is_active`` False).
    :raises ProviderUnavailable: the database cannot be read (503, never a 500, never a guess).
    """
    if grant.is_client or (grant.sub is None and grant.username is None):
        return None  # a server calling for itself is never a logged-in user
    # Without a sub, the RFC 7662 username (django-oauth-toolkit): a key no sub can take ("\0" prefix).
    key = (provider.pk, grant.sub if grant.sub is not None else "\0" + str(grant.username))
    now = time.monotonic()
    _hear_of_changes(now)
    found = _users.get(key)
    if found is None or now >= found[2]:
        generation = _generation[0]
        try:
            if grant.sub is not None:
                link = identity_link(provider, grant.sub)
            else:
                link = identity_link_by_username(provider, str(grant.username))
        except DBError as exc:
            raise ProviderUnavailable("This site's user directory cannot be read right now.") from exc
        # No link: a subject that never logged in here (a valid token, no user).
        until = now + conf.revalidate_seconds
        found = (link[0], link[1], until) if link else (None, True, until)
        if generation == _generation[0]:  # else a save landed meanwhile: use it once, remember nothing
            if len(_users) >= USERS_MAX:
                _users.clear()
            _users[key] = found
    user_pk, active, _expires = found
    if not active:
        raise _InactiveUser()
    return user_pk


def load_user(user_pk: int | None) -> Any:
    """The user for ``request.user``, read when first touched: a new copy of the remembered one (no
    query), else read, and remembered while it may still log in."""
    if user_pk is None:
        return AnonymousUser()
    user = user_copy(user_pk)
    if user is not None:
        return user
    generation = _generation[0]
    try:
        user = get_user_model()._default_manager.filter(pk=user_pk).first()
    except DBError:
        logger.warning("The user of a bearer request could not be read: served as anonymous")
        return AnonymousUser()
    if user is None or not getattr(user, "is_active", True):
        return AnonymousUser()  # deactivated since the link was remembered: never served as that user
    if generation == _generation[0]:
        remember_user(user, time.monotonic() + conf.revalidate_seconds)
    return user
