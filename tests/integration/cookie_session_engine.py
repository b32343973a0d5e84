"""A project's own session engine built on Django's signed cookies (for the E007 check's test)."""

from __future__ import annotations

from django.contrib.sessions.backends import signed_cookies


class SessionStore(signed_cookies.SessionStore):
    pass
