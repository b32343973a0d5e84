"""The directory sync's decisions on plain dicts (django_duo_oidc.directory.plan): no database, no network."""

from __future__ import annotations

from typing import Any

import pytest

from django_duo_oidc.directory.plan import (
    BadListing,
    DuoGroup,
    IdentityInfo,
    PreviousUser,
    allowed_deactivations,
    deprovision_reason,
    make_plan,
    parse_group,
    parse_user,
    unlisted_links,
)


def duo(user_id: str, username: str, email: str = "", status: str = "active", groups: Any = (), **kw: Any) -> Any:
    obj = {
        "user_id": user_id,
        "username": username,
        "email": email,
        "status": status,
        "groups": [{"group_id": g, "name": g.lower()} for g in groups],
        "phones": [{"phone_id": "P1", "number": "+15555550100"}],
        "tokens": [],
        "webauthncredentials": [{}, {}],
        "is_enrolled": True,
        "last_login": 1_700_000_000,
        **kw,
    }
    return parse_user(obj)


def ident(pk: int, email: str = "", username: str = "", duo_user_id: str = "", active: bool = True, **kw: Any) -> Any:
    fields = {
        "pk": pk,
        "user_pk": 100 + pk,
        "duo_user_id": duo_user_id,
        "claims_email": email or None,
        "claims_username": username or None,
        "user_email": "",
        "user_username": f"django{pk}",
        "user_active": active,
    }
    fields.update(kw)
    return IdentityInfo(**fields)


def plan(users: list[Any], identities: list[Any], **kw: Any) -> Any:
    kw.setdefault("groups", {})
    kw.setdefault("previous", {})
    return make_plan(users={u.user_id: u for u in users}, identities=identities, **kw)


# Parsing ---------------------------------------------------------------------------------------------


def test_parse_user_keeps_counts_never_device_details() -> None:
    user = duo("DU1", "alice", "alice@example.com", groups=["DG1"])
    assert user.device_counts() == {"phones": 1, "tokens": 0, "webauthn": 2, "desktop": 0}
    assert user.groups == (("DG1", "dg1"),)
    assert "+1555" not in repr(user)


@pytest.mark.parametrize(
    "bad",
    [
        "a string",
        {"username": "no id", "status": "active"},
        {"user_id": "DU1", "status": 3},
        {"user_id": "DU1", "status": "active", "groups": "DG1"},
        {"user_id": "DU1", "status": "active", "groups": [{"name": "no id"}]},
        {"user_id": "DU1", "status": "active", "phones": {"x": 1}},
        {"user_id": "DU1", "status": "active", "last_login": "yesterday"},
        {"user_id": "DU1", "status": "active", "is_enrolled": "yes"},
        {"user_id": "DU1"},
    ],
)
def test_a_malformed_user_is_a_bad_listing(bad: Any) -> None:
    with pytest.raises(BadListing):
        parse_user(bad)


def test_a_malformed_group_is_a_bad_listing() -> None:
    with pytest.raises(BadListing):
        parse_group(["DG1"])
    assert parse_group({"group_id": "DG1", "name": "Staff", "desc": "x"}) == DuoGroup("DG1", "Staff")


def test_status_reasons_fail_closed() -> None:
    assert deprovision_reason("active") is None
    assert deprovision_reason("bypass") is None
    assert deprovision_reason("disabled") == "duo-disabled"
    assert deprovision_reason("locked out") == "duo-locked-out"
    assert deprovision_reason("pending deletion") == "duo-pending-deletion"
    assert deprovision_reason(None) == "duo-deleted"
    assert deprovision_reason("something new") == "duo-status-unknown"
    assert parse_user({"user_id": "DU1", "status": " Locked Out "}).status == "locked out"


# Matching --------------------------------------------------------------------------------------------


def test_join_by_email_case_insensitive_and_remembered() -> None:
    p = plan([duo("DU1", "alice", "Alice@Example.com")], [ident(1, email="alice@example.COM")])
    assert p.links == {"DU1": 1}
    assert p.new_links == {1: "DU1"}


