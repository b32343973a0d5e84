"""Issue 14, interop defect 1: an introspection answer without ``sub`` made a user's token a client's.
RFC 7662 section 2.2 makes ``sub`` optional and defines ``username`` ("a human-readable identifier for
the resource owner who authorized this token"); django-oauth-toolkit sends ``username`` and
``client_id``, no ``sub``. alice's token came back as the client ``crm-app`` with an anonymous user.

Now a token that names a resource owner is never a client's. With ``LINK_TOKENS_BY_USERNAME`` (off by
default: a username is not a stable identifier, and django-oauth-toolkit's e2e tier showed a renamed and
reused username handing one account to another) its user is the one identity of this provider whose
login said that ``preferred_username``; never by the Django username."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from django_duo_oidc.core.bearer import is_client_token
from django_duo_oidc.models import Identity, Provider
from tests.fakeop import FakeOP

from .test_resource import get

pytestmark = pytest.mark.django_db


@pytest.fixture
def by_username(settings: Any) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "LINK_TOKENS_BY_USERNAME": True}


@pytest.fixture
def introspecting(provider: Provider, fake_op: FakeOP) -> Provider:
    provider.access_token_validation = Provider.AccessTokenValidation.INTROSPECTION
    provider.save()
    fake_op.access_token_format = "opaque"
    return provider


def dot_token(fake_op: FakeOP, username: str | None, scope: str = "crm.contacts.read") -> str:
    """An opaque token whose introspection answer is django-oauth-toolkit's: username and client_id, no sub."""
    token = f"dot-{username}-{len(fake_op.tokens)}"
    answer: dict[str, Any] = {"sub": None, "client_id": fake_op.client_id}
    if username is not None:
        answer["username"] = username
    fake_op.tokens[token] = {"sub": None, "scope": scope, "active": True, "introspection": answer}
    return token


def linked_user(provider: Provider, sub: str, username: str, **last_claims: str) -> Any:
    user = get_user_model().objects.create(username=username)
    Identity.objects.create(provider=provider, sub=sub, user=user, last_claims=last_claims)
    return user


def caller(client: Client, token: str) -> dict[str, Any]:
    response = get(client, "/t/bearer/any/", token)
    assert response.status_code == 200, response.content
    return response.json()


def test_a_token_naming_a_resource_owner_is_never_a_clients() -> None:
    assert is_client_token({"username": "alice", "client_id": "crm-app"}) is False
    assert is_client_token({"client_id": "crm-app"}) is True  # no sub, no username: nobody to log in
    assert is_client_token({"username": "svc", "client_id": "crm-app"}, machine_clients=frozenset({"svc"})) is True


def test_dot_token_is_the_linked_users_by_preferred_username(
    client: Client, fake_op: FakeOP, introspecting: Provider, by_username: None
) -> None:
    alice = linked_user(introspecting, "1", "alice@example.test", preferred_username="alice")
    seen = caller(client, dot_token(fake_op, "alice"))
    assert seen["user"] == alice.get_username()
    assert seen["is_client"] is False  # was True: alice's token was the client crm-app's


def test_the_link_by_username_is_off_by_default(client: Client, fake_op: FakeOP, introspecting: Provider) -> None:
    linked_user(introspecting, "1", "alice@example.test", preferred_username="alice")
    seen = caller(client, dot_token(fake_op, "alice"))
    assert seen["user"] is None
    assert seen["is_client"] is False


def test_the_django_username_never_links_a_token(
    client: Client, fake_op: FakeOP, introspecting: Provider, by_username: None
) -> None:
    # An administrator (or another provider) chose the Django username: the provider never vouched for it.
    linked_user(introspecting, "1", "alice")
    assert caller(client, dot_token(fake_op, "alice"))["user"] is None


def test_an_unlinked_username_is_a_user_without_an_account_here_not_a_client(
    client: Client, fake_op: FakeOP, introspecting: Provider, by_username: None
) -> None:
    seen = caller(client, dot_token(fake_op, "nobody"))
    assert seen["user"] is None
    assert seen["is_client"] is False


def test_an_ambiguous_username_links_nobody(
    client: Client, fake_op: FakeOP, introspecting: Provider, by_username: None
) -> None:
    linked_user(introspecting, "1", "alice", preferred_username="alice")
    linked_user(introspecting, "2", "alice2", preferred_username="alice")
    assert caller(client, dot_token(fake_op, "alice"))["user"] is None


def test_another_providers_identity_is_never_linked(
    client: Client, fake_op: FakeOP, introspecting: Provider, by_username: None
) -> None:
    other = Provider.objects.create(slug="other", name="Other", issuer="https://other.example", client_id="o")
    linked_user(other, "1", "alice", preferred_username="alice")
    assert caller(client, dot_token(fake_op, "alice"))["user"] is None


def test_an_inactive_linked_user_is_refused(
    client: Client, fake_op: FakeOP, introspecting: Provider, by_username: None
) -> None:
    alice = linked_user(introspecting, "1", "alice", preferred_username="alice")
    alice.is_active = False
    alice.save()
    assert get(client, "/t/bearer/any/", dot_token(fake_op, "alice")).status_code == 401
