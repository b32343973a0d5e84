"""Claims onto users: linking by (provider, sub), email linking only when enabled, attributes, groups, staff."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from django_duo_oidc.models import GroupRule, Identity, Provider
from tests.fakeop import FakeOP

from .test_login_views import login, me

pytestmark = pytest.mark.django_db
User = get_user_model()


def relogin(client: Client, op: FakeOP, **kwargs: Any) -> Any:
    client.post("/oidc/logout/")
    return login(client, op, **kwargs)


def test_existing_user_with_same_email_is_not_taken_over(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    victim = User.objects.create_user("victim", email="alice@example.test", password="pw")
    login(client, fake_op)
    identity = Identity.objects.get(sub="alice")
    assert identity.user != victim
    assert me(client)["username"] != "victim"
    victim.refresh_from_db()
    assert victim.check_password("pw") and not victim.duo_identities.exists()
    assert User.objects.count() == 2


def test_email_linking_when_the_provider_allows_it(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider.link_existing_by_email = True
    provider.save()
    existing = User.objects.create_user("ann", email="ALICE@example.test")
    login(client, fake_op)
    assert Identity.objects.get(sub="alice").user == existing
    assert me(client)["username"] == "alice@example.test"  # kept current from the claims


def test_email_linking_refuses_an_ambiguous_email(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider.link_existing_by_email = True
    provider.save()
    User.objects.create_user("one", email="alice@example.test")
    User.objects.create_user("two", email="alice@example.test")
    assert login(client, fake_op).status_code == 403
    assert not Identity.objects.exists()


def test_reused_email_of_another_identity_gets_its_own_user(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op)
    first = Identity.objects.get(sub="alice").user
    relogin(client, fake_op, sub="newcomer", claims={"email": "alice@example.test"})
    second = Identity.objects.get(sub="newcomer").user
    assert first != second
    assert second.username != first.username


def test_no_user_creation_gives_a_refusal_page(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider.create_users = False
    provider.save()
    response = login(client, fake_op)
    assert response.status_code == 403
    assert b"does not create accounts" in response.content
    assert not User.objects.exists()
    assert me(client) == {"authenticated": False}


def test_inactive_user_is_refused(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op)
    User.objects.update(is_active=False)
    assert relogin(client, fake_op).status_code == 403
    assert me(client) == {"authenticated": False}


def test_attributes_kept_current(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op)
    relogin(client, fake_op, claims={"given_name": "Alicia", "email": "alicia@example.test"})
    user = Identity.objects.get(sub="alice").user
    assert (user.first_name, user.email, user.username) == ("Alicia", "alicia@example.test", "alicia@example.test")


def test_username_falls_back_when_no_claim(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.userinfo_overrides = {"email": None}
    provider.use_userinfo = False
    provider.save()
    login(client, fake_op, claims={"email": None})
    assert me(client)["username"].startswith("duo-")


def test_group_rules_add_and_remove_only_their_groups(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    crm = Group.objects.create(name="CRM")
    handmade = Group.objects.create(name="Hand-made")
    GroupRule.objects.create(provider=provider, claim="groups", value="crm-users", group=crm)
    GroupRule.objects.create(provider=provider, claim="groups", value="admins", staff=True)
    login(client, fake_op)
    user = Identity.objects.get(sub="alice").user
    user.groups.add(handmade)
    assert me(client)["groups"] == ["CRM", "Hand-made"]
    assert not user.is_staff

    relogin(client, fake_op, claims={"groups": ["crm-users", "admins"]})
    user.refresh_from_db()
    assert user.is_staff

    relogin(client, fake_op, claims={"groups": ["sales"]})
    user.refresh_from_db()
    assert me(client)["groups"] == ["Hand-made"]
    assert not user.is_staff


def test_rules_do_not_remove_groups_or_staff_granted_by_hand(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    crm = Group.objects.create(name="CRM")
    GroupRule.objects.create(provider=provider, claim="groups", value="crm-users", group=crm, staff=True)
    login(client, fake_op, claims={"groups": []})
    user = Identity.objects.get(sub="alice").user
    user.groups.add(crm)
    user.is_staff = True
    user.save()
    relogin(client, fake_op, claims={"groups": []})
    user.refresh_from_db()
    assert user.is_staff and list(user.groups.all()) == [crm]


def test_group_claim_as_a_string(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    crm = Group.objects.create(name="CRM")
    GroupRule.objects.create(provider=provider, claim="department", value="Sales", group=crm)
    login(client, fake_op, claims={"department": "Sales"})
    assert me(client)["groups"] == ["CRM"]
