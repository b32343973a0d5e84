"""Remembered browsers: after passing Duo, a cookie lets the same user skip Duo for ``remember_days``.

The cookie is signed with ``django.core.signing`` (``SECRET_KEY``, a salt of its own: no other signed value
of the site can stand in for it), HttpOnly, SameSite=Lax, and Secure when the request is secure or
``SESSION_COOKIE_SECURE`` is on. It is bound to:

- the user (pk), so it is worthless to another account;
- its expiry, and the configuration's current ``remember_days`` (shortening it shortens every cookie);
- a keyed digest of the user's password hash: any password change ends it;
- the user's remember epoch (:class:`~django_duo_oidc.models.MFAUserState`), which an admin's "Revoke
  remembered browsers" action bumps;
- the Duo application (client id): another Duo application does not inherit it.

It only ever replaces the second factor, never the password.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare, salted_hmac

from ..models import MFAConfiguration, MFAUserState

__all__ = ["COOKIE_NAME", "SALT", "forget", "is_remembered", "remember"]

COOKIE_NAME = "duo_oidc_mfa_remember"
SALT = "django_duo_oidc.mfa.remember"
DAY = 86400


def _password_digest(user: Any) -> str:
    # Keyed (SECRET_KEY) like Django's session auth hash: the cookie is signed, not encrypted, and must not
    # carry anything derived from the password hash that could be tested offline.
    return salted_hmac(SALT + ".password", user.password or "", algorithm="sha256").hexdigest()[:32]


def _epoch(user: Any) -> int:
    state = MFAUserState.objects.filter(user=user).values_list("remember_epoch", flat=True).first()
    return int(state or 0)


def remember(request: HttpRequest, response: HttpResponse, user: Any, config: MFAConfiguration) -> None:
    """Set the cookie on ``response`` when the configuration remembers browsers (``remember_days`` > 0)."""
    days = config.remember_days
    if days <= 0:
        return
    expires = int(time.time()) + days * DAY
    value = signing.dumps(
        {"u": str(user.pk), "x": expires, "p": _password_digest(user), "e": _epoch(user), "c": config.client_id},
        salt=SALT,
    )
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=days * DAY,
        secure=request.is_secure() or settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def is_remembered(request: HttpRequest, user: Any, config: MFAConfiguration) -> bool:
    """Whether this browser's cookie lets ``user`` skip Duo under ``config`` now."""
    value = request.COOKIES.get(COOKIE_NAME)
    days = config.remember_days
    if not value or days <= 0:
        return False
    try:
        data = signing.loads(value, salt=SALT, max_age=days * DAY)
    except signing.BadSignature:  # also SignatureExpired
        return False
    if not isinstance(data, dict):
        return False
    expires = data.get("x")
    return (
        data.get("u") == str(user.pk)
        and isinstance(expires, int)
        and expires > time.time()
        and constant_time_compare(str(data.get("p", "")), _password_digest(user))
        and data.get("e") == _epoch(user)
        and data.get("c") == config.client_id
    )


def forget(response: HttpResponse) -> None:
    """Delete the cookie (a failed or refused remembered login)."""
    response.delete_cookie(COOKIE_NAME, samesite="Lax")
