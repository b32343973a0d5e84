"""Issue 10, bearer tokens: the holes an adversarial review found, each shown closed on the wire."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

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


# 2. A bearer token whose linked user is inactive is refused, from the next request on ------------


def test_a_token_of_an_inactive_linked_user_is_refused_and_the_reason_logged(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="django_duo_oidc")
    link(provider, is_active=False)
    token = issue(fake_op)
    for path in ("/t/bearer/any/", "/api/contacts/", "/t/bearer/async/", "/t/bearer/drf/"):
        response = get(client, path, token)
        assert response.status_code == 401, (path, response.content)
        assert 'error="invalid_token"' in response["WWW-Authenticate"]
        assert response.json()["error"] == "invalid_token"
    assert any("inactive" in r.getMessage() and token not in r.getMessage() for r in caplog.records)


def test_deactivation_takes_effect_on_the_next_request_and_reactivation_too(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    user = link(provider)
    token = issue(fake_op)
    assert get(client, "/t/bearer/any/", token).json()["user"] == "alice"  # proven and remembered
    user.is_active = False
    user.save()
    assert get(client, "/t/bearer/any/", token).status_code == 401  # the grant is remembered, not the user
    user.is_active = True
    user.save()
    assert get(client, "/t/bearer/any/", token).json()["user"] == "alice"


def test_the_user_is_read_once_per_request_with_its_identity(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    link(provider)
    token = issue(fake_op)
    assert get(client, "/t/bearer/any/", token).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        # The view reads request.user several times (is_authenticated, get_username).
        assert get(client, "/t/bearer/any/", token).json()["user"] == "alice"
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert "duo_oidc_identity" in queries[0]["sql"] and "auth_user" in queries[0]["sql"]


def test_an_async_view_gets_the_user_with_auser(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    link(provider)
    response = get(client, "/t/bearer/async/", issue(fake_op))
    assert response.json() == {"user": "alice", "scopes": ["crm.contacts.read"]}


def test_a_token_whose_sub_has_no_identity_stays_valid_and_anonymous(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    link(provider, sub="someone-else", is_active=False)
    response = get(client, "/t/bearer/any/", issue(fake_op, sub="stranger"))
    assert response.status_code == 200
    assert response.json()["user"] is None
