"""duo_oidc_directory and duo_oidc_sync, and the DirectoryConnection admin, against the fake Admin API."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from django_duo_oidc.directory.sync import LOCK_KEY
from django_duo_oidc.models import DirectoryConnection, DirectoryUser, Identity, Provider
from tests.fakeduo.admin_fixtures import FakeDuoAdmin, duo_user

pytestmark = pytest.mark.django_db
User = get_user_model()


def run(*args: Any, stdin: str | None = None) -> str:
    out = io.StringIO()
    if stdin is not None:
        import sys

        real, sys.stdin = sys.stdin, io.StringIO(stdin)
        try:
            call_command(*args, stdout=out, stderr=out)
        finally:
            sys.stdin = real
    else:
        call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def configure(fake: FakeDuoAdmin, *extra: str) -> str:
    return run(
        "duo_oidc_directory",
        "corp",
        "--api-host",
        fake.api_host,
        "--ikey",
        fake.ikey,
        "--skey-env",
        "DUO_ADMIN_SKEY",
        "--provider",
        "duo",
        "--ca-certs",
        fake.ca_path,
        *extra,
    )


@pytest.fixture
def env(provider: Provider, fake_duo_admin: FakeDuoAdmin, monkeypatch: pytest.MonkeyPatch) -> FakeDuoAdmin:
    monkeypatch.setenv("DUO_ADMIN_SKEY", fake_duo_admin.skey)
    cache.delete(LOCK_KEY)
    return fake_duo_admin


def link(provider: Provider, name: str, **fields: Any) -> Any:
    user = User.objects.create_user(username=name, email=f"{name}@example.test", **fields)
    Identity.objects.create(provider=provider, sub=name, user=user, last_claims={"email": f"{name}@example.test"})
    return user


# duo_oidc_directory ------------------------------------------------------------------------------------


def test_create_check_and_update_idempotently(env: FakeDuoAdmin, provider: Provider) -> None:
    env.set_state(users=[duo_user("alice")])
    out = configure(env, "--check", "--match", "username", "--name", "Corp")
    assert "Created directory connection 'corp' for provider 'duo'" in out
    assert "environment variable DUO_ADMIN_SKEY (set)" in out
    assert "Admin API OK" in out
    connection = DirectoryConnection.objects.get(slug="corp")
    assert (connection.api_host, connection.integration_key, connection.match) == (env.api_host, env.ikey, "username")
    assert connection.provider == provider and connection.ca_certs == env.ca_path
    assert "Updated directory connection 'corp'" in configure(env, "--check")
    assert DirectoryConnection.objects.count() == 1
    assert DirectoryConnection.objects.get().match == "username"  # not given again: unchanged
    run(
        "duo_oidc_directory",
        "corp",
        "--no-groups",
        "--group-prefix",
        "duo-",
        "--max-deprovision-percent",
        "25",
        "--no-deprovision",
        "--disable",
    )
    connection.refresh_from_db()
    assert (connection.manage_groups, connection.group_prefix, connection.max_deprovision_percent) == (
        False,
        "duo-",
        25,
    )
    assert connection.deprovision is False and connection.enabled is False
    assert env.stats()["writes"] == 0


def test_a_new_connection_needs_every_required_flag(env: FakeDuoAdmin) -> None:
    with pytest.raises(CommandError, match="needs --api-host, --ikey, --provider, --skey-env"):
        run("duo_oidc_directory", "corp")
    with pytest.raises(CommandError, match="no provider 'nope'"):
        configure(env, "--provider", "nope")
    assert not DirectoryConnection.objects.exists()


def test_the_secret_key_is_never_a_command_line_value(env: FakeDuoAdmin) -> None:
    with pytest.raises(CommandError):  # argparse: --skey is ambiguous (--skey-env, --skey-stdin), no value flag
        run("duo_oidc_directory", "corp", "--skey", env.skey)


def test_the_secret_key_from_stdin_is_stored_encrypted(env: FakeDuoAdmin) -> None:
    out = run(
        "duo_oidc_directory",
        "corp",
        "--api-host",
        env.api_host,
        "--ikey",
        env.ikey,
        "--skey-stdin",
        "--provider",
        "duo",
        "--ca-certs",
        env.ca_path,
        "--check",
        stdin=env.skey + "\n",
    )
    assert "stored encrypted" in out and "Admin API OK" in out
    connection = DirectoryConnection.objects.get()
    assert connection.secret_key_env == "" and env.skey not in connection.secret_key_encrypted
    assert env.skey not in out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--skey-env", "DATABASE_PASSWORD"), "Only environment variables named"),
        (("--api-host", "https://api-x.duosecurity.com/"), "API hostname"),
        (("--api-host", "127.0.0.1:70000"), "port"),
        (("--ca-certs", "DISABLE"), "cannot be turned off"),
        (("--ca-certs", "HTTP"), "cannot be turned off"),
        (("--ca-certs", "/no/such/file.pem"), "existing CA bundle"),
        (("--max-deprovision-percent", "101"), "0 to 100"),
    ],
)
def test_unsafe_or_malformed_values_are_refused(env: FakeDuoAdmin, flags: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        configure(env, *flags)
    assert not DirectoryConnection.objects.exists()


def test_check_with_a_wrong_secret_key_exits_non_zero_and_never_shows_it(
    env: FakeDuoAdmin, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    wrong = "k" * 40
    monkeypatch.setenv("DUO_ADMIN_SKEY", wrong)
    out = io.StringIO()
    with caplog.at_level(logging.DEBUG), pytest.raises(CommandError, match="connection check failed"):
        call_command(
            "duo_oidc_directory",
            "corp",
            "--api-host",
            env.api_host,
            "--ikey",
            env.ikey,
            "--skey-env",
            "DUO_ADMIN_SKEY",
            "--provider",
            "duo",
            "--ca-certs",
            env.ca_path,
            "--check",
            stdout=out,
            stderr=out,
        )
    text = out.getvalue()
    assert "signature (40103)" in text and env.ikey in text
    assert wrong not in text + caplog.text and env.skey not in text + caplog.text


def test_the_manage_py_exit_status_is_non_zero_on_failure(env: FakeDuoAdmin, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.management import ManagementUtility

    configure(env)
    monkeypatch.setenv("DUO_ADMIN_SKEY", "k" * 40)
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "duo_oidc_sync", "corp"]).execute()
    assert exited.value.code == 1


# duo_oidc_sync ---------------------------------------------------------------------------------------


def test_sync_prints_what_it_changed(env: FakeDuoAdmin, provider: Provider) -> None:
    configure(env)
    alice = link(provider, "alice")
    env.set_state(users=[duo_user("alice", status="disabled", groups=["Staff"])])
    out = run("duo_oidc_sync", "corp")
    assert "corp:" in out
    assert f"user {alice.pk} (Duo 'alice') deactivated and signed out: duo-disabled" in out
    assert "Django group 'duo:Staff' created" in out
    assert "Sync complete" in out
    assert not User.objects.get(pk=alice.pk).is_active


def test_dry_run_prints_what_it_would_change_and_writes_nothing(env: FakeDuoAdmin, provider: Provider) -> None:
    configure(env)
    alice = link(provider, "alice")
    env.set_state(users=[duo_user("alice", status="disabled", groups=["Staff"])])
    out = run("duo_oidc_sync", "--dry-run")
    assert "corp: (dry run)" in out
    assert "would: user" in out and "duo-disabled" in out
    assert User.objects.get(pk=alice.pk).is_active
    assert not Group.objects.exists() and not DirectoryUser.objects.exists()
    assert DirectoryConnection.objects.get().last_sync_at is None
    assert Identity.objects.get(user=alice).duo_user_id == ""


def test_sync_exits_non_zero_on_a_failed_sync(env: FakeDuoAdmin, provider: Provider) -> None:
    configure(env)
    link(provider, "alice")
    env.set_state(users=[duo_user("alice", status="disabled")])
    env.faults(down=True)
    out = io.StringIO()
    with pytest.raises(CommandError, match="Sync failed for corp"):
        call_command("duo_oidc_sync", stdout=out, stderr=out)
    assert "Partial listing: no one's access changed." in out.getvalue()
    assert User.objects.get(username="alice").is_active


def test_sync_force_applies_past_the_guard(env: FakeDuoAdmin, provider: Provider) -> None:
    configure(env, "--max-deprovision-percent", "0")
    alice = link(provider, "alice")
    env.set_state(users=[duo_user("alice", status="disabled")])
    with pytest.raises(CommandError):
        run("duo_oidc_sync", "corp")
    assert User.objects.get(pk=alice.pk).is_active
    assert "Sync complete" in run("duo_oidc_sync", "corp", "--force")
    assert not User.objects.get(pk=alice.pk).is_active


def test_sync_of_an_unknown_slug_or_of_nothing(env: FakeDuoAdmin) -> None:
    with pytest.raises(CommandError, match="no directory connection 'nope'"):
        run("duo_oidc_sync", "nope")
    assert "No enabled directory connection." in run("duo_oidc_sync")
    configure(env, "--disable")
    assert "No enabled directory connection." in run("duo_oidc_sync")  # disabled: not in "all"
    with pytest.raises(CommandError, match="Sync failed for corp"):  # named: still not synced, and says so
        run("duo_oidc_sync", "corp")
    assert env.stats()["requests"] == 0


# The admin ----------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client_(db: Any) -> Client:
    user = User.objects.create_superuser("root", "root@example.test", "pw")
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def test_admin_check_and_sync_actions(admin_client_: Client, env: FakeDuoAdmin, provider: Provider) -> None:
    configure(env)
    connection = DirectoryConnection.objects.get()
    alice = link(provider, "alice")
    env.set_state(users=[duo_user("alice", status="disabled")])
    url = "/admin/duo_oidc/directoryconnection/"
    text = admin_client_.post(
        url, {"action": "check_connection_action", "_selected_action": [connection.pk]}, follow=True
    ).content.decode()
    assert "works" in text and "Admin API OK" in text
    text = admin_client_.post(
        url, {"action": "preview_sync_action", "_selected_action": [connection.pk]}, follow=True
    ).content.decode()
    assert "would change" in text and User.objects.get(pk=alice.pk).is_active
    text = admin_client_.post(
        url, {"action": "sync_now_action", "_selected_action": [connection.pk]}, follow=True
    ).content.decode()
    assert "Sync complete" in text
    assert not User.objects.get(pk=alice.pk).is_active
    assert env.stats()["writes"] == 0


def _form(env: FakeDuoAdmin, provider: Provider, **changes: Any) -> dict[str, Any]:
    data = {
        "slug": "corp",
        "name": "Corp",
        "enabled": "on",
        "provider": provider.pk,
        "api_host": env.api_host,
        "integration_key": env.ikey,
        "secret_key_env": "",
        "secret_key": "",
        "ca_certs": env.ca_path,
        "match": "email",
        "manage_groups": "on",
        "group_prefix": "duo:",
        "deprovision": "on",
        "max_deprovision_percent": "10",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_admin_stores_a_typed_secret_key_encrypted_and_never_shows_it(
    admin_client_: Client, env: FakeDuoAdmin, provider: Provider
) -> None:
    response = admin_client_.post("/admin/duo_oidc/directoryconnection/add/", _form(env, provider, secret_key=env.skey))
    assert response.status_code == 302, response.content.decode()[:3000]
    connection = DirectoryConnection.objects.get()
    assert connection.secret_status == "stored encrypted"
    assert connection.get_secret_key() == env.skey
    page = admin_client_.get(f"/admin/duo_oidc/directoryconnection/{connection.pk}/change/").content.decode()
    assert env.skey not in page and "stored encrypted" in page
    listing = admin_client_.get("/admin/duo_oidc/directoryconnection/").content.decode()
    assert env.skey not in listing


@pytest.mark.parametrize(
    ("field", "value"), [("ca_certs", "DISABLE"), ("api_host", "https://evil.test/"), ("secret_key_env", "HOME")]
)
def test_admin_refuses_unsafe_values(
    admin_client_: Client, env: FakeDuoAdmin, provider: Provider, field: str, value: str
) -> None:
    response = admin_client_.post("/admin/duo_oidc/directoryconnection/add/", _form(env, provider, **{field: value}))
    assert response.status_code == 200  # the form again, with the error
    assert not DirectoryConnection.objects.exists()


def test_changing_a_connection_needs_the_connection_permission(env: FakeDuoAdmin, provider: Provider) -> None:
    configure(env)
    connection = DirectoryConnection.objects.get()
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_directoryconnection", "change_directoryconnection"])
    )
    client = Client()
    client.force_login(staff, backend="django.contrib.auth.backends.ModelBackend")
    url = f"/admin/duo_oidc/directoryconnection/{connection.pk}/change/"
    assert client.get(url).status_code == 200  # may look
    client.post(url, _form(env, provider, api_host="127.0.0.1:18343"))
    assert DirectoryConnection.objects.get().api_host == env.api_host
    response = client.post(
        "/admin/duo_oidc/directoryconnection/", {"action": "sync_now_action", "_selected_action": [connection.pk]}
    )
    assert DirectoryConnection.objects.get().last_sync_at is None
    assert response.status_code in (200, 302)


def test_sync_output_carries_no_terminal_escape_from_duo(env: FakeDuoAdmin, provider: Provider) -> None:
    configure(env)
    link(provider, "alice")
    env.set_state(users=[duo_user("alice", groups=["Staff\x1b[2J\x1b]0;pwned\x07"])])
    out = run("duo_oidc_sync", "corp")
    assert "\x1b" not in out and "\x07" not in out
    assert "Staff" in out


def test_admin_does_not_sync_a_disabled_connection(admin_client_: Client, env: FakeDuoAdmin) -> None:
    configure(env, "--disable")
    connection = DirectoryConnection.objects.get()
    data = {"action": "sync_now_action", "_selected_action": [connection.pk]}
    text = admin_client_.post("/admin/duo_oidc/directoryconnection/", data, follow=True).content.decode()
    assert "is disabled: not synced" in text
    assert env.stats()["requests"] == 0


def test_skey_stdin_without_encryption_keys_is_refused(env: FakeDuoAdmin, settings: Any) -> None:
    settings.DUO_OIDC = {k: v for k, v in settings.DUO_OIDC.items() if k != "ENCRYPTION_KEYS"}
    with pytest.raises(CommandError, match="ENCRYPTION_KEYS"):
        run(
            "duo_oidc_directory",
            "corp",
            "--api-host",
            env.api_host,
            "--ikey",
            env.ikey,
            "--skey-stdin",
            "--provider",
            "duo",
            stdin=env.skey + "\n",
        )
    assert not DirectoryConnection.objects.exists()
