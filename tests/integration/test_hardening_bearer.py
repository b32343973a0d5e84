"""Issue 10, bearer tokens: the holes an adversarial review found, each shown closed on the wire."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from django_duo_oidc.models import Identity, Provider
from tests.fakeop import FakeOP

from .test_login_flow import login

pytestmark = pytest.mark.django_db

CRM = "openid profile email crm.contacts.read"


def issue(op: FakeOP, sub: str = "alice-sub", scope: str = "crm.contacts.read", **kw: Any) -> str:
    """A Duo-shaped access token, registered at the provider for introspection."""
    kw.setdefault("jti", secrets.token_hex(8))
    token = op.access_token(sub, scope, **kw)
    op.tokens[token] = {"sub": sub, "scope": scope, "active": True}
    return token


def get(client: Client, path: str, token: str | None = None, **extra: Any) -> Any:
    if token is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.get(path, **extra)


def link(provider: Provider, sub: str = "alice-sub", username: str = "alice", **fields: Any) -> Any:
    user = get_user_model().objects.create_user(username=username, **fields)
    Identity.objects.create(provider=provider, sub=sub, user=user)
    return user


# 13. DRF: no bearer header leaves the request to the next authentication class -------------------


def test_drf_without_a_bearer_header_falls_through_to_the_session_user(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    # [DuoBearerAuthentication, SessionAuthentication] + HasScopes, as the README shows.
    login(client, fake_op, scope=CRM)
    response = client.get("/t/bearer/drf/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["user"] is not None  # the session user, not an anonymous one
    assert body["auth"] == "NoneType"  # SessionAuthentication's request.auth
    assert body["scopes"] == ["crm.contacts.read", "email", "openid", "profile"]


def test_drf_with_a_bearer_header_is_judged_on_the_token_even_with_a_session(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=CRM)
    response = get(client, "/t/bearer/drf/", issue(fake_op, sub="bob-sub", scope="crm.contacts.read"))
    assert response.status_code == 200
    body = response.json()
    assert body["auth"] == "BearerContext"
    assert body["sub"] == "bob-sub"
    assert body["scopes"] == ["crm.contacts.read"]
    narrow = get(client, "/t/bearer/drf/", issue(fake_op, sub="bob-sub", scope="email"))
    assert narrow.status_code == 403  # the token's grant, not the session's wider one


def test_token_only_views_still_ignore_the_session(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    assert client.get("/t/bearer/any/").status_code == 401
    assert client.get("/api/contacts/").status_code == 401
