"""The test kit (django_duo_oidc.testing) through its pytest fixtures, as a user's own tests use it:
the example project's scope-protected views and bearer API, freshness after a revoke or a narrowing
at the fake, step-up, and the kit's own promises (a real login's session, isolation, fail closed)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError
from django.test import AsyncClient, Client

from django_duo_oidc.login import session as stored
from django_duo_oidc.models import GroupRule, Identity, LiveSession, Provider
from django_duo_oidc.testing import FACTORY, FakeDuo, LoginFailed, fakeop
from django_duo_oidc.testing.kit import SECRET_ENV
from tests.conftest import StillClock, close_executor_connections, query

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
READ = "crm.contacts.read"


def bearer(client: Client, path: str, token: str | None) -> Any:
    return client.get(path, **({"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}))


# A scope-protected view ------------------------------------------------------------------------


def test_a_scope_protected_view_is_200_with_the_scope(client: Client, duo_login: Any) -> None:
    user = duo_login(client, "alice", scopes=[READ])
    assert user.get_username() == "alice@example.test"
    response = client.get("/contacts/")
    assert response.status_code == 200
    assert b"Ada Lovelace" in response.content


def test_without_the_scope_it_is_403_and_anonymous_goes_to_login(client: Client, duo_login: Any) -> None:
    assert client.get("/contacts/")["Location"] == "/oidc/login/?next=/contacts/"
    duo_login(client, "bob", scopes=["email"])
    response = client.get("/contacts/")
    assert response.status_code == 403
    assert "<code>crm.contacts.read</code>" in response.content.decode()


def test_the_session_is_what_a_real_login_leaves(client: Client, duo_provider: FakeDuo) -> None:
    user = duo_provider.login(client, "alice", scopes=[READ], next="/me/")
    assert client.get("/me/").json()["scopes"] == ["crm.contacts.read", "openid"]
    data = client.session[stored.LOGIN_KEY]
    assert data["provider"] == "duo" and data["sub"] == "alice"
    # Tokens sealed at rest, as the callback keeps them: no token of the fake in the session in clear.
    assert duo_provider.op.last_access_token not in repr(dict(client.session.items()))
    assert stored.access_token(data) == duo_provider.op.last_access_token
    # Through the real callback: the code was redeemed with PKCE at the fake, the session indexed.
    assert duo_provider.op.count("token") == 1
    assert LiveSession.objects.filter(user=user, sub="alice").count() == 1
    assert Identity.objects.get(provider=duo_provider.provider, sub="alice").user == user


def test_groups_reach_the_users_groups_through_the_rows_rules(client: Client, duo_provider: FakeDuo) -> None:
    admins = Group.objects.create(name="crm admins")
    GroupRule.objects.create(provider=duo_provider.provider, claim="groups", value="crm-admins", group=admins)
    user = duo_provider.login(client, "carol", groups=["crm-admins"])
    assert list(user.groups.values_list("name", flat=True)) == ["crm admins"]
    other = duo_provider.login(Client(), "dave", groups=["crm-users"])
    assert not other.groups.exists()


def test_two_clients_two_users(duo_login: Any) -> None:
    alice, bob = Client(), Client()
    duo_login(alice, "alice", scopes=[READ])
    duo_login(bob, "bob", scopes=[])
    assert (alice.get("/contacts/").status_code, bob.get("/contacts/").status_code) == (200, 403)


# A bearer API ----------------------------------------------------------------------------------


def test_a_bearer_api_200_401_403(client: Client, duo_token: Any) -> None:
    ok = bearer(client, "/api/contacts/", duo_token("alice", READ))
    assert ok.status_code == 200
    assert ok.json()["caller"] == {"sub": "alice", "username": None}  # a subject linked to no user
    missing = bearer(client, "/api/contacts/", None)
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer ")
    assert bearer(client, "/api/contacts/", duo_token("alice", "email")).status_code == 403
    assert bearer(client, "/api/contacts/", duo_token("alice", READ, ttl=-120)).status_code == 401  # expired


def test_a_token_for_a_django_user_links_it(client: Client, duo_token: Any, duo_provider: FakeDuo) -> None:
    user = get_user_model().objects.create_user("erin")
    response = bearer(client, "/api/contacts/", duo_token(user, READ))
    assert response.json()["caller"] == {"sub": "erin", "username": "erin"}
    # A user who logged in already keeps the sub of that login.
    logged_in = duo_provider.login(Client(), "frank")
    assert duo_provider.link(logged_in) == "frank"


def test_a_client_credentials_token_is_a_client_not_a_user(client: Client, duo_client_token: Any) -> None:
    response = bearer(client, "/t/bearer/any/", duo_client_token(READ))
    assert response.status_code == 200
    assert response.json()["is_client"] is True and response.json()["user"] is None


def test_opaque_tokens_need_introspection_mode(client: Client, duo_provider: FakeDuo) -> None:
    token = duo_provider.token("alice", READ, opaque=True)
    assert bearer(client, "/api/contacts/", token).status_code == 401  # auto never introspects opaque tokens
    duo_provider.update_provider(access_token_validation=Provider.AccessTokenValidation.INTROSPECTION)
    assert bearer(client, "/api/contacts/", duo_provider.token("alice", READ, opaque=True)).status_code == 200


def test_a_token_the_fake_did_not_sign_is_refused(client: Client, duo_provider: FakeDuo) -> None:
    duo_provider.op.sign_with = "other-key"
    assert bearer(client, "/api/contacts/", duo_provider.token("alice", READ)).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_an_async_client_with_the_cookies_of_a_logged_in_client(duo_login: Any) -> None:
    client = Client()
    duo_login(client, "alice", scopes=[READ])
    async_client = AsyncClient()
    async_client.cookies = client.cookies  # as login()'s documentation says
    try:
        assert asyncio.run(async_client.get("/t/async/")).status_code == 200
        assert asyncio.run(AsyncClient().get("/t/async/")).status_code == 302
    finally:
        close_executor_connections()


# Freshness -------------------------------------------------------------------------------------


def test_a_revoke_at_duo_ends_the_session_once_the_window_passed(client: Client, duo_provider: FakeDuo) -> None:
    user = duo_provider.login(client, "alice", scopes=[READ])
    duo_provider.revoke(user)
    assert client.get("/contacts/").status_code == 200  # inside the freshness window: no provider call
    duo_provider.make_due(client)
    response = client.get("/contacts/")
    assert response.status_code == 302 and response["Location"].startswith("/oidc/login/")
    assert client.get("/me/").json() == {"authenticated": False}


def test_narrow_then_revoke_each_seen_at_the_next_check(client: Client, duo_provider: FakeDuo) -> None:
    duo_provider.login(client, "alice", scopes=[READ, "email"])
    duo_provider.make_due(client)
    assert client.get("/contacts/").status_code == 200  # checked, and the answer kept for the window
    duo_provider.narrow("alice", ["openid", "email"])
    duo_provider.make_due(client)  # fails before make_due forgot the kept answer: still 200
    assert client.get("/contacts/").status_code == 403
    duo_provider.revoke("alice")
    duo_provider.make_due(client)
    assert client.get("/contacts/").status_code == 302


def test_a_revoked_or_narrowed_bearer_token_after_the_window(
    client: Client, duo_provider: FakeDuo, still_clock: StillClock
) -> None:
    revoked, narrowed = duo_provider.token("alice", READ), duo_provider.token("bob", READ)
    assert bearer(client, "/api/contacts/", revoked).status_code == 200
    assert bearer(client, "/api/contacts/", narrowed).status_code == 200
    duo_provider.revoke("alice")
    duo_provider.narrow("bob", "email")
    assert bearer(client, "/api/contacts/", revoked).status_code == 200  # remembered for the window
    duo_provider.make_due()
    assert bearer(client, "/api/contacts/", revoked).status_code == 401
    assert bearer(client, "/api/contacts/", narrowed).status_code == 403


def test_make_due_needs_a_logged_in_client(client: Client, duo_provider: FakeDuo) -> None:
    with pytest.raises(LoginFailed, match="no Duo login"):
        duo_provider.make_due(client)


# Step-up ---------------------------------------------------------------------------------------


def test_an_old_login_steps_up_through_the_fake(client: Client, duo_login: Any) -> None:
    duo_login(client, "alice", scopes=[READ], auth_time=time.time() - 3600)
    response = client.get("/contacts/export/")
    assert response.status_code == 302
    assert query(response["Location"]) == {
        "max_age": "300",
        "prompt": "login",
        "next": "/contacts/export/",
        "provider": "duo",
    }
    duo_login(client, "alice", scopes=[READ], next="/contacts/export/")  # authenticated again, now
    assert client.get("/contacts/export/").status_code == 200


def test_a_bearer_token_with_an_old_auth_time(client: Client, duo_token: Any) -> None:
    old = bearer(client, "/t/bearer/recent/", duo_token("alice", READ, auth_time=time.time() - 3600))
    assert old.status_code == 401 and 'error="insufficient_user_authentication"' in old["WWW-Authenticate"]
    assert bearer(client, "/t/bearer/recent/", duo_token("alice", READ, auth_time=time.time() - 10)).status_code == 200


# Fail closed: a login the site refuses is an error of the helper, never a half-logged-in client ----


@pytest.mark.parametrize(
    "fault", [{"token": "down"}, {"token": 500}, {"jwks": "garbage"}, {".well-known/openid-configuration": "timeout"}]
)
def test_a_refused_login_raises_and_leaves_no_session(client: Client, duo_provider: FakeDuo, fault: Any) -> None:
    duo_provider.op.faults.update(fault)
    with pytest.raises(LoginFailed) as failed:
        duo_provider.login(client, "alice", scopes=[READ])
    assert "_auth_user_id" not in client.session
    assert duo_provider.op.client_secret not in str(failed.value)
    assert client.get("/contacts/").status_code == 302


def test_a_refused_step_up_is_not_taken_for_the_old_login(client: Client, duo_provider: FakeDuo) -> None:
    duo_provider.login(client, "alice", scopes=[READ], auth_time=time.time() - 3600)
    duo_provider.op.faults["token"] = "down"
    with pytest.raises(LoginFailed):  # the 503 page, although the old login of alice is still there
        duo_provider.login(client, "alice", scopes=[READ], next="/contacts/export/")
    assert client.get("/contacts/export/").status_code == 302  # still the old authentication


def test_a_forged_id_token_is_refused_by_the_site_not_papered_over(client: Client, duo_provider: FakeDuo) -> None:
    duo_provider.op.id_token_claims = {"aud": "someone-else"}
    with pytest.raises(LoginFailed, match="callback"):
        duo_provider.login(client, "alice")
    assert not Identity.objects.exists()


# The kit's own promises ------------------------------------------------------------------------


def test_the_fixture_mounts_the_fake_and_the_secret_is_not_in_the_environment(duo_provider: FakeDuo) -> None:
    assert django_settings.DUO_OIDC["HTTP_SESSION_FACTORY"] == FACTORY
    assert fakeop.CURRENT is duo_provider.op
    row = Provider.objects.get(slug="duo")
    # The test settings have ENCRYPTION_KEYS: the secret is stored encrypted, no variable is set.
    assert row.secret_status == "stored encrypted" and SECRET_ENV not in os.environ
    assert row.get_client_secret() == duo_provider.op.client_secret


def test_stop_puts_back_everything_it_changed(settings: Any) -> None:
    settings.DUO_OIDC = {"HTTP_SESSION_FACTORY": "requests.Session"}  # no keys, fake not mounted
    before = fakeop.CURRENT
    with FakeDuo("mine") as duo:
        assert django_settings.DUO_OIDC["HTTP_SESSION_FACTORY"] == FACTORY
        assert fakeop.CURRENT is duo.op
        assert duo.provider.client_secret_env == SECRET_ENV and os.environ[SECRET_ENV] == duo.op.client_secret
        duo.login(Client(), "alice")
    assert django_settings.DUO_OIDC == {"HTTP_SESSION_FACTORY": "requests.Session"}
    assert fakeop.CURRENT is before
    assert SECRET_ENV not in os.environ


def test_a_start_that_fails_undoes_what_it_did(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.DUO_OIDC = {"HTTP_SESSION_FACTORY": "requests.Session"}
    monkeypatch.delenv(SECRET_ENV, raising=False)
    before = fakeop.CURRENT
    with FakeDuo("taken") as first:
        with pytest.raises(IntegrityError):
            # The row cannot be saved (no issuer), after the fake was mounted, installed and its secret set.
            # (A slug already taken is refused before anything is done: test_review_issue15.py.)
            FakeDuo("second", issuer=None).start()
        assert fakeop.CURRENT is first.op  # the failed one no longer answers; the first one does
    assert django_settings.DUO_OIDC == {"HTTP_SESSION_FACTORY": "requests.Session"}
    assert fakeop.CURRENT is before and SECRET_ENV not in os.environ


def test_a_variable_the_kit_did_not_set_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "the user's own")
    with FakeDuo():  # the test settings have ENCRYPTION_KEYS: the kit does not use the variable
        pass
    assert os.environ[SECRET_ENV] == "the user's own"


def test_a_setting_that_refuses_the_kits_variable_is_a_clear_error(settings: Any) -> None:
    settings.DUO_OIDC = {"SECRET_ENV_PREFIXES": ["MYAPP_"]}
    with pytest.raises(Exception, match="ENCRYPTION_KEYS"):
        FakeDuo().start()


def test_importing_the_kit_needs_no_pytest_and_loads_no_model() -> None:
    code = (
        "import sys; sys.modules['pytest'] = None; "
        "import django_duo_oidc.testing, django_duo_oidc.testing.fakeop; "
        "print(sorted(m for m in sys.modules if m == 'django.db.models' or m.startswith('_pytest')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_plugin_is_registered_once_under_its_entry_point_name(request: pytest.FixtureRequest) -> None:
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    assert entry_points == {"django_duo_oidc.testing.pytest_plugin": "django_duo_oidc.testing.pytest_plugin"}
    # pytest skips a pytest_plugins entry whose name an entry point already registered: one registration.
    plugin = request.config.pluginmanager.get_plugin("django_duo_oidc.testing.pytest_plugin")
    assert plugin is not None
    names = [name for name, p in request.config.pluginmanager.list_name_plugin() if p is plugin]
    assert names == ["django_duo_oidc.testing.pytest_plugin"]


def test_the_projects_fake_is_the_kits() -> None:
    from tests import fakeop as project_fakeop

    assert project_fakeop is fakeop


def _examples(doc: str) -> list[str]:
    """The literal blocks (after a line ending in ``::``) of a docstring, dedented."""
    blocks, lines = [], doc.splitlines()
    for i, line in enumerate(lines):
        if line.rstrip().endswith("::"):
            block = []
            for following in lines[i + 1 :]:
                if following.strip() and not following.startswith("    "):
                    break
                block.append(following[4:])
            blocks.append("\n".join(block).strip() + "\n")
    return blocks


def test_the_guides_examples_pass_as_written(tmp_path: Path) -> None:
    import django_duo_oidc.testing

    settings_block, *tests = _examples(django_duo_oidc.testing.__doc__ or "")
    assert FACTORY in settings_block and len(tests) == 2
    (tmp_path / "test_guide.py").write_text("\n\n".join(tests))
    plugin = ["-p", "django_duo_oidc.testing.pytest_plugin"]  # also when the package is not installed
    config = ["--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml")]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(tmp_path / "test_guide.py"),
            "-q",
            "-p",
            "no:cacheprovider",
            *plugin,
            *config,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        # Its own database: on the PostgreSQL leg the outer run holds test_<name> (a nested pytest-django
        # would try to create the same one); SQLite in memory and the local-memory cache are the user's
        # stock test setup anyway.
        env={k: v for k, v in os.environ.items() if k not in ("DJANGO_PG_PORT", "DJANGO_REDIS_URL")},
    )
    assert "6 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
