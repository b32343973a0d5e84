"""Logout: POST only, CSRF-protected, ends the Django session; provider logout only when enabled."""

from __future__ import annotations

import pytest
from django.test import Client

from django_duo_oidc.models import Provider
from tests.conftest import query
from tests.fakeop import FakeOP

from .test_login_views import login, me

pytestmark = pytest.mark.django_db


def test_logout_needs_post(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op)
    assert client.get("/oidc/logout/").status_code == 405
    assert me(client)["authenticated"] is True


def test_logout_is_csrf_protected(fake_op: FakeOP, provider: Provider) -> None:
    client = Client(enforce_csrf_checks=True)
    login(client, fake_op)
    me(client)  # sets the CSRF cookie, as the contract says
    assert client.post("/oidc/logout/").status_code == 403
    assert me(client)["authenticated"] is True
    token = client.cookies["csrftoken"].value
    response = client.post("/oidc/logout/", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert me(client) == {"authenticated": False}
    assert "duo_oidc" not in client.session


def test_provider_logout_when_enabled_and_advertised(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.discovery_overrides["end_session_endpoint"] = f"{fake_op.issuer}/logout"
    provider.end_session = True
    provider.save()
    login(client, fake_op)
    location = client.post("/oidc/logout/")["Location"]
    assert location.startswith(f"{fake_op.issuer}/logout?")
    params = query(location)
    assert params == {"client_id": fake_op.client_id, "post_logout_redirect_uri": "http://testserver/"}
    assert me(client) == {"authenticated": False}


def test_no_provider_logout_when_not_advertised(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider.end_session = True
    provider.save()
    login(client, fake_op)
    assert client.post("/oidc/logout/")["Location"] == "/"


def test_logout_works_when_the_provider_is_down(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider.end_session = True
    provider.save()
    login(client, fake_op)
    from django.core.cache import cache

    cache.clear()
    fake_op.faults[".well-known/openid-configuration"] = "down"
    assert client.post("/oidc/logout/")["Location"] == "/"
    assert me(client) == {"authenticated": False}
