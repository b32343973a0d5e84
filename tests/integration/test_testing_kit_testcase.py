"""The test kit with Django's TestCase (DuoTestMixin), as a user's own tests use it: a scope-protected
view, a bearer API, freshness after a revoke or a narrowing at the fake, and step-up."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client, TestCase, TransactionTestCase

from django_duo_oidc.testing import DuoTestMixin, LoginFailed, fakeop

READ = "crm.contacts.read"


def bearer(client: Client, path: str, token: str | None = None) -> Any:
    return client.get(path, **({"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}))


class ContactsTests(DuoTestMixin, TestCase):
    def test_the_scope_opens_the_view_and_its_absence_is_a_403(self) -> None:
        self.assertEqual(self.client.get("/contacts/")["Location"], "/oidc/login/?next=/contacts/")
        self.duo_login("alice", scopes=[READ])
        self.assertEqual(self.client.get("/contacts/").status_code, 200)
        other = Client()
        self.duo_login("bob", client=other, scopes=["email"])
        self.assertEqual(other.get("/contacts/").status_code, 403)

    def test_the_api_200_401_403(self) -> None:
        user = get_user_model().objects.create_user("erin")
        ok = bearer(self.client, "/api/contacts/", self.duo_token(user, READ))
        self.assertEqual(ok.status_code, 200)
        self.assertEqual(ok.json()["caller"], {"sub": "erin", "username": "erin"})
        self.assertEqual(bearer(self.client, "/api/contacts/").status_code, 401)
        self.assertEqual(bearer(self.client, "/api/contacts/", "not-a-token").status_code, 401)
        self.assertEqual(bearer(self.client, "/api/contacts/", self.duo_token(user, "email")).status_code, 403)
        client_call = bearer(self.client, "/api/contacts/", self.duo_client_token(READ))
        self.assertEqual(client_call.json()["caller"], {"client_id": self.duo.op.client_id})

    def test_a_revoke_ends_the_session_after_the_window(self) -> None:
        user = self.duo_login("alice", scopes=[READ])
        self.duo_revoke(user)
        self.assertEqual(self.client.get("/contacts/").status_code, 200)  # inside the window
        self.duo_make_due()
        self.assertTrue(self.client.get("/contacts/")["Location"].startswith("/oidc/login/"))
        self.assertEqual(self.client.get("/me/").json(), {"authenticated": False})

    def test_a_narrowed_grant_is_a_403_after_the_window(self) -> None:
        self.duo_login("alice", scopes=[READ])
        token = self.duo_token("alice", READ)
        self.duo_narrow("alice", ["email"])
        self.duo_make_due()
        self.assertEqual(self.client.get("/contacts/").status_code, 403)
        self.assertEqual(bearer(Client(), "/api/contacts/", token).status_code, 403)

    def test_step_up_with_auth_time(self) -> None:
        self.duo_login("alice", scopes=[READ], auth_time=time.time() - 600)
        self.assertEqual(self.client.get("/contacts/").status_code, 200)
        step_up = self.client.get("/contacts/export/")
        self.assertEqual(step_up.status_code, 302)
        self.assertIn("max_age=300", step_up["Location"])
        self.duo_login("alice", scopes=[READ], next="/contacts/export/")
        self.assertEqual(self.client.get("/contacts/export/").status_code, 200)

    def test_a_login_the_site_refuses_is_a_test_failure_not_a_session(self) -> None:
        self.duo.op.faults["token"] = "down"
        with self.assertRaises(LoginFailed):
            self.duo_login("alice")
        self.assertNotIn("_auth_user_id", self.client.session)


class OtherSlugTests(DuoTestMixin, TestCase):
    duo_slug = "corp"
    duo_provider_fields = {"name": "Corp SSO", "scopes": "openid email"}

    def test_the_row_takes_the_class_attributes(self) -> None:
        self.assertEqual((self.duo.provider.slug, self.duo.provider.name), ("corp", "Corp SSO"))
        self.duo_login("alice", next="/me/")
        self.assertEqual(self.client.get("/me/").json()["scopes"], ["email", "openid"])


class CleanupTests(DuoTestMixin, TransactionTestCase):
    def test_the_fake_answers_during_the_test_only(self) -> None:
        self.assertIs(fakeop.CURRENT, self.duo.op)
        before = self.duo._previous
        self.doCleanups()
        self.assertIs(fakeop.CURRENT, before)
