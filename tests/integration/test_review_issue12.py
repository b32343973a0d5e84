"""Adversarial review of issue 12 as merged: each test here failed before its fix (see the commits).

Sessions, back-channel logout and the directory sync, through Duo's own duo_client against the fake Admin
API process and the in-process fake provider, as the other issue 12 tests do.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from django_duo_oidc.directory import sync as directory_sync
from django_duo_oidc.directory.client import DirectoryError, admin_client, guarded_call
from django_duo_oidc.directory.sync import sync_connection
from django_duo_oidc.models import DirectoryConnection, DirectoryUser, Identity, LiveSession, Provider
from tests.fakeduo.admin_fixtures import FakeDuoAdmin, duo_user, duo_user_id
from tests.fakeop import FakeOP
from tests.integration.test_backchannel_logout import logged_in, logout_token, post
from tests.integration.test_directory_sync import connection, link, refreshed, snapshot
from tests.integration.test_login_views import login, me

pytestmark = pytest.mark.django_db
User = get_user_model()
__all__ = ["connection"]  # the fixture, imported for the tests below


def test_a_hand_deactivation_after_a_hand_reactivation_is_never_undone_by_the_sync(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    # The sync deactivated alice (Duo disabled her); Duo re-enabled her and an administrator re-activated
    # her by hand before the next run. The deactivation the sync made is then over: when an administrator
    # later switches her off here for a reason of their own, a run must not switch her back on ("a user
    # the sync deactivated is re-activated when Duo re-enables them, and only then").
    alice = link(provider, "alice")
    fake_duo_admin.set_state(users=[duo_user("alice", status="disabled")])
    assert sync_connection(connection).ok
    assert not refreshed(alice).is_active
    fake_duo_admin.patch_user(duo_user_id("alice"), status="active")
    User.objects.filter(pk=alice.pk).update(is_active=True)  # the administrator, by hand
    assert sync_connection(connection).ok
    assert refreshed(alice).is_active
    assert DirectoryUser.objects.get(duo_user_id=duo_user_id("alice")).deprovisioned_at is None
    User.objects.filter(pk=alice.pk).update(is_active=False)  # later, by hand, for another reason
    result = sync_connection(connection)
    assert result.ok, result.message
    assert not refreshed(alice).is_active
    assert "reactivated" not in result.counts


# Back-channel logout -----------------------------------------------------------------------------------


@pytest.fixture
def _local_memory_cache(settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "rev12"}}


@pytest.mark.usefixtures("_local_memory_cache")
def test_a_logout_token_with_sid_and_sub_ends_the_subs_sessions_whose_login_had_no_sid(
    fake_op: FakeOP, provider: Provider
) -> None:
    # The login's ID token carried no sid (a provider that adds it only to logout tokens, or a sid too long to
    # index): the session cannot be told apart by sid, only by sub. Section 2.7 names the sessions "identified by
    # the iss and sub Claims and/or the sid Claim"; answering 200 while alice stays logged in would fail open.
    alice = logged_in(fake_op, sid=None)
    bob = logged_in(fake_op, sub="bob", sid=None)
    assert LiveSession.objects.get(sub="alice").sid == ""
    assert post(logout_token(fake_op, sub="alice", sid="op-sid-alice")).status_code == 200
    assert me(alice) == {"authenticated": False}
    assert me(bob)["authenticated"] is True


@pytest.mark.usefixtures("_local_memory_cache")
def test_a_sid_alone_never_ends_sessions_indexed_without_a_sid(fake_op: FakeOP, provider: Provider) -> None:
    alice = logged_in(fake_op, sid=None)
    assert post(logout_token(fake_op, sub=None, sid="op-sid-alice")).status_code == 200
    assert me(alice)["authenticated"] is True


# The join key ----------------------------------------------------------------------------------------------


def test_an_unverified_email_kept_on_the_user_never_joins_after_a_login_without_email(
    fake_op: FakeOP, provider: Provider, connection: DirectoryConnection, fake_duo_admin: FakeDuoAdmin
) -> None:
    # mallory claims the boss's address, unverified: the login copies it onto her Django user (the profile
    # fields follow the claims) and records it as unverified, so no join. She then logs in without an email
    # claim (she removed it at the provider): the address stays on her user, and a join that falls back to
    # the user's email field would give her the boss's Duo user and its managed groups.
    fake_op.userinfo_overrides = {"email": "boss@example.test", "email_verified": False}
    login(Client(), fake_op, sub="mallory")
    fake_op.userinfo_overrides = {"email": None}
    fake_op.id_token_drop = {"email"}
    login(Client(), fake_op, sub="mallory")
    identity = Identity.objects.get(provider=provider, sub="mallory")
    assert identity.user.email == "boss@example.test"  # the login without email changed no field
    fake_duo_admin.set_state(users=[duo_user("boss", email="boss@example.test", groups=["Admins"])])
    assert sync_connection(connection).ok
    identity.refresh_from_db()
    assert identity.duo_user_id == ""
    assert not identity.user.groups.exists()


def test_a_login_without_email_still_joins_by_the_users_email_before_any_login_recorded_claims(
    provider: Provider, connection: DirectoryConnection, fake_duo_admin: FakeDuoAdmin
) -> None:
    # Identities from before the join claims were recorded (last_claims {}) keep the Django user's fields.
    alice = link(provider, "alice", claims={})
    fake_duo_admin.set_state(users=[duo_user("alice")])
    assert sync_connection(connection).ok
    assert Identity.objects.get(user=alice).duo_user_id == duo_user_id("alice")


# Deletions -------------------------------------------------------------------------------------------------


def test_duos_error_code_is_read_from_what_duo_client_raises(
    connection: DirectoryConnection, fake_duo_admin: FakeDuoAdmin
) -> None:
    # duo_client's RuntimeError carries Duo's FAIL envelope already parsed (a dict) in .data: the code in it
    # (here 40401 for a user that does not exist) is what tells Duo's own answers from anyone else's.
    client = admin_client(connection)
    with pytest.raises(DirectoryError) as caught:
        guarded_call(connection, client.get_user_by_id, "DUNOSUCHUSERXXXXXXXX")
    assert (caught.value.kind, caught.value.status, caught.value.code) == ("not_found", 404, 40401)


def test_a_404_that_is_not_duos_never_confirms_a_deletion(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    # u1 is deleted while the listing pages (3 a page), so u3, never deleted, is skipped; a proxy in front of
    # the API answers the one-user lookups with its own 404 page. Only Duo's not-found (40401) is a deletion:
    # anything else means the lookup did not reach Duo, and a live user must never be deprovisioned by it.
    users = [link(provider, f"u{i}") for i in range(20)]
    fake_duo_admin.set_state(users=[duo_user(f"u{i}") for i in range(20)])
    assert sync_connection(connection).ok
    before = snapshot()
    fake_duo_admin.faults(
        page_limit=3, delete_during_listing={"offset": 3, "user_ids": [duo_user_id("u1")]}, lookup_plain_404=True
    )
    result = sync_connection(connection)
    assert not result.ok
    assert "40401" in result.message
    assert snapshot() == before
    assert all(refreshed(u).is_active for u in users)


# Sync while the site is used ----------------------------------------------------------------------------------


def test_a_user_deleted_here_while_a_run_plans_fails_the_run_cleanly(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An administrator deletes alice's Django account after the run read the identities and before it applies:
    # the run must change nothing and say so (a result, not an exception escaping to cron, the task worker or
    # the admin's "Sync now" as a 500).
    alice = link(provider, "alice")
    bob = link(provider, "bob")
    fake_duo_admin.set_state(users=[duo_user("alice"), duo_user("bob")])
    assert sync_connection(connection).ok
    fake_duo_admin.patch_user(duo_user_id("alice"), status="disabled")
    fake_duo_admin.patch_user(duo_user_id("bob"), status="disabled")
    real = directory_sync.read_identities

    def read_then_delete(conn: DirectoryConnection) -> Any:
        found = real(conn)
        User.objects.filter(pk=alice.pk).delete()
        return found

    monkeypatch.setattr(directory_sync, "read_identities", read_then_delete)
    result = sync_connection(connection, force=True)
    assert not result.ok
    assert "nothing was changed" in result.message or "rolled back" in result.message
    assert refreshed(bob).is_active
    connection.refresh_from_db()
    assert connection.last_sync_ok is False


def test_users_deleted_in_duo_by_earlier_runs_never_count_again(
    connection: DirectoryConnection, provider: Provider, fake_duo_admin: FakeDuoAdmin
) -> None:
    # People leave one at a time: each run deprovisions the one deleted since the last run. A deletion an
    # earlier run already applied is not "missing from the listing" again: counted again, the departed pile up
    # against the guard (10% of 10 linked users: one a run) until every run fails, and each costs a lookup.
    users = [link(provider, f"u{i}") for i in range(10)]
    fake_duo_admin.set_state(users=[duo_user(f"u{i}") for i in range(10)])
    assert sync_connection(connection).ok
    for gone in (0, 1, 2):
        fake_duo_admin.delete_user(duo_user_id(f"u{gone}"))
        lookups_before = fake_duo_admin.stats()["by_path"].get(f"/admin/v1/users/{duo_user_id(f'u{gone}')}", 0)
        result = sync_connection(connection)
        assert result.ok, result.message
        assert result.counts.get("deactivated") == 1
        assert not refreshed(users[gone]).is_active
        assert (
            fake_duo_admin.stats()["by_path"].get(f"/admin/v1/users/{duo_user_id(f'u{gone}')}", 0) == lookups_before + 1
        )
    earlier = [f"/admin/v1/users/{duo_user_id(f'u{i}')}" for i in (0, 1)]
    assert [fake_duo_admin.stats()["by_path"].get(p, 0) for p in earlier] == [1, 1]  # looked up once each
    assert [refreshed(u).is_active for u in users] == [False, False, False] + [True] * 7