def test_join_by_username() -> None:
    users = [duo("DU1", "Alice", "other@example.com")]
    p = plan(users, [ident(1, email="alice@example.com", username="alice")], match="username")
    assert p.links == {"DU1": 1}
    assert plan(users, [ident(1, email="alice@example.com", username="alice")], match="email").links == {}


def test_join_falls_back_to_the_django_user_fields() -> None:
    p = plan([duo("DU1", "bob", "bob@example.com")], [ident(1, user_email="BOB@example.com")])
    assert p.links == {"DU1": 1}
    p = plan([duo("DU1", "bob")], [ident(1, user_username="bob")], match="username")
    assert p.links == {"DU1": 1}


def test_a_remembered_duo_user_id_wins_over_the_join_key() -> None:
    # Alice changed her email in Duo: the remembered id still links her, and nobody else gets her key.
    users = [duo("DU1", "alice", "new@example.com"), duo("DU2", "mallory", "alice@example.com")]
    p = plan(users, [ident(1, email="alice@example.com", duo_user_id="DU1")])
    assert p.links == {"DU1": 1}
    assert p.new_links == {}


def test_two_duo_users_with_one_email_link_nobody() -> None:
    users = [duo("DU1", "alice", "a@example.com"), duo("DU2", "alice2", "A@example.com")]
    p = plan(users, [ident(1, email="a@example.com")])
    assert p.links == {}
    assert p.ambiguous and "none is linked" in p.ambiguous[0]


def test_two_identities_with_one_email_link_nobody() -> None:
    p = plan([duo("DU1", "alice", "a@example.com")], [ident(1, email="a@example.com"), ident(2, email="a@example.com")])
    assert p.links == {}
    assert p.ambiguous


def test_one_duo_user_remembered_on_two_identities_links_neither() -> None:
    p = plan([duo("DU1", "alice", status="disabled")], [ident(1, duo_user_id="DU1"), ident(2, duo_user_id="DU1")])
    assert p.links == {}
    assert p.deactivate == []
    assert p.ambiguous


def test_an_empty_key_matches_nothing() -> None:
    p = plan([duo("DU1", "alice", "")], [ident(1, email="")])
    assert p.links == {}


# Deprovisioning ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["disabled", "locked out"])
def test_disabled_or_locked_out_deactivates(status: str) -> None:
    p = plan([duo("DU1", "alice", "a@example.com", status=status)], [ident(1, email="a@example.com")])
    assert [(d.user_pk, d.reason) for d in p.deactivate] == [(101, deprovision_reason(status))]
    assert not p.blocked


def test_deprovision_off_deactivates_nobody() -> None:
    users = [duo("DU1", "alice", "a@example.com", status="disabled")]
    assert plan(users, [ident(1, email="a@example.com")], deprovision=False).deactivate == []


def test_an_already_inactive_user_is_not_deactivated_again() -> None:
    users = [duo("DU1", "alice", "a@example.com", status="disabled")]
    assert plan(users, [ident(1, email="a@example.com", active=False)]).deactivate == []


def test_deleted_only_when_confirmed() -> None:
    identities = [ident(1, duo_user_id="DU1")]
    previous = {"DU1": PreviousUser("DU1", False, False)}
    assert unlisted_links({}, identities, previous) == ["DU1"]
    assert unlisted_links({}, identities, {}) == []  # never listed by this connection: another directory's
    unconfirmed = plan([], identities, previous=previous)
    assert unconfirmed.deactivate == []
    assert unconfirmed.deleted_ids == ["DU1"]
    confirmed = plan([], identities, previous=previous, confirmed_deleted=["DU1"])
    assert [(d.user_pk, d.reason) for d in confirmed.deactivate] == [(101, "duo-deleted")]


