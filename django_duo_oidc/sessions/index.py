"""The index of live sessions (:class:`~django_duo_oidc.models.LiveSession`) and the one call that ends them.

A row per logged-in session of a user: written at login (:func:`record_session`), re-keyed when the
session key changes (:func:`rekey_session`, called by the middleware), dropped at logout
(:func:`forget_session`, wired to Django's ``user_logged_out``), and used by :func:`end_sessions` to delete
sessions from the configured session store (``SESSION_ENGINE``) at once: after deprovisioning, from
the admin, or on the provider's back-channel logout.

The session key is a credential: it is kept sealed (:func:`~django_duo_oidc.state.encryption.seal`)
and looked up by its SHA-256 digest; it never appears in a log line, a signal or the admin.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.signals import user_logged_out
from django.contrib.sessions.backends import signed_cookies
from django.contrib.sessions.backends.base import SessionBase
from django.db import Error as DBError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from .. import signals
from ..models import LiveSession, Provider
from ..state.encryption import SealedValueError, seal, unseal

__all__ = ["end_indexed", "end_sessions", "forget_session", "record_session", "rekey_session", "store_can_delete"]

logger = logging.getLogger("django_duo_oidc")

# How many index rows past their expected expiry one call to record_session looks at (bounded work).
CLEANUP_BATCH = 50


def key_digest(session_key: str) -> str:
    """Return the SHA-256 hex digest a session key is indexed by (keys are 32 random characters:
    no salt is needed against guessing)."""
    return hashlib.sha256(session_key.encode()).hexdigest()


def stores_sessions_in_browser(engine: str | None = None) -> bool:
    """Whether ``engine`` (default: ``SESSION_ENGINE``) keeps sessions in the browser: Django's
    signed-cookie backend and any engine built on it (a project's subclass, to rename the cookie).

    Such a session cannot be ended on the server (the cookie stays valid until it expires), and it would
    carry the login's tokens to the browser. An engine that cannot be imported is not judged here
    (Django's own checks and the first request report it).
    """
    try:
        store = import_module(engine or settings.SESSION_ENGINE).SessionStore
    except (ImportError, AttributeError):
        return False
    return isinstance(store, type) and issubclass(store, signed_cookies.SessionStore)


def store_can_delete() -> bool:
    """Whether the configured ``SESSION_ENGINE`` keeps sessions on the server, so they can be ended."""
    return not stores_sessions_in_browser()


def _store_class() -> type[SessionBase]:
    store: type[SessionBase] = import_module(settings.SESSION_ENGINE).SessionStore  # what Django requires of it
    return store


def _store(session_key: str | None = None) -> SessionBase:
    return _store_class()(session_key)


def record_session(
    request: HttpRequest,
    *,
    kind: str = LiveSession.Kind.OIDC,
    provider: Provider | None = None,
    sub: str = "",
    sid: str = "",
) -> None:
    """Index the request's session (logged in and saved) for ``request.user``.

    ``provider``, ``sub`` and ``sid`` (the ID token's ``sid`` claim, OIDC Back-Channel Logout 1.0
    section 2.1) say which provider session backs it; ``kind`` is ``"oidc"`` or ``"mfa"``. Also cleans
    up a bounded number of index rows whose sessions are gone.
    """
    session = request.session
    user = request.user
    if not getattr(user, "is_authenticated", False):
        return
    if session.session_key is None:
        session.save()  # a store that keeps sessions on the server gives it a key now
    key = session.session_key
    if not key or not store_can_delete():
        logger.warning("Session of user %s not indexed: SESSION_ENGINE keeps sessions in the browser", user.pk)
        return
    expires_at = session.get_expiry_date()
    values = {
        "user": user,
        "provider": provider,
        "kind": kind,
        "sub": sub[:255],
        "sid": sid[:255],
        "key_sealed": seal(key),
        "expires_at": expires_at,
    }
    LiveSession.objects.update_or_create(key_digest=key_digest(key), defaults=values)
    _clean_up()


def forget_session(request: HttpRequest | None) -> None:
    """Drop the index row of the request's session (at logout). Never raises: logout must go on."""
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if not key:
        return
    try:
        LiveSession.objects.filter(key_digest=key_digest(key)).delete()
    except DBError as exc:  # the class only: the driver's message may name hosts and users
        logger.error(
            "Could not drop the index row of a session at logout (the database failed: %s)", type(exc).__name__
        )


def drop_login(request: HttpRequest) -> None:
    """End a login its callback could not save (the database failed at a write): the receivers of
    Django's ``user_logged_in``, sent by ``auth.login()`` before the failure, are sent ``user_logged_out``;
    the session's index row is dropped, the session flushed and ``request.user`` made anonymous. A store
    that fails too is tolerated (a 5xx answer saves no session). Never raises a database error."""
    user = getattr(request, "user", None)
    # Reading the user may query (before auth.login() it is the session's), and receivers write too.
    with contextlib.suppress(DBError):
        if user is not None and user.is_authenticated:
            user_logged_out.send(sender=type(user), request=request, user=user)
    forget_session(request)  # its index row, if written before the failure (never raises)
    with contextlib.suppress(DBError):
        request.session.flush()
    request.user = AnonymousUser()


def on_logged_out(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """Receiver of Django's ``user_logged_out`` (connected in ``apps.py``): :func:`forget_session`."""
    forget_session(request)


def rekey_session(request: HttpRequest, old_key: str) -> None:
    """Point the index row of ``old_key`` at the request's current session key (after
    ``cycle_key()``, e.g. ``update_session_auth_hash``); drop it when the session was logged out."""
    session = request.session
    new_key = session.session_key
    row = LiveSession.objects.filter(key_digest=key_digest(old_key)).first()
    if row is None:
        return
    user = getattr(request, "user", None)
    if not new_key or str(session.get("_auth_user_id")) != str(row.user_id) or user is None:
        row.delete()
        return
    row.key_digest = key_digest(new_key)
    row.key_sealed = seal(new_key)
    row.expires_at = session.get_expiry_date()
    try:
        with transaction.atomic():
            row.save(update_fields=["key_digest", "key_sealed", "expires_at"])
    except IntegrityError:
        row.delete()  # the new key is indexed already (recorded by the view itself)


def _clean_up(now: datetime.datetime | None = None) -> None:
    """Drop up to :data:`CLEANUP_BATCH` rows past their expected expiry whose session is gone.

    ``expires_at`` is when the session would expire if never used again; activity pushes a session's
    expiry forward in the store, so a row past it is checked against the store before it goes.
    """
    now = now or timezone.now()
    for row in LiveSession.objects.filter(expires_at__lt=now).order_by("expires_at")[:CLEANUP_BATCH]:
        try:
            key = unseal(row.key_sealed)
        except SealedValueError:
            row.delete()  # sealed under a key no longer configured: it can never be ended anyway
            continue
        store = _store(key)
        store.load()
        if store.session_key != key:  # gone (or expired) in the store
            row.delete()
            continue
        row.expires_at = store.get_expiry_date()
        row.save(update_fields=["expires_at"])


def end_sessions(
    user: Any,
    *,
    provider: Provider | None = None,
    sid: str | None = None,
    reason: str,
    request: HttpRequest | None = None,
) -> int:
    """End every indexed session of ``user`` and return how many were ended.

    ``provider`` narrows it to the sessions that provider's logins opened; ``sid`` to the one provider
    session it names (back-channel logout). Each session is deleted from the ``SESSION_ENGINE`` store,
    its index row removed, ``signals.session_ended`` sent (``request`` may be None) and one line logged
    with the user's pk and ``reason`` (never the key). A session store that fails raises its error:
    the sessions not reached yet stay indexed, so calling again ends them. When ``request`` is one of
    the sessions ended, its session is flushed too, so the response does not write it back.
    """
    if sid is not None and not sid:
        raise ValueError("sid must be a non-empty provider session id, or None")
    rows = LiveSession.objects.filter(user=user)
    if provider is not None:
        rows = rows.filter(provider=provider)
    if sid is not None:
        rows = rows.filter(sid=sid)
    return end_indexed(rows, reason=reason, request=request)


def end_indexed(rows: QuerySet[LiveSession], *, reason: str, request: HttpRequest | None = None) -> int:
    """End the sessions of these index rows (any users), as :func:`end_sessions` does; return how many."""
    if not store_can_delete():
        logger.warning("Sessions cannot be ended (%s): SESSION_ENGINE keeps sessions in the browser", reason)
    current = getattr(getattr(request, "session", None), "session_key", None)
    ended = 0
    for row in rows.select_related("provider", "user").order_by("pk"):
        try:
            key = unseal(row.key_sealed)
        except SealedValueError:
            key = None
            logger.warning("Index row %s of user %s cannot be opened: left to expire", row.pk, row.user_id)
        if key is not None:
            if key == current and request is not None:
                request.session.flush()  # deleted from the store; the response writes no copy back
                request.user = AnonymousUser()
            elif store_can_delete():
                _store(key).delete(key)  # may raise (store down): the rows not reached stay indexed
        row_pk = row.pk
        row.delete()
        ended += 1
        logger.info(
            "Ended session %s of user %s (provider %s): %s",
            row_pk,
            row.user_id,
            row.provider.slug if row.provider is not None else "-",
            reason,
        )
        signals.session_ended.send(
            sender=LiveSession, request=request, user=row.user, provider=row.provider, reason=reason
        )
    return ended
