"""Signals sent by django-duo-oidc. No token or secret is ever part of a signal's arguments.

Receivers are called with ``sender`` and the arguments listed, as keyword arguments; accept
``**kwargs`` as well, so that an argument added later does not break them.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

#: Sent after a successful login. Sender: the callback view's class
#: (:class:`django_duo_oidc.login.views.CallbackView` or your subclass). Arguments: ``request``,
#: ``user``, ``provider`` (a Provider), ``claims`` (the validated ID-token claims merged with
#: userinfo), ``scopes`` (frozenset).
login_succeeded = Signal()

#: Sent when a login fails. Sender: :class:`django_duo_oidc.core.errors.DuoOIDCError` (the class).
#: Arguments: ``request``, ``provider`` (a Provider or None),
#: ``reason`` (a short stable code, e.g. "StateError" or "invalid_grant"), ``description`` (text).
login_failed = Signal()

#: Sent when a view refuses a user (or a bearer token) for missing scopes. Sender: the refusal's class,
#: :class:`django_duo_oidc.core.errors.InsufficientScope`. Arguments: ``request``, ``user``, ``view``
#: (a name, or the request's path), ``required`` and ``missing`` (frozensets).
scope_denied = Signal()

#: Sent once per session ended: because the provider no longer backs it (revoked, refresh refused,
#: expired without a refresh token), or by ``django_duo_oidc.sessions.end_sessions`` (back-channel
#: logout, deprovisioning, the admin). Sender: :class:`django_duo_oidc.providers.runtime.ProviderRuntime`
#: when the provider no longer backs the session, :class:`django_duo_oidc.models.LiveSession` when
#: ``end_sessions`` ended it. Arguments: ``request`` (the request that ended it, or None when
#: it was ended from elsewhere: a sync, a back-channel call, the shell; it is then not the ended
#: session's request), ``user``, ``provider`` (a Provider, or None for password+MFA sessions),
#: ``reason`` (a short text: "backchannel_logout", "admin", "deprovisioned: disabled in Duo", ...).
session_ended = Signal()


def send_scope_denied(request: Any, exc: Any, *, view_name: str = "") -> None:
    """Send ``scope_denied`` for an ``InsufficientScope`` refusal (sessions and bearer tokens alike)."""
    scope_denied.send(
        sender=type(exc),
        request=request,
        user=request.user,
        view=view_name or request.path,
        required=exc.required,
        missing=exc.missing,
    )


#: Sent when a user gets past the second factor after their password (Duo's Universal Prompt).
#: Sender: :class:`django_duo_oidc.models.MFAConfiguration`. Arguments: ``request``, ``user``, ``via``
#: ("duo": Duo allowed it; "remembered": a remembered browser; "fail_open": Duo was unreachable and the
#: configuration's fail mode is open, so NO second factor was checked), ``purpose`` ("login" or
#: "step-up"), ``factor`` (e.g. "Duo Push"; "" unless via "duo") and ``device`` (the kind of device,
#: e.g. "mobile phone (push)").
second_factor_passed = Signal()

#: Sent when the second factor fails or a session without it is ended. Sender:
#: :class:`django_duo_oidc.core.errors.DuoOIDCError` when Duo's prompt failed, or the function
#: :func:`django_duo_oidc.mfa.enforce.enforce_second_factor` when the middleware ended a password
#: session that went around Duo (reason "no_second_factor"). Arguments: ``request``, ``user``
#: (None when the attempt is unknown), ``purpose``, ``reason`` (a short stable code: "access_denied",
#: "factor_refused", "duo_unavailable", "duo_rate_limited", "duo_misconfigured", "invalid_grant", "invalid_token",
#: "state_unknown", "state_replayed", "state_expired", "password_changed", "no_second_factor", ...),
#: ``description`` (text safe to show), and ``factor`` and ``device`` when Duo's answer named them ("" else).
second_factor_failed = Signal()

# Directory (Duo Admin API) ---------------------------------------------------------------------------

#: Sent after a directory sync made a linked user inactive (and ended their sessions). Sender:
#: :class:`django_duo_oidc.models.DirectoryConnection`. Arguments:
#: ``user``, ``connection`` (a DirectoryConnection), ``reason`` ("duo-disabled", "duo-locked-out",
#: "duo-deleted", "duo-pending-deletion", "duo-status-unknown"), ``directory_user`` (the DirectoryUser).
user_deprovisioned = Signal()

#: Sent after a directory sync re-activated a user it had deactivated, because Duo lists them active or
#: bypass again. Sender: :class:`django_duo_oidc.models.DirectoryConnection`. Arguments: ``user``,
#: ``connection``, ``directory_user``.
user_reprovisioned = Signal()

#: Sent after every directory sync run, failed or not, dry or not. Sender:
#: :class:`django_duo_oidc.models.DirectoryConnection`. Arguments: ``connection``,
#: ``result`` (a :class:`django_duo_oidc.directory.sync.SyncResult`: ``ok``, ``counts``, ``changes``),
#: ``dry_run``.
directory_synced = Signal()
