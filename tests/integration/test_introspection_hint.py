"""RFC 7662 section 2.1: ``token_type_hint`` names the kind of token sent. The freshness check of a
provider with RFC 8707 resource indicators introspects the grant's refresh token, and said
``access_token`` (the issue-14 review): a wrong hint costs the server an extra lookup, and a server
that honours hints strictly would not find the token at all."""

from __future__ import annotations

import time
from typing import Any

from django.core.cache import cache
from django.test import Client

from django_duo_oidc.models import Provider
from tests.fakeop import FakeOP, _form

from .test_act_for_user import stored_tokens
from .test_login_views import login
from .test_policy import CRM


def due(client: Client) -> None:
    session = client.session
    data = dict(session["duo_oidc"])
    data["checked_at"] = time.time() - 3600
    session["duo_oidc"] = data
    session.save()
    cache.clear()


def hints_sent(fake_op: FakeOP, monkeypatch: Any) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    original = fake_op.introspection_endpoint

    def record(request: Any) -> Any:
        form = _form(request)
        seen.append((form.get("token", ""), form.get("token_type_hint", "")))
        return original(request)

    monkeypatch.setattr(fake_op, "introspection_endpoint", record)
    return seen


def test_the_refresh_token_is_introspected_with_its_own_hint(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: Any
) -> None:
    provider.resource_indicators = "urn:crm"
    provider.save()
    login(client, fake_op, scope=CRM)
    _access, refresh = stored_tokens(client)
    seen = hints_sent(fake_op, monkeypatch)
    due(client)
    assert client.get("/contacts/").status_code == 200
    assert seen == [(refresh, "refresh_token")]


def test_the_access_token_keeps_its_hint(client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: Any) -> None:
    login(client, fake_op, scope=CRM)
    access, _refresh = stored_tokens(client)
    seen = hints_sent(fake_op, monkeypatch)
    due(client)
    assert client.get("/contacts/").status_code == 200
    assert seen == [(access, "access_token")]
