"""Issue 14, interop defect 4: RP-initiated logout never sent ``id_token_hint``, which OIDC
RP-Initiated Logout 1.0 section 2 RECOMMENDS and Glewlwyd and Keycloak need (without it the provider's
session survives). It is now a per-provider choice (off by default: it puts the ID token in a URL),
and ``duo_oidc_provider`` can switch provider logout off again."""

from __future__ import annotations

import io
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from django_duo_oidc.log_filters import redact
from django_duo_oidc.login import session as stored
from django_duo_oidc.models import Provider
from tests.conftest import query
from tests.fakeop import FakeOP

from .test_login_views import login, me
from .test_policy import CRM, age_session

pytestmark = pytest.mark.django_db


def provider_logout(fake_op: FakeOP, provider: Provider, *, hint: bool) -> None:
    fake_op.discovery_overrides["end_session_endpoint"] = f"{fake_op.issuer}/logout"
    provider.end_session = True
    provider.logout_id_token_hint = hint
    provider.save()


def test_id_token_hint_is_sent_when_the_provider_asks_for_it(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    provider_logout(fake_op, provider, hint=True)
    login(client, fake_op)
    id_token = stored.id_token(client.session["duo_oidc"])
    assert id_token and id_token.count(".") == 2
    params = query(client.post("/oidc/logout/")["Location"])
    assert params["id_token_hint"] == id_token
    assert params["client_id"] == fake_op.client_id
    assert me(client) == {"authenticated": False}


def test_no_id_token_is_kept_or_sent_by_default(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider_logout(fake_op, provider, hint=False)
    login(client, fake_op)
    assert stored.id_token(client.session["duo_oidc"]) is None  # not kept when not needed
    assert "id_token_hint" not in query(client.post("/oidc/logout/")["Location"])


def test_the_id_token_is_sealed_in_the_session(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider_logout(fake_op, provider, hint=True)
    login(client, fake_op)
    id_token = stored.id_token(client.session["duo_oidc"])
    assert id_token is not None
    raw = str(dict(client.session.items()))
    assert id_token not in raw and id_token.split(".")[1] not in raw


def test_a_refresh_keeps_the_id_token_for_the_hint(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider_logout(fake_op, provider, hint=True)
    login(client, fake_op, scope=CRM)
    first = stored.id_token(client.session["duo_oidc"])
    age_session(client, expires_at=time.time() - 1)
    assert client.get("/contacts/").status_code == 200
    assert fake_op.count("token") == 2  # refreshed
    assert stored.id_token(client.session["duo_oidc"]) == first


def test_the_hint_is_redacted_from_logs() -> None:
    text = "GET https://op.example/logout?client_id=x&id_token_hint=eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl&state=1"
    assert "eyJ" not in redact(text)


def test_the_command_switches_provider_logout_off_again(provider: Provider) -> None:
    call_command("duo_oidc_provider", "duo", "--end-session", "--logout-id-token-hint", stdout=io.StringIO())
    provider.refresh_from_db()
    assert provider.end_session and provider.logout_id_token_hint
    call_command("duo_oidc_provider", "duo", "--no-end-session", "--no-logout-id-token-hint", stdout=io.StringIO())
    provider.refresh_from_db()
    assert not provider.end_session and not provider.logout_id_token_hint


def test_the_command_unsets_the_default(provider: Provider) -> None:
    assert provider.is_default
    call_command("duo_oidc_provider", "duo", "--no-default", stdout=io.StringIO())
    provider.refresh_from_db()
    assert not provider.is_default


def test_the_command_sets_and_unsets_an_endpoint(provider: Provider, fake_op: FakeOP) -> None:
    url = f"{fake_op.issuer}/introspect-by-hand"
    # The introspection endpoint receives the client secret: naming the variable again confirms it.
    with pytest.raises(CommandError, match="endpoint receiving the secret"):
        call_command("duo_oidc_provider", "duo", "--introspection-endpoint", url, stdout=io.StringIO())
    call_command(
        "duo_oidc_provider", "duo", "--introspection-endpoint", url, "--client-secret-env", "DUO_FAKE_OP_SECRET",
        stdout=io.StringIO(),
    )  # fmt: skip
    provider.refresh_from_db()
    assert provider.introspection_endpoint == url
    call_command(
        "duo_oidc_provider", "duo", "--introspection-endpoint", "", "--client-secret-env", "DUO_FAKE_OP_SECRET",
        stdout=io.StringIO(),
    )  # fmt: skip
    provider.refresh_from_db()
    assert provider.introspection_endpoint == ""
