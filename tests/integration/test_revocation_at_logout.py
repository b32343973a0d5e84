"""Issue 14, RFC 7009 at logout: the refresh token, then the access token, revoked at the provider's
revocation endpoint (advertised or set by hand) with client authentication, after the Django session
has ended; a revocation that fails never keeps anyone logged in."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client

from django_duo_oidc.login import revocation
from django_duo_oidc.login import session as stored
from django_duo_oidc.login.revocation import revoke_login_tokens
from django_duo_oidc.models import Provider
from tests.fakeop import FakeOP

from .test_login_views import login, me
from .test_policy import CRM

pytestmark = pytest.mark.django_db


def tokens_of(client: Client) -> tuple[str, str | None]:
    data = client.session["duo_oidc"]
    return stored.access_token(data), stored.refresh_token(data)


def logout(client: Client) -> Any:
    response = client.post("/oidc/logout/")
    assert response.status_code == 302
    assert me(client) == {"authenticated": False}
    return response


def test_logout_revokes_the_refresh_token_then_the_access_token(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_op.advertise_revocation = True
    fake_op.access_token_format = "opaque"
    login(client, fake_op, scope=CRM)
    access, refresh = tokens_of(client)
    logout(client)
    assert fake_op.revocations == [
        {"token": refresh, "token_type_hint": "refresh_token"},
        {"token": access, "token_type_hint": "access_token"},
    ]
    assert not fake_op.refresh_tokens[refresh]["active"] and not fake_op.tokens[access]["active"]
    assert access not in caplog.text and str(refresh) not in caplog.text
    assert "revoked the refresh_token and access_token at provider duo" in caplog.text


def test_client_authentication_is_required(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    """The fake answers 401 invalid_client to an unauthenticated request (RFC 7009 section 2.1): with
    the wrong secret nothing is revoked, and logout still completes."""
    fake_op.advertise_revocation = True
    login(client, fake_op, scope=CRM)
    fake_op.client_secret = "another"  # the provider no longer knows our secret
    logout(client)
    assert fake_op.revocations == []


def test_client_secret_post_is_honoured(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider.token_auth_method = Provider.AuthMethod.POST
    provider.save()
    fake_op.advertise_revocation = True
    login(client, fake_op, scope=CRM)
    logout(client)
    assert len(fake_op.revocations) == 2


def test_a_revocation_endpoint_set_by_hand(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider.revocation_endpoint = f"{fake_op.issuer}/revoke"
    provider.save()
    login(client, fake_op, scope=CRM)
    logout(client)
    assert [r["token_type_hint"] for r in fake_op.revocations] == ["refresh_token", "access_token"]


def test_nothing_is_sent_without_a_revocation_endpoint(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    logout(client)
    assert fake_op.count("revoke") == 0


def test_nothing_is_sent_when_the_provider_row_says_so(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider.revoke_at_logout = False
    provider.save()
    fake_op.advertise_revocation = True
    login(client, fake_op, scope=CRM)
    logout(client)
    assert fake_op.count("revoke") == 0


def test_without_a_refresh_token_only_the_access_token_is_revoked(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    fake_op.advertise_revocation = True
    fake_op.issue_refresh_tokens = False
    login(client, fake_op, scope=CRM)
    logout(client)
    assert [r["token_type_hint"] for r in fake_op.revocations] == ["access_token"]


def test_the_renewed_tokens_are_the_ones_revoked(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.advertise_revocation = True
    fake_op.access_token_format = "opaque"
    fake_op.rotate_refresh_tokens = True
    login(client, fake_op, scope=CRM)
    session = client.session
    data = dict(session["duo_oidc"])
    data.update({"expires_at": time.time() - 1, "checked_at": time.time() - 3600})
    session["duo_oidc"] = data
    session.save()
    assert client.get("/contacts/").status_code == 200  # renewed by the freshness check
    access, refresh = tokens_of(client)
    logout(client)
    assert [r["token"] for r in fake_op.revocations] == [refresh, access]


@pytest.mark.parametrize("fault", ["down", "timeout", 503, 500, 404])
def test_a_failing_revocation_never_keeps_anyone_logged_in(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: pytest.LogCaptureFixture, fault: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_op.advertise_revocation = True
    login(client, fake_op, scope=CRM)
    access, refresh = tokens_of(client)
    fake_op.faults["revoke"] = fault
    logout(client)
    assert fake_op.count("revoke") == 2  # both tried, each failure logged
    assert caplog.text.count("could not revoke the") == 2
    assert access not in caplog.text and str(refresh) not in caplog.text


def test_a_refusal_of_the_refresh_token_still_revokes_the_access_token(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    fake_op.advertise_revocation = True
    login(client, fake_op, scope=CRM)
    original = fake_op.revocation_endpoint

    def refuse_refresh_tokens(request: Any) -> Any:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        if "token_type_hint=refresh_token" in body:
            return 400, {"error": "unsupported_token_type"}, {}
        return original(request)

    fake_op.revocation_endpoint = refuse_refresh_tokens  # type: ignore[method-assign]
    logout(client)
    assert [r["token_type_hint"] for r in fake_op.revocations] == ["access_token"]


def test_a_200_whose_body_is_not_json_is_a_revocation(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 7009 section 2.2: the content of the response body is ignored by the client."""
    fake_op.advertise_revocation = True
    login(client, fake_op, scope=CRM)
    fake_op.faults["revoke"] = "garbage"  # 200 with an HTML body
    caplog.set_level(logging.INFO)
    logout(client)
    assert "revoked the refresh_token and access_token" in caplog.text


def test_discovery_down_at_logout(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.advertise_revocation = True
    login(client, fake_op, scope=CRM)
    from django.core.cache import cache

    cache.clear()  # discovery is no longer cached ...
    fake_op.faults[".well-known/openid-configuration"] = "down"  # ... and cannot be fetched
    logout(client)
    assert fake_op.count("revoke") == 0


def test_no_call_starts_once_the_time_is_up(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Logout is bounded: no revocation call starts once HTTP_TIMEOUT has passed since the first."""
    fake_op.advertise_revocation = True
    login(client, fake_op, scope=CRM)
    settings.DUO_OIDC = {**settings.DUO_OIDC, "HTTP_TIMEOUT": 1}
    clock = iter([0.0, 0.5, 5.0, 5.0, 5.0])
    monkeypatch.setattr(revocation, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    logout(client)
    assert [r["token_type_hint"] for r in fake_op.revocations] == ["refresh_token"]


def test_unreadable_tokens_are_not_sent(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.advertise_revocation = True
    login(client, fake_op, scope=CRM)
    session = client.session
    data = dict(session["duo_oidc"])
    data["tokens"] = "garbage"
    session["duo_oidc"] = data
    session.save()
    logout(client)
    assert fake_op.count("revoke") == 0


def test_revoke_login_tokens_never_raises(fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    assert revoke_login_tokens(None) == []
    assert revoke_login_tokens({"provider": "nope"}) == []

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(Provider.objects, "filter", broken)
    assert revoke_login_tokens({"provider": "duo"}) == []


def test_an_anonymous_logout_sends_nothing(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.advertise_revocation = True
    assert client.post("/oidc/logout/").status_code == 302
    assert fake_op.count("revoke") == 0
