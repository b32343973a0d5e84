"""The directory sync through Duo's own duo_client against the fake Admin API process (issue 12 "Sync").

Every Admin API call goes over HTTPS to tests/fakeduo/admin_api.py, which checks each signature itself;
the OIDC side is the in-process fake provider. Rate limits: tests that need a 429 beyond duo_client's
back-off set ``django_duo_oidc.directory.client.MAX_BACKOFF_SECONDS`` to 0 (duo_client then gives up on
the first 429 without sleeping); the one test of the back-off itself replaces ``duo_client.client.sleep``.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import Any

import duo_client.client
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client

from django_duo_oidc import signals
from django_duo_oidc.directory import client as directory_client
from django_duo_oidc.directory import sync as directory_sync
from django_duo_oidc.directory.client import DirectoryError, admin_client, check_connection
from django_duo_oidc.directory.sync import LOCK_KEY, sync_connection
from django_duo_oidc.models import DirectoryConnection, DirectoryGroup, DirectoryUser, Identity, LiveSession, Provider
from tests.conftest import captured
from tests.fakeduo.admin_fixtures import FakeDuoAdmin, duo_group, duo_group_id, duo_user, duo_user_id
from tests.fakeop import FakeOP
from tests.integration.test_login_views import login

pytestmark = pytest.mark.django_db
User = get_user_model()
API = "/api/contacts/"


@pytest.fixture
def connection(provider: Provider, fake_duo_admin: FakeDuoAdmin, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("DUO_ADMIN_SKEY", fake_duo_admin.skey)
    cache.delete(LOCK_KEY)
    return DirectoryConnection.objects.create(
        slug="corp",
        api_host=fake_duo_admin.api_host,
        integration_key=fake_duo_admin.ikey,
        secret_key_env="DUO_ADMIN_SKEY",
        ca_certs=fake_duo_admin.ca_path,
        provider=provider,
    )


def link(provider: Provider, name: str, *, email: str | None = None, claims: dict | None = None, **fields: Any) -> Any:
    """A Django user linked to the identity (provider, ``name``-sub), with the join claims of a login."""
    email = f"{name}@example.test" if email is None else email
    user = User.objects.create_user(username=name, email=email, **fields)
    Identity.objects.create(
        provider=provider,
        sub=f"{name}-sub",
        user=user,
        last_claims={"email": email, "preferred_username": name} if claims is None else claims,
    )
    return user


def refreshed(user: Any) -> Any:
    return User.objects.get(pk=user.pk)


def bearer(client: Client, op: FakeOP, sub: str) -> int:
    import secrets

    token = op.access_token(sub, "crm.contacts.read", jti=secrets.token_hex(8))
    op.tokens[token] = {"sub": sub, "scope": "crm.contacts.read", "active": True}
    return client.get(API, HTTP_AUTHORIZATION=f"Bearer {token}").status_code


def snapshot() -> dict[str, Any]:
    """Everything a run may write, to compare before and after a run that must change nothing."""
    return {
        "users": sorted(User.objects.values_list("username", "is_active")),
        "memberships": sorted(User.groups.through.objects.values_list("user_id", "group_id")),
        "groups": sorted(Group.objects.values_list("name", flat=True)),
        "directory_users": sorted(
            DirectoryUser.objects.values_list("duo_user_id", "status", "deleted_at", "deprovisioned_at")
        ),
        "directory_groups": sorted(DirectoryGroup.objects.values_list("duo_group_id", "group_id")),
        "links": sorted(Identity.objects.values_list("pk", "duo_user_id")),
    }


# Connection ------------------------------------------------------------------------------------------


def test_admin_client_splits_host_and_port_and_check_connection_reads_one_user(
    connection: DirectoryConnection, fake_duo_admin: FakeDuoAdmin
) -> None:
    fake_duo_admin.set_state(users=[duo_user("alice")])
    client = admin_client(connection)
    assert (client.host, client.port, client.ca_certs) == ("127.0.0.1", fake_duo_admin.port, fake_duo_admin.ca_path)
    assert client.paging_limit == 300
    report = check_connection(connection)
    assert report.ok, report.lines
    stats = fake_duo_admin.stats()
    assert stats["bad_signatures"] == 0 and stats["writes"] == 0
    assert stats["requests"] == 1


def test_check_connection_with_a_wrong_secret_key_says_40103_and_never_the_key(
    connection: DirectoryConnection, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    wrong = "x" * 40
    monkeypatch.setenv("DUO_ADMIN_SKEY", wrong)
    with caplog.at_level(logging.DEBUG, logger="django_duo_oidc"):
        report = check_connection(connection)
    assert not report.ok
    assert report.kind == "signature"
    assert "signature (40103)" in report.lines[0]
    assert "check the integration key" in report.lines[0]
    assert wrong not in " ".join(report.lines) + caplog.text


def test_pinned_duo_cas_refuse_the_test_server(connection: DirectoryConnection) -> None:
    connection.ca_certs = ""  # duo_client's bundled Duo CAs, never "no verification"
    report = check_connection(connection)
    assert not report.ok and report.kind == "tls"
    assert "certificate is not trusted" in report.lines[0]


@pytest.mark.parametrize("value", ["HTTP", "DISABLE", "disable", "relative/ca.pem", "/no/such/ca.pem"])
def test_ca_certs_cannot_turn_tls_off(connection: DirectoryConnection, value: str) -> None:
    connection.ca_certs = value
    with pytest.raises(DirectoryError) as caught:
        admin_client(connection)
    assert caught.value.kind == "config"


@pytest.mark.parametrize(
    "api_host", ["https://api-x.duosecurity.com", "api-x.duosecurity.com/admin", "u@host", "host:0", "host:99999", ""]
)
def test_a_malformed_api_host_is_refused(connection: DirectoryConnection, api_host: str) -> None:
    connection.api_host = api_host
    with pytest.raises(DirectoryError):
        admin_client(connection)


def test_unreachable_and_missing_secret_are_clear(
    connection: DirectoryConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection.api_host = "127.0.0.1:18341"  # nothing listens there (this helper's port range)
    report = check_connection(connection)
    assert not report.ok and report.kind == "unreachable"
    assert "could not be reached" in report.lines[0]
    monkeypatch.delenv("DUO_ADMIN_SKEY")
    report = check_connection(connection)
    assert report.kind == "config" and "DUO_ADMIN_SKEY" in report.lines[0]


# Matching --------------------------------------------------------------------------------------------


def test_join_by_email_links_and_keeps_the_snapshot(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    alice = link(provider, "alice", email="Alice@Example.test")
    fake_duo_admin.set_state(
        users=[duo_user("alice", email="alice@example.TEST", groups=["Staff"], phones=2, webauthn=1, last_login=1)]
    )
    result = sync_connection(connection)
    assert result.ok, result.message
    identity = Identity.objects.get(user=alice)
    assert identity.duo_user_id == duo_user_id("alice")
    row = DirectoryUser.objects.get(duo_user_id=duo_user_id("alice"))
    assert row.identity == identity
    assert row.status == "active" and row.is_enrolled
    assert row.devices == {"phones": 2, "tokens": 0, "webauthn": 1, "desktop": 0}
    assert row.groups == [{"group_id": duo_group_id("Staff"), "name": "Staff"}]
    assert row.last_login is not None and row.seen_at is not None
    connection.refresh_from_db()
    assert connection.last_sync_ok is True and "linked 1" in connection.last_sync_summary


def test_join_by_username(connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin) -> None:
    connection.match = "username"
    connection.save()
    bob = link(provider, "bob", email="bob@elsewhere.test")
    fake_duo_admin.set_state(users=[duo_user("BOB", email="")])
    assert sync_connection(connection).ok
    assert Identity.objects.get(user=bob).duo_user_id == duo_user_id("BOB")


def test_a_login_records_the_join_claims(
    client: Client, fake_op: FakeOP, provider: Provider, connection: DirectoryConnection, fake_duo_admin: FakeDuoAdmin
) -> None:
    login(client, fake_op, sub="alice")
    identity = Identity.objects.get(provider=provider, sub="alice")
    assert identity.last_claims == {"email": "alice@example.test"}
    fake_duo_admin.set_state(users=[duo_user("alice")])
    assert sync_connection(connection).ok
    identity.refresh_from_db()
    assert identity.duo_user_id == duo_user_id("alice")


def test_the_remembered_duo_user_id_survives_an_email_change(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    alice = link(provider, "alice")
    fake_duo_admin.set_state(users=[duo_user("alice")])
    assert sync_connection(connection).ok
    # Alice's Duo email changes, and Mallory's Duo account takes her old address.
    fake_duo_admin.patch_user(duo_user_id("alice"), email="alice.new@example.test", status="disabled")
    fake_duo_admin.set_state(users=[*fake_duo_admin.state()["users"], duo_user("mallory", email="alice@example.test")])
    assert sync_connection(connection).ok
    assert Identity.objects.get(user=alice).duo_user_id == duo_user_id("alice")
    assert refreshed(alice).is_active is False  # the remembered Duo user is the one that counts


def test_an_ambiguous_match_links_nobody_and_warns(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin, caplog: Any
) -> None:
    alice = link(provider, "alice")
    fake_duo_admin.set_state(
        users=[duo_user("alice", status="disabled"), duo_user("alice2", email="ALICE@example.test", status="disabled")]
    )
    with caplog.at_level(logging.WARNING, logger="django_duo_oidc"):
        result = sync_connection(connection)
    assert result.ok
    assert refreshed(alice).is_active
    assert Identity.objects.get(user=alice).duo_user_id == ""
    assert "ambiguous match" in caplog.text and "none is linked" in caplog.text
    assert result.warnings


def test_two_identities_with_one_email_link_nobody(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    one = link(provider, "alice")
    two = link(provider, "alice-twin", email="alice@example.test")
    fake_duo_admin.set_state(users=[duo_user("alice", status="disabled")])
    assert sync_connection(connection).ok
    assert refreshed(one).is_active and refreshed(two).is_active
    assert not Identity.objects.exclude(duo_user_id="").exists()


def test_identities_of_another_provider_are_never_matched(
    connection: DirectoryConnection, fake_op: FakeOP, fake_duo_admin: FakeDuoAdmin
) -> None:
    other = Provider.objects.create(slug="other", name="Other", issuer="https://other.example.test", client_id="x")
    alice = link(other, "alice")
    fake_duo_admin.set_state(users=[duo_user("alice", status="disabled")])
    assert sync_connection(connection).ok
    assert refreshed(alice).is_active


# Groups ------------------------------------------------------------------------------------------------


def test_groups_are_mirrored_and_hand_made_groups_are_untouched(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    alice = link(provider, "alice")
    bob = link(provider, "bob")
    hand_made = Group.objects.create(name="duo:Admins")  # made by hand, before any sync
    local = Group.objects.create(name="local")
    alice.groups.add(local)
    bob.groups.add(hand_made)
    fake_duo_admin.set_state(
        users=[duo_user("alice", groups=["Staff", "Admins"]), duo_user("bob", groups=["Staff"])],
        groups=[duo_group("Empty")],
    )
    result = sync_connection(connection)
    assert result.ok
    staff = Group.objects.get(name="duo:Staff")
    assert set(alice.groups.values_list("name", flat=True)) == {"duo:Staff", "local"}
    assert set(bob.groups.values_list("name", flat=True)) == {"duo:Staff", "duo:Admins"}  # bob's own stays
    assert DirectoryGroup.objects.get(duo_group_id=duo_group_id("Admins")).group is None
    assert DirectoryGroup.objects.get(duo_group_id=duo_group_id("Staff")).group == staff
    assert Group.objects.filter(name="duo:Empty").exists()
    assert any("not taken over" in str(c) for c in result.changes)
    # Bob leaves Staff in Duo: he leaves duo:Staff, keeps the hand-made group; Alice keeps "local".
    fake_duo_admin.patch_user(duo_user_id("bob"), groups=[])
    assert sync_connection(connection).ok
    assert set(bob.groups.values_list("name", flat=True)) == {"duo:Admins"}
    assert set(alice.groups.values_list("name", flat=True)) == {"duo:Staff", "local"}


def test_a_group_deleted_in_duo_loses_its_members(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    alice = link(provider, "alice")
    fake_duo_admin.set_state(users=[duo_user("alice", groups=["Staff"])])
    assert sync_connection(connection).ok
    assert alice.groups.filter(name="duo:Staff").exists()
    fake_duo_admin.set_state(users=[duo_user("alice")])
    assert sync_connection(connection).ok
    assert not alice.groups.exists()


def test_no_groups_when_the_connection_does_not_manage_them(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    connection.manage_groups = False
    connection.save()
    alice = link(provider, "alice")
    fake_duo_admin.set_state(users=[duo_user("alice", groups=["Staff"])])
    assert sync_connection(connection).ok
    assert not Group.objects.exists() and not alice.groups.exists()


# Deprovisioning ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [("disabled", "duo-disabled"), ("locked out", "duo-locked-out"), ("deleted", "duo-deleted")],
)
def test_a_user_switched_off_in_duo_loses_the_session_and_the_bearer_token_at_once(
    client: Client,
    fake_op: FakeOP,
    provider: Provider,
    connection: DirectoryConnection,
    fake_duo_admin: FakeDuoAdmin,
    change: str,
    reason: str,
) -> None:
    login(client, fake_op, sub="alice")
    other_browser = Client()
    login(other_browser, fake_op, sub="alice")
    assert client.get("/me/").json()["authenticated"] is True
    assert LiveSession.objects.filter(user__duo_identities__sub="alice").count() == 2
    api = Client()
    assert bearer(api, fake_op, "alice") == 200  # remembered by this process from now on
    bob = link(provider, "bob")  # someone else, still active
    users = [duo_user("alice"), duo_user("bob")] + [duo_user(f"u{i}") for i in range(8)]
    fake_duo_admin.set_state(users=users)
    assert sync_connection(connection).ok
    if change == "deleted":
        fake_duo_admin.delete_user(duo_user_id("alice"))
    else:
        fake_duo_admin.patch_user(duo_user_id("alice"), status=change)
    with captured(signals.user_deprovisioned) as seen:
        result = sync_connection(connection)
    assert result.ok, result.message
    alice = User.objects.get(duo_identities__sub="alice")
    assert alice.is_active is False
    assert refreshed(bob).is_active
    row = DirectoryUser.objects.get(duo_user_id=duo_user_id("alice"))
    assert row.deprovisioned_at is not None
    assert (row.deleted_at is not None) == (change == "deleted")
    assert [(s["user"].pk, s["reason"], s["directory_user"].pk) for s in seen] == [(alice.pk, reason, row.pk)]
    # Every session ended at once: gone from the index and from the session store, whatever is_active says.
    assert result.counts["sessions ended"] == 2
    assert not LiveSession.objects.filter(user=alice).exists()
    assert (
        not import_module(settings.SESSION_ENGINE)
        .SessionStore()
        .exists(client.cookies[settings.SESSION_COOKIE_NAME].value)
    )
    assert client.get("/me/").json() == {"authenticated": False}
    assert other_browser.get("/me/").json() == {"authenticated": False}
    assert bearer(api, fake_op, "alice") == 401
    assert fake_duo_admin.stats()["writes"] == 0


def test_re_enabled_in_duo_is_active_again_only_when_the_sync_deactivated(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    alice = link(provider, "alice")
    carol = link(provider, "carol", is_active=False)  # inactive here for another reason
    fake_duo_admin.set_state(users=[duo_user("alice", status="disabled"), duo_user("carol", status="disabled")])
    assert sync_connection(connection).ok
    assert not refreshed(alice).is_active
    assert DirectoryUser.objects.get(duo_user_id=duo_user_id("carol")).deprovisioned_at is None
    fake_duo_admin.patch_user(duo_user_id("alice"), status="active")
    fake_duo_admin.patch_user(duo_user_id("carol"), status="bypass")
    with captured(signals.user_reprovisioned) as seen:
        result = sync_connection(connection)
    assert result.ok
    assert refreshed(alice).is_active
    assert not refreshed(carol).is_active
    assert DirectoryUser.objects.get(duo_user_id=duo_user_id("alice")).deprovisioned_at is None
    assert [s["user"].pk for s in seen] == [alice.pk]


def test_deprovision_off_records_but_changes_no_access(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    connection.deprovision = False
    connection.save()
    alice = link(provider, "alice")
    fake_duo_admin.set_state(users=[duo_user("alice", status="disabled")])
    assert sync_connection(connection).ok
    assert refreshed(alice).is_active
    assert DirectoryUser.objects.get(duo_user_id=duo_user_id("alice")).status == "disabled"


def test_the_guard_stops_a_mass_deactivation_and_force_overrides_it(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    users = [link(provider, f"u{i}") for i in range(20)]
    fake_duo_admin.set_state(users=[duo_user(f"u{i}") for i in range(20)])
    assert sync_connection(connection).ok
    for i in range(3):  # 3 of 20 > 10% (2 allowed)
        fake_duo_admin.patch_user(duo_user_id(f"u{i}"), status="disabled")
    before = snapshot()
    result = sync_connection(connection)
    assert not result.ok
    assert "would deactivate 3 of 20 linked users" in result.message and "--force" in result.message
    assert snapshot() == before
    connection.refresh_from_db()
    assert connection.last_sync_ok is False
    assert sync_connection(connection, force=True).ok
    assert [refreshed(u).is_active for u in users[:4]] == [False, False, False, True]


def test_the_guard_counts_users_missing_from_the_listing(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    for i in range(10):
        link(provider, f"u{i}")
    fake_duo_admin.set_state(users=[duo_user(f"u{i}") for i in range(10)])
    assert sync_connection(connection).ok
    fake_duo_admin.set_state(users=[])  # a listing of nobody: an emptied or wrong account
    before = snapshot()
    result = sync_connection(connection)
    assert not result.ok and "missing from the listing" in result.message
    assert snapshot() == before
    assert fake_duo_admin.stats()["by_path"].get("/admin/v1/users", 0) >= 1


def test_a_linked_user_missing_from_the_listing_but_still_in_duo_changes_nothing(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    # An offset listing can skip a user when another is deleted while it pages: a deletion counts only
    # once Duo answers 404 for that user.
    link(provider, "alice")
    fake_duo_admin.set_state(users=[duo_user("alice")])
    assert sync_connection(connection).ok
    client = admin_client(connection)
    with pytest.raises(directory_sync.SyncFailed, match="still exists"):
        directory_sync._confirm_deleted(connection, client, [duo_user_id("alice")])
    fake_duo_admin.delete_user(duo_user_id("alice"))
    assert directory_sync._confirm_deleted(connection, client, [duo_user_id("alice")]) == [duo_user_id("alice")]


# A listing that is not complete changes nothing ----------------------------------------------------


def _prepared(connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin) -> Any:
    alice = link(provider, "alice")
    users = [duo_user("alice", groups=["Staff"])] + [duo_user(f"u{i}") for i in range(9)]
    fake_duo_admin.set_state(users=users)
    assert sync_connection(connection).ok
    fake_duo_admin.patch_user(duo_user_id("alice"), status="disabled", groups=["Other"])
    fake_duo_admin.set_state(users=[*fake_duo_admin.state()["users"], duo_user("newcomer")])
    return alice


@pytest.mark.parametrize(
    "faults",
    [
        {"page_limit": 3, "fail_at_offset": 3},
        {"page_limit": 3, "fail_at_offset": 6, "fail_mode": "body"},
        {"rate_limit": 2},
        {"down": True},
    ],
    ids=["failed-page", "truncated-page", "rate-limited", "down"],
)
def test_a_partial_listing_changes_no_ones_access(
    connection: DirectoryConnection,
    provider: Provider,
    fake_duo_admin: FakeDuoAdmin,
    monkeypatch: pytest.MonkeyPatch,
    faults: dict[str, Any],
) -> None:
    monkeypatch.setattr(directory_client, "MAX_BACKOFF_SECONDS", 0)  # give up on the first 429, no sleep
    alice = _prepared(connection, provider, fake_duo_admin)
    before = snapshot()
    fake_duo_admin.faults(**faults)
    result = sync_connection(connection)
    assert not result.ok
    assert result.message.startswith("Partial listing: no one's access changed.")
    assert result.changes == []
    assert snapshot() == before
    assert refreshed(alice).is_active
    connection.refresh_from_db()
    assert connection.last_sync_ok is False and "Partial listing" in connection.last_sync_summary
    if "rate_limit" in faults:
        assert "42901" in result.message
    assert fake_duo_admin.stats()["writes"] == 0


def test_duo_clients_back_off_rides_out_a_short_rate_limit(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(duo_client.client, "sleep", waits.append)  # duo_client's own back-off, not slept
    alice = _prepared(connection, provider, fake_duo_admin)
    fake_duo_admin.faults(rate_limit=2, page_limit=3)
    result = sync_connection(connection)
    assert result.ok, result.message
    assert not refreshed(alice).is_active
    assert len(waits) == 2 and 1 <= waits[0] < 2 and 2 <= waits[1] < 3
    assert fake_duo_admin.stats()["rate_limited"] == 2


def test_a_malformed_user_object_is_a_bad_page(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    alice = _prepared(connection, provider, fake_duo_admin)
    before = snapshot()
    fake_duo_admin.patch_user(duo_user_id("u3"), phones={"not": "a list"})
    result = sync_connection(connection)
    assert not result.ok and "bad page" in result.message
    assert snapshot() == before
    assert refreshed(alice).is_active


def test_a_wrong_secret_key_fails_clearly_and_never_shows_it(
    connection: DirectoryConnection,
    provider: Provider,
    fake_duo_admin: FakeDuoAdmin,
    monkeypatch: pytest.MonkeyPatch,
    caplog: Any,
) -> None:
    alice = _prepared(connection, provider, fake_duo_admin)
    before = snapshot()
    wrong = "w" * 40
    monkeypatch.setenv("DUO_ADMIN_SKEY", wrong)
    with caplog.at_level(logging.DEBUG, logger="django_duo_oidc"):
        result = sync_connection(connection)
    assert not result.ok and "40103" in result.message
    assert snapshot() == before and refreshed(alice).is_active
    connection.refresh_from_db()
    for text in (result.message, result.summary(), caplog.text, connection.last_sync_summary):
        assert wrong not in text and fake_duo_admin.skey not in text
    assert fake_duo_admin.stats()["bad_signatures"] >= 1


def test_a_database_failure_rolls_the_whole_run_back(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    alice = _prepared(connection, provider, fake_duo_admin)
    before = snapshot()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("database is locked")

    monkeypatch.setattr(directory_sync, "apply_plan", lambda *a, **k: (Group.objects.create(name="half"), broken()))
    result = sync_connection(connection)
    assert not result.ok and "rolled back" in result.message
    assert snapshot() == before
    assert refreshed(alice).is_active


# The lock, dry runs, writes, signals -----------------------------------------------------------------


def test_a_second_run_while_one_holds_the_lock_does_nothing(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    alice = _prepared(connection, provider, fake_duo_admin)
    before, requests = snapshot(), fake_duo_admin.stats()["requests"]
    cache.add(LOCK_KEY, "another run", 60)
    try:
        result = sync_connection(connection)
    finally:
        cache.delete(LOCK_KEY)
    assert not result.ok and "Another sync is running" in result.message
    assert snapshot() == before and refreshed(alice).is_active
    assert fake_duo_admin.stats()["requests"] == requests
    assert sync_connection(connection).ok  # released: the next run works
    assert cache.get(LOCK_KEY) is None


def test_two_runs_at_once_only_one_proceeds(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = _prepared(connection, provider, fake_duo_admin)
    real_list = directory_sync._list_everything
    overlapping: list[Any] = []

    def list_and_meanwhile_start_another_run(*args: Any) -> Any:
        # The first run holds the lock while it lists: a second run (cron firing again) starts now.
        overlapping.append(sync_connection(connection))
        return real_list(*args)

    monkeypatch.setattr(directory_sync, "_list_everything", list_and_meanwhile_start_another_run)
    first = sync_connection(connection)
    assert first.ok, first.message
    assert not overlapping[0].ok and "Another sync is running" in overlapping[0].message
    assert not refreshed(alice).is_active  # the first run's work, done once
    assert cache.get(LOCK_KEY) is None


def test_the_lock_fails_closed_when_the_cache_is_down(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin, settings: Any
) -> None:
    alice = _prepared(connection, provider, fake_duo_admin)
    before, requests = snapshot(), fake_duo_admin.stats()["requests"]
    settings.CACHES = {
        **settings.CACHES,
        "down": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:18342/0"},
    }
    settings.DUO_OIDC = {**settings.DUO_OIDC, "CACHE_ALIAS": "down"}
    result = sync_connection(connection)
    assert not result.ok and "cache is unavailable" in result.message
    assert snapshot() == before and refreshed(alice).is_active
    assert fake_duo_admin.stats()["requests"] == requests


def test_a_dry_run_writes_nothing_and_says_what_it_would_do(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    alice = _prepared(connection, provider, fake_duo_admin)
    before = snapshot()
    connection.refresh_from_db()
    last = (connection.last_sync_at, connection.last_sync_summary)
    with captured(signals.directory_synced) as synced:
        result = sync_connection(connection, dry_run=True)
    assert result.ok and result.dry_run
    kinds = {c.kind for c in result.changes}
    assert {"deactivated", "group-created", "membership-added", "membership-removed"} <= kinds
    assert snapshot() == before and refreshed(alice).is_active
    connection.refresh_from_db()
    assert (connection.last_sync_at, connection.last_sync_summary) == last
    assert synced[0]["dry_run"] is True and synced[0]["result"] is result


def test_the_sync_never_writes_to_duo_and_uses_few_requests(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    _prepared(connection, provider, fake_duo_admin)
    fake_duo_admin.delete_user(duo_user_id("u1"))
    stats_before = fake_duo_admin.stats()
    with captured(signals.directory_synced) as synced:
        result = sync_connection(connection)
    assert result.ok
    stats = fake_duo_admin.stats()
    assert stats["writes"] == 0 and stats["bad_signatures"] == 0
    # One page of groups and one of users (300 a page): no per-user calls for groups or devices.
    assert stats["requests"] - stats_before["requests"] == 2
    assert synced[0]["connection"] == connection and synced[0]["result"].counts["users listed"] == 10


def test_each_change_is_logged_with_its_reason(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin, caplog: Any
) -> None:
    alice = _prepared(connection, provider, fake_duo_admin)
    with caplog.at_level(logging.INFO, logger="django_duo_oidc"):
        assert sync_connection(connection).ok
    assert f"deactivated user {alice.pk} (Duo user {duo_user_id('alice')}, alice): duo-disabled" in caplog.text
    assert f"user {alice.pk} removed from 'Staff'" in caplog.text
    assert fake_duo_admin.skey not in caplog.text


def test_the_task_runs_the_sync_on_the_immediate_backend(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin, settings: Any
) -> None:
    from django_tasks import TaskResultStatus

    from django_duo_oidc.directory.tasks import sync_directories

    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    alice = _prepared(connection, provider, fake_duo_admin)
    result = sync_directories.enqueue()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value[0]["connection"] == "corp" and result.return_value[0]["ok"] is True
    assert not refreshed(alice).is_active
    fake_duo_admin.faults(down=True)
    failed = sync_directories.enqueue(slug="corp")
    assert failed.status == TaskResultStatus.FAILED


# Two directories, timeouts, a lock lost mid-run ----------------------------------------------------


def test_a_second_directory_of_the_same_provider_never_deprovisions_the_first_ones_users(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    # Two Duo accounts govern one provider: each knows only its own users. Alice is remembered by the
    # first; the second does not list her and its API answers 404 for her id: she is not "deleted".
    alice = link(provider, "alice")
    fake_duo_admin.set_state(users=[duo_user("alice")])
    assert sync_connection(connection).ok
    second = DirectoryConnection.objects.create(
        slug="second",
        api_host=connection.api_host,
        integration_key=connection.integration_key,
        secret_key_env="DUO_ADMIN_SKEY",
        ca_certs=connection.ca_certs,
        provider=provider,
    )
    fake_duo_admin.set_state(users=[duo_user("bob")])  # the second account's users
    result = sync_connection(second)
    assert result.ok, result.message
    assert refreshed(alice).is_active
    assert Identity.objects.get(user=alice).duo_user_id == duo_user_id("alice")


def test_a_slow_admin_api_times_out_and_changes_nothing(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin, settings: Any
) -> None:
    alice = _prepared(connection, provider, fake_duo_admin)
    before = snapshot()
    settings.DUO_OIDC = {**settings.DUO_OIDC, "HTTP_TIMEOUT": 0.3}
    fake_duo_admin.faults(delay=1.0)
    result = sync_connection(connection)
    assert not result.ok and "did not answer in time" in result.message
    assert snapshot() == before and refreshed(alice).is_active


def test_a_run_whose_lock_expired_changes_nothing(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = _prepared(connection, provider, fake_duo_admin)
    before = snapshot()
    real_list = directory_sync._list_everything

    def list_slowly(*args: Any) -> Any:
        listing = real_list(*args)
        cache.set(LOCK_KEY, "a later run", 60)  # ours expired meanwhile and another run took the lock
        return listing

    monkeypatch.setattr(directory_sync, "_list_everything", list_slowly)
    result = sync_connection(connection)
    assert not result.ok and "lock expired" in result.message
    assert snapshot() == before and refreshed(alice).is_active
    assert cache.get(LOCK_KEY) == "a later run"  # never released someone else's lock
    cache.delete(LOCK_KEY)


def test_a_session_store_failure_still_leaves_the_user_inactive(
    client: Client,
    fake_op: FakeOP,
    provider: Provider,
    connection: DirectoryConnection,
    fake_duo_admin: FakeDuoAdmin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    login(client, fake_op, sub="alice")
    fake_duo_admin.set_state(users=[duo_user("alice", status="disabled")])

    def store_down(*args: Any, **kwargs: Any) -> int:
        raise ConnectionError("session store down")

    monkeypatch.setattr(directory_sync.live_sessions, "end_sessions", store_down)
    result = sync_connection(connection)
    assert result.ok  # the deactivation stands; the failure is reported
    assert any("could not be ended" in w for w in result.warnings)
    assert client.get("/me/").json() == {"authenticated": False}  # get_user refuses an inactive user


def test_an_unverified_email_never_joins_so_no_one_gains_a_duo_users_groups(
    client: Client, fake_op: FakeOP, provider: Provider, connection: DirectoryConnection, fake_duo_admin: FakeDuoAdmin
) -> None:
    # A provider letting users type their own address: mallory claims the admin's email, unverified.
    fake_op.userinfo_overrides = {"email": "boss@example.test", "email_verified": False}
    login(client, fake_op, sub="mallory")
    identity = Identity.objects.get(provider=provider, sub="mallory")
    assert identity.last_claims == {"email": "boss@example.test", "email_verified": False}
    fake_duo_admin.set_state(users=[duo_user("boss", email="boss@example.test", groups=["Admins"])])
    assert sync_connection(connection).ok
    identity.refresh_from_db()
    assert identity.duo_user_id == ""
    assert not identity.user.groups.exists()


def test_the_task_module_imports_without_any_tasks_framework(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    from django_duo_oidc.directory import tasks

    monkeypatch.setitem(sys.modules, "django_tasks", None)  # not installed: import raises ImportError
    monkeypatch.setitem(sys.modules, "django.tasks", None)
    try:
        reloaded = importlib.reload(tasks)
        assert reloaded.sync_directories is None
        assert callable(reloaded.run_sync)
    finally:
        monkeypatch.undo()
        importlib.reload(tasks)
    assert tasks.sync_directories is not None


def test_without_deprovisioning_a_deleted_user_is_only_marked_deleted(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    alice = link(provider, "alice")
    fake_duo_admin.set_state(users=[duo_user("alice"), duo_user("bob")])
    assert sync_connection(connection).ok
    connection.deprovision = False
    connection.save()
    fake_duo_admin.delete_user(duo_user_id("alice"))
    before = fake_duo_admin.stats()["by_path"]
    assert sync_connection(connection).ok
    after = fake_duo_admin.stats()["by_path"]
    assert {p for p in after if after[p] != before.get(p)} == {"/admin/v1/users", "/admin/v1/groups"}  # no lookups
    assert refreshed(alice).is_active
    assert DirectoryUser.objects.get(duo_user_id=duo_user_id("alice")).deleted_at is not None


def test_a_cache_that_keeps_nothing_never_lets_a_run_apply(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin, settings: Any
) -> None:
    alice = _prepared(connection, provider, fake_duo_admin)
    before = snapshot()
    settings.CACHES = {**settings.CACHES, "dummy": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    settings.DUO_OIDC = {**settings.DUO_OIDC, "CACHE_ALIAS": "dummy"}
    result = sync_connection(connection)
    assert not result.ok and "keeps nothing" in result.message
    assert snapshot() == before and refreshed(alice).is_active


def test_a_group_renamed_in_duo_is_renamed_here_and_keeps_its_members(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    alice = link(provider, "alice")
    staff = duo_group("Staff")
    fake_duo_admin.set_state(users=[duo_user("alice", groups=[staff])])
    assert sync_connection(connection).ok
    django_group = Group.objects.get(name="duo:Staff")
    renamed = duo_group("Staffers", group_id=staff["group_id"])
    fake_duo_admin.set_state(users=[duo_user("alice", groups=[renamed])])
    assert sync_connection(connection).ok
    django_group.refresh_from_db()
    assert django_group.name == "duo:Staffers"
    assert list(alice.groups.all()) == [django_group]


def test_a_listing_that_shifts_under_deletions_changes_nothing(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    # u1 is deleted while the listing pages (3 a page): offsets shift and u3, never deleted, is skipped.
    users = [link(provider, f"u{i}") for i in range(10)]
    fake_duo_admin.set_state(users=[duo_user(f"u{i}") for i in range(10)])
    assert sync_connection(connection).ok
    before = snapshot()
    fake_duo_admin.faults(page_limit=3, delete_during_listing={"offset": 3, "user_ids": [duo_user_id("u1")]})
    result = sync_connection(connection, force=True)  # even forced: a skipped live user is never "deleted"
    assert not result.ok and "still exists" in result.message
    assert snapshot() == before
    assert all(refreshed(u).is_active for u in users)
    # The next run sees a consistent listing: u1 (really deleted) goes, nobody else.
    fake_duo_admin.faults(page_limit=3, delete_during_listing=None)
    assert sync_connection(connection).ok
    assert [refreshed(u).is_active for u in users] == [i != 1 for i in range(10)]


def test_a_listing_that_never_ends_is_a_bad_page(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    alice = _prepared(connection, provider, fake_duo_admin)
    before = snapshot()
    fake_duo_admin.faults(next_offset_loop=True, page_limit=4)
    result = sync_connection(connection)
    assert not result.ok and "repeats a user" in result.message
    assert snapshot() == before and refreshed(alice).is_active
    assert fake_duo_admin.stats()["by_path"]["/admin/v1/users"] < 10  # stopped at the first repeated page


def test_a_user_model_without_is_active_cannot_be_deprovisioned_and_says_so(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(directory_sync, "users_have_is_active", lambda: False)
    result = sync_connection(connection)
    assert not result.ok and "no is_active field" in result.message
    connection.deprovision = False
    assert sync_connection(connection).ok
