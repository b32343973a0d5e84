"""Live sessions per user and provider: end every session of a user in one call (:mod:`.index`), and
OpenID Connect Back-Channel Logout 1.0, the provider's way to end them (:mod:`.backchannel`, the view
``django_duo_oidc.urls`` serves as ``duo_oidc:backchannel-logout``).

Public API: :func:`record_session` (at login), :func:`forget_session` (at logout, also wired to
Django's ``user_logged_out``), :func:`drop_login` (a login its callback could not save),
:func:`end_sessions` (the one call), :func:`end_indexed` (chosen index
rows), :func:`rekey_session` (the middleware, when the session key changes), :func:`store_can_delete`.

May import: providers, guards, models, signals, state, conf, core.
"""

from __future__ import annotations

from .index import (
    drop_login,
    end_indexed,
    end_sessions,
    forget_session,
    record_session,
    rekey_session,
    store_can_delete,
)

__all__ = [
    "drop_login",
    "end_indexed",
    "end_sessions",
    "forget_session",
    "record_session",
    "rekey_session",
    "store_can_delete",
]