def test_reactivated_only_when_the_sync_deactivated() -> None:
    users = [duo("DU1", "alice", status="active"), duo("DU2", "bob", status="bypass")]
    identities = [ident(1, duo_user_id="DU1", active=False), ident(2, duo_user_id="DU2", active=False)]
    previous = {"DU1": PreviousUser("DU1", True, False), "DU2": PreviousUser("DU2", False, False)}
    p = plan(users, identities, previous=previous)
    assert [r.user_pk for r in p.reactivate] == [101]  # bob is inactive for another reason: stays so


def test_reactivation_of_a_still_disabled_user_never_happens() -> None:
    previous = {"DU1": PreviousUser("DU1", True, False)}
    p = plan([duo("DU1", "alice", status="disabled")], [ident(1, duo_user_id="DU1", active=False)], previous=previous)
    assert p.reactivate == []
    assert p.deactivate == []


def test_one_user_with_two_identities_counts_once_and_stays_inactive() -> None:
    users = [duo("DU1", "a", status="disabled"), duo("DU2", "b", status="active")]
    identities = [ident(1, duo_user_id="DU1", user_pk=7), ident(2, duo_user_id="DU2", user_pk=7)]
    p = plan(users, identities, previous={"DU2": PreviousUser("DU2", True, False)})
    assert [d.user_pk for d in p.deactivate] == [7]
    assert p.reactivate == []
    assert p.linked_users == 1


# The guard --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("linked", "percent", "allowed"),
    [
        (0, 10, 1),
        (1, 10, 1),
        (9, 10, 1),
        (10, 10, 1),
        (19, 10, 1),
        (20, 10, 2),
        (1000, 10, 100),
        (5, 0, 0),
        (5, 100, 5),
    ],
)
def test_allowed_deactivations_floor_and_at_least_one(linked: int, percent: int, allowed: int) -> None:
    assert allowed_deactivations(linked, percent) == allowed


def test_the_guard_blocks_a_mass_deactivation_unless_forced() -> None:
    users = [duo(f"DU{i}", f"u{i}", f"u{i}@example.com", status="disabled" if i < 3 else "active") for i in range(20)]
    identities = [ident(i, email=f"u{i}@example.com") for i in range(20)]
    p = plan(users, identities, max_percent=10)
    assert len(p.deactivate) == 3
    assert p.allowed == 2
    assert "would deactivate 3 of 20" in p.blocked
    assert not plan(users, identities, max_percent=10, force=True).blocked
    assert not plan(users, identities, max_percent=15).blocked


# Groups ------------------------------------------------------------------------------------------------


def test_memberships_follow_the_embedded_groups_of_mirrored_groups_only() -> None:
    users = [duo("DU1", "alice", "a@example.com", groups=["DG1", "DG2", "DG9"])]
    groups = {"DG1": DuoGroup("DG1", "one"), "DG2": DuoGroup("DG2", "two")}  # DG9 is not mirrored
    current = {101: frozenset({"DG2", "DG3"})}  # DG3: mirrored, no longer Alice's (or deleted in Duo)
    p = plan(users, [ident(1, email="a@example.com")], groups=groups, current_groups=current)
    assert p.memberships == {101: (frozenset({"DG1"}), frozenset({"DG3"}))}


def test_a_deleted_user_leaves_every_managed_group() -> None:
    current = {101: frozenset({"DG1"})}
    p = plan(
        [],
        [ident(1, duo_user_id="DU1")],
        groups={"DG1": DuoGroup("DG1", "one")},
        previous={"DU1": PreviousUser("DU1", False, False)},
        confirmed_deleted=["DU1"],
        current_groups=current,
    )
    assert p.memberships == {101: (frozenset(), frozenset({"DG1"}))}


def test_identities_remembered_by_another_directory_are_neither_counted_nor_judged() -> None:
    p = plan(
        [duo("DU2", "bob", "b@example.com", status="disabled")],
        [ident(1, duo_user_id="DU-OTHER"), ident(2, email="b@example.com")],
    )
    assert p.linked_users == 1  # bob only: the guard's base is not inflated by the other directory's users
    assert [d.user_pk for d in p.deactivate] == [102]
