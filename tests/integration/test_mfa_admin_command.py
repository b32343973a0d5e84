"""The second factor's admin pages, system checks by id, and the ``duo_oidc_mfa`` command (its ``--check``
runs Duo's health check through duo_universal against the fake Universal Prompt)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings

from django_duo_oidc import checks
from django_duo_oidc.mfa.who import reset_config_memo
from django_duo_oidc.models import MFAConfiguration, MFAUserState
from tests.integration.test_mfa_login import sso_login

pytestmark = pytest.mark.django_db
User = get_user_model()
SECRET_ENV = "DUO_MFA_TEST_CLIENT_SECRET"
CLIENT_ID = "DIABCDEFGHIJKLMNOPQR"
SECRET = "s" * 40


@pytest.fixture(autouse=True)
def _forget_config() -> Any:
    reset_config_memo()
    yield
    reset_config_memo()


@pytest.fixture
def admin_client(db: Any) -> Client:
    root = User.objects.create_superuser("root", "root@example.test", "pw")
    client = Client(raise_request_exception=True)
    sso_login(client, root)  # a Duo SSO session: the second factor's middleware leaves it alone
    return client


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch) -> MFAConfiguration:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return MFAConfiguration.objects.create(
        client_id=CLIENT_ID, client_secret_env=SECRET_ENV, api_host="api-12345678.duosecurity.com"
    )


def ids(config: MFAConfiguration) -> list[str]:
    return sorted(m.id for m in checks.check_mfa(databases=["default"]) if m.id)


def form(config: MFAConfiguration, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        f.name: getattr(config, f.name)
        for f in MFAConfiguration._meta.fields
        if f.editable and f.name not in ("id", "created_at", "updated_at")
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not False}


# Admin --------------------------------------------------------------------------------------------


def test_admin_stores_the_secret_encrypted_and_never_shows_it(
    admin_client: Client, config: MFAConfiguration, caplog: Any
) -> None:
    url = f"/admin/duo_oidc/mfaconfiguration/{config.pk}/change/"
    typed = "T" * 39 + "!"
    response = admin_client.post(url, form(config, client_secret_env="", client_secret=typed))
    assert response.status_code == 302, response.content
    config.refresh_from_db()
    assert typed not in config.client_secret_encrypted
    assert config.get_client_secret() == typed
    for page in (admin_client.get(url), admin_client.get("/admin/duo_oidc/mfaconfiguration/")):
        assert typed.encode() not in page.content
    assert b"stored encrypted" in admin_client.get(url).content
    assert typed not in caplog.text
    assert "Second factor configuration" in caplog.text and "client_secret" in caplog.text


def test_admin_keeps_one_configuration(admin_client: Client, config: MFAConfiguration) -> None:
    assert admin_client.get("/admin/duo_oidc/mfaconfiguration/add/").status_code == 403
    config.delete()
    assert admin_client.get("/admin/duo_oidc/mfaconfiguration/add/").status_code == 200


def test_the_users_admin_page_shows_the_last_duo_authentication(admin_client: Client) -> None:
    alice = User.objects.create_user("alice", "alice@example.test", "pw")
    MFAUserState.objects.create(user=alice, last_result="allow", last_factor="Duo Push", last_device="mobile phone")
    page = admin_client.get(f"/admin/auth/user/{alice.pk}/change/")
    assert page.status_code == 200
    assert b"Last Duo second factor" in page.content and b"Duo Push" in page.content


def test_the_per_user_state_is_read_only(admin_client: Client) -> None:
    alice = User.objects.create_user("alice", "alice@example.test", "pw")
    state = MFAUserState.objects.create(user=alice, last_result="allow")
    assert admin_client.get("/admin/duo_oidc/mfauserstate/add/").status_code == 403
    admin_client.post(f"/admin/duo_oidc/mfauserstate/{state.pk}/change/", {"last_result": "deny"})
    assert MFAUserState.objects.get(pk=state.pk).last_result == "allow"


def test_revoking_needs_the_change_permission(db: Any) -> None:
    from django.contrib.auth.models import Permission

    alice = User.objects.create_user("alice", "alice@example.test", "pw")
    state = MFAUserState.objects.create(user=alice)
    viewer = User.objects.create_user("viewer", "viewer@example.test", "pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_mfauserstate"))
    client = Client()
    client.force_login(viewer, backend="django_duo_oidc.backends.DuoOIDCBackend")
    client.post(
        "/admin/duo_oidc/mfauserstate/", {"action": "revoke_remembered_browsers", "_selected_action": [state.pk]}
    )
    assert MFAUserState.objects.get(pk=state.pk).remember_epoch == 0


# System checks ------------------------------------------------------------------------------------


def test_a_sound_configuration_has_no_findings(config: MFAConfiguration) -> None:
    assert ids(config) == []


def test_checks_need_the_database_flag(config: MFAConfiguration) -> None:
    update_fields(config, client_id="short")
    assert checks.check_mfa() == []


def update_fields(config: MFAConfiguration, **fields: Any) -> None:
    MFAConfiguration.objects.filter(pk=config.pk).update(**fields)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"client_id": "DI123"}, ["duo_oidc.E101"]),
        ({"client_secret_env": "DUO_MFA_UNSET_VARIABLE"}, ["duo_oidc.E103"]),
        ({"client_secret_env": "DATABASE_PASSWORD"}, ["duo_oidc.E103"]),
        ({"api_host": "https://api-12345678.duosecurity.com/"}, ["duo_oidc.E104"]),
        ({"api_host": "api-12345678.duosecurity.com/oauth"}, ["duo_oidc.E104"]),
        ({"api_host": "duo.example.com"}, ["duo_oidc.W102"]),
        ({"ca_certs": "/nonexistent/ca.pem"}, ["duo_oidc.E107"]),
        ({"fail_mode": "open"}, ["duo_oidc.W101"]),
        ({"who": "groups"}, ["duo_oidc.W103"]),
    ],
)
def test_check_ids(config: MFAConfiguration, fields: dict[str, Any], expected: list[str]) -> None:
    update_fields(config, **fields)
    assert ids(config) == expected


def test_a_secret_of_the_wrong_length_is_an_error(config: MFAConfiguration, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "x" * 39)
    assert ids(config) == ["duo_oidc.E102"]


def test_a_test_host_is_fine_while_debugging(config: MFAConfiguration, settings: Any) -> None:
    settings.DEBUG = True
    update_fields(config, api_host="127.0.0.1:18400")
    assert ids(config) == []


def test_groups_mode_with_a_group_is_fine(config: MFAConfiguration) -> None:
    update_fields(config, who="groups")
    config.groups.add(Group.objects.create(name="finance"))
    assert ids(config) == []


def test_middleware_missing_while_on_is_an_error(config: MFAConfiguration, settings: Any) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "DuoOIDCMiddleware" not in m]
    assert ids(config) == ["duo_oidc.E106"]
    update_fields(config, enabled=False)
    assert ids(config) == []


@override_settings(ROOT_URLCONF="tests.integration.test_mfa_admin_command")
def test_urls_missing_while_on_is_an_error(config: MFAConfiguration) -> None:
    assert ids(config) == ["duo_oidc.E105"]


urlpatterns: list[Any] = []  # the URLconf of test_urls_missing_while_on_is_an_error: nothing included


# The command --------------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("duo_oidc_mfa", *args, stdout=out)
    return out.getvalue()


def test_command_creates_enables_and_checks(fake_duo_universal: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    duo = fake_duo_universal
    monkeypatch.setenv(SECRET_ENV, duo.client_secret)
    out = run(
        "--client-id", duo.client_id, "--client-secret-env", SECRET_ENV, "--api-host", duo.api_host,
        "--ca-certs", duo.ca_path, "--fail-mode", "closed", "--check",
    )  # fmt: skip
    assert "Created the second factor (on" in out
    assert "health check at" in out and "OK" in out
    assert duo.client_secret not in out
    config = MFAConfiguration.objects.get()
    assert (config.client_id, config.client_secret_env, config.enabled) == (duo.client_id, SECRET_ENV, True)
    assert duo.stats()["health_checks"] == 1


def test_command_updates_who_groups_remember_and_factors(config: MFAConfiguration) -> None:
    out = run(
        "--who", "groups", "--group", "finance", "--group", "ops", "--remember-days", "7",
        "--refuse-factor", "Bypass Code", "--refuse-factor", "SMS Passcode", "--username-from", "email",
        "--fail-mode", "open",
    )  # fmt: skip
    assert "Updated the second factor" in out
    config.refresh_from_db()
    assert config.who == "groups" and sorted(config.groups.values_list("name", flat=True)) == ["finance", "ops"]
    assert (config.remember_days, config.username_from, config.fail_mode) == (7, "email", "open")
    assert config.refused_factor_set == {"bypass code", "sms passcode"}
    run("--refuse-factor", "")
    config.refresh_from_db()
    assert config.refused_factors == ""


def test_command_disable_is_the_way_back_in(config: MFAConfiguration) -> None:
    assert "(off" in run("--disable")
    assert MFAConfiguration.objects.active() is None
    assert "(on" in run("--enable")


def test_command_refuses_an_incomplete_new_configuration(db: Any) -> None:
    with pytest.raises(CommandError, match="needs --client-id"):
        run("--client-secret-env", SECRET_ENV)
    with pytest.raises(CommandError, match="secret"):
        run("--client-id", CLIENT_ID, "--api-host", "api-1.duosecurity.com")
    with pytest.raises(CommandError, match="may hold a client secret"):
        run("--client-id", CLIENT_ID, "--api-host", "api-1.duosecurity.com", "--client-secret-env", "DATABASE_URL")
    assert not MFAConfiguration.objects.exists()


def test_command_check_explains_credentials_of_another_application_type(
    fake_duo_universal: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    duo = fake_duo_universal
    monkeypatch.setenv(SECRET_ENV, duo.other_app_client_secret)
    out = io.StringIO()
    with pytest.raises(CommandError, match="refuses its credentials"):
        call_command(
            "duo_oidc_mfa", "--client-id", duo.other_app_client_id, "--client-secret-env", SECRET_ENV,
            "--api-host", duo.api_host, "--ca-certs", duo.ca_path, "--check", stdout=out,
        )  # fmt: skip
    assert 'type "Web SDK"' in out.getvalue()


def test_command_check_explains_40002(fake_duo_universal: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    duo = fake_duo_universal
    monkeypatch.setenv(SECRET_ENV, "w" * 40)
    out = io.StringIO()
    with pytest.raises(CommandError, match="refuses its credentials"):
        call_command(
            "duo_oidc_mfa", "--client-id", duo.client_id, "--client-secret-env", SECRET_ENV,
            "--api-host", duo.api_host, "--ca-certs", duo.ca_path, "--check", stdout=out,
        )  # fmt: skip
    assert "40002" in out.getvalue() and "Client secret of the same Web SDK application" in out.getvalue()


def test_command_check_when_duo_is_down(fake_duo_universal: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    duo = fake_duo_universal
    duo.faults(down=True)
    monkeypatch.setenv(SECRET_ENV, duo.client_secret)
    with pytest.raises(CommandError, match="cannot be reached"):
        call_command(
            "duo_oidc_mfa", "--client-id", duo.client_id, "--client-secret-env", SECRET_ENV,
            "--api-host", duo.api_host, "--ca-certs", duo.ca_path, "--check", stdout=io.StringIO(),
        )  # fmt: skip


def test_command_check_reports_the_system_checks(config: MFAConfiguration, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "x" * 12)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("duo_oidc_mfa", "--check", stdout=out)
    assert "duo_oidc.E102" in out.getvalue()
