"""Test your own views against a fake Duo, with no network: the test kit.

The kit runs an in-process Duo SSO application (:mod:`.fakeop`: discovery, JWKS with a real RSA
key, authorization, token with PKCE, refresh and client credentials, userinfo, introspection,
revocation), creates its ``Provider`` row, and logs test clients in through the site's real login
and callback views, so a session is exactly what a real login leaves. It also mints bearer tokens
and changes policy at the fake (revoke, narrow) so you can test freshness.

Settings for tests (the kit also mounts the fake by itself while it runs; naming it in the test
settings means nothing can drop it)::

    DUO_OIDC = {"HTTP_SESSION_FACTORY": "django_duo_oidc.testing.fakeop.session_factory"}

plus what the site already has: ``django_duo_oidc`` in ``INSTALLED_APPS``, its middleware and
backend, and ``path("oidc/", include("django_duo_oidc.urls"))``.

With pytest and pytest-django, the fixtures ``duo_provider``, ``duo_login``, ``duo_token`` and
``duo_client_token`` are there once the package is installed (:mod:`.pytest_plugin`)::

    import time
    import pytest

    pytestmark = pytest.mark.django_db

    def test_contacts_need_the_scope(client, duo_login):
        duo_login(client, "alice", scopes=["crm.contacts.read"])
        assert client.get("/contacts/").status_code == 200

    def test_without_the_scope_it_is_403(client, duo_login):
        duo_login(client, "bob", scopes=[])
        assert client.get("/contacts/").status_code == 403

    def test_revoked_at_duo_ends_the_session(client, duo_provider, duo_login):
        duo_login(client, "alice", scopes=["crm.contacts.read"])
        duo_provider.revoke("alice")
        duo_provider.make_due(client)  # the freshness window has passed
        assert client.get("/contacts/").status_code == 302  # back to login

    def test_export_wants_a_recent_login(client, duo_login):
        duo_login(client, "alice", scopes=["crm.contacts.read"], auth_time=time.time() - 3600)
        assert client.get("/contacts/export/")["Location"].startswith("/oidc/login/")

    def test_the_api(client, duo_token):
        token = duo_token("alice", "crm.contacts.read")
        assert client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
        assert client.get("/api/contacts/").status_code == 401

With Django's ``TestCase``, :class:`~.testcase.DuoTestMixin` gives each test ``self.duo`` and the same
helpers as methods::

    from django.test import TestCase
    from django_duo_oidc.testing import DuoTestMixin

    class ContactsTests(DuoTestMixin, TestCase):
        def test_narrowed_scope_is_a_403(self):
            self.duo_login("alice", scopes=["crm.contacts.read"])
            self.duo_narrow("alice", [])
            self.duo_make_due()
            self.assertEqual(self.client.get("/contacts/").status_code, 403)

Anything else: :class:`FakeDuo` directly (``with FakeDuo() as duo: ...``), and its ``op`` (the fake:
faults on demand, e.g. ``duo.op.faults["token_introspection"] = "down"``).

May import: every package of django_duo_oidc, Django, requests, pyjwt, cryptography; pytest only in
:mod:`.pytest_plugin`. Nothing in django_duo_oidc imports this package. Names are loaded when first
used (PEP 562), so importing it imports no model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DuoTestMixin": "django_duo_oidc.testing.testcase",
    "FACTORY": "django_duo_oidc.testing.kit",
    "FakeDuo": "django_duo_oidc.testing.kit",
    "FakeOP": "django_duo_oidc.testing.fakeop",
    "LoginFailed": "django_duo_oidc.testing.kit",
}

__all__ = ["FACTORY", "DuoTestMixin", "FakeDuo", "FakeOP", "LoginFailed"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'django_duo_oidc.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from .fakeop import FakeOP
    from .kit import FACTORY, FakeDuo, LoginFailed
    from .testcase import DuoTestMixin
