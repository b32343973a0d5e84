"""Provider configuration under attack (issue 10): issuers that turn discovery into any URL, a
connection check that echoes what it fetched (item 18)."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from django_duo_oidc.connection import check_connection
from django_duo_oidc.core.discovery import discovery_url
from django_duo_oidc.core.errors import ConfigurationError
from django_duo_oidc.models import Provider
from tests.fakeop import FakeOP

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def superuser_client(db: Any) -> Client:
    user = User.objects.create_superuser("root", "root@example.test", "pw")
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


# Item 18: issuers are URLs with scheme, host, port and path only -------------------------------------

HOSTILE_ISSUERS = [
    "https://internal.test/admin?x=",  # the discovery path lands in a query string
    "https://internal.test/secret#",  # ... or in a fragment: the request goes to /secret
    "https://internal.test/a?",
    "https://user:pass@internal.test/oidc/x",  # userinfo
    "https://sso.example.test@internal.test/oidc/x",
]


@pytest.mark.parametrize("issuer", HOSTILE_ISSUERS)
def test_an_issuer_with_query_fragment_or_userinfo_is_refused_by_the_model(issuer: str, provider: Provider) -> None:
    provider.issuer = issuer
    with pytest.raises(ValidationError) as info:
        provider.full_clean()
    assert "issuer" in info.value.message_dict


@pytest.mark.parametrize("issuer", HOSTILE_ISSUERS)
def test_an_issuer_with_query_fragment_or_userinfo_is_refused_by_discovery(issuer: str) -> None:
    with pytest.raises(ConfigurationError):
        discovery_url(issuer)


def test_a_plain_issuer_still_works() -> None:
    assert discovery_url("https://sso-x.sso.duosecurity.com:8443/oidc/DI1") == (
        "https://sso-x.sso.duosecurity.com:8443/oidc/DI1/.well-known/openid-configuration"
    )


def test_the_command_refuses_a_hostile_issuer(fake_op: FakeOP) -> None:
    with pytest.raises(CommandError, match="issuer"):
        call_command(
            "duo_oidc_provider",
            "evil",
            "--issuer",
            "https://internal.test/x?",
            "--client-id",
            "x",
            stdout=io.StringIO(),
        )
    assert not Provider.objects.exists()


def test_a_stored_hostile_issuer_is_not_fetched(provider: Provider, fake_op: FakeOP) -> None:
    # A row written before this rule (or by a raw update) is refused at use time: nothing is fetched.
    Provider.objects.filter(pk=provider.pk).update(issuer=fake_op.issuer + "/jwks?")
    provider.refresh_from_db()
    report = check_connection(provider)
    assert not report.ok
    assert fake_op.calls == []


def test_the_connection_check_does_not_echo_the_documents_issuer(provider: Provider, fake_op: FakeOP) -> None:
    fake_op.discovery_overrides["issuer"] = "INTERNAL-SECRET-1234"
    report = check_connection(provider)
    assert not report.ok
    text = " ".join(report.lines)
    assert "must be identical" in text
    assert "INTERNAL-SECRET-1234" not in text


def test_the_connection_check_does_not_echo_unknown_algorithm_values(provider: Provider, fake_op: FakeOP) -> None:
    fake_op.discovery_overrides["id_token_signing_alg_values_supported"] = ["INTERNAL-SECRET-5678", "HS256"]
    report = check_connection(provider)
    assert not report.ok
    text = " ".join(report.lines)
    assert "INTERNAL-SECRET-5678" not in text
    assert "HS256" in text  # a value from the known vocabulary may be named


def test_the_admin_action_does_not_echo_provider_content(
    superuser_client: Client, provider: Provider, fake_op: FakeOP
) -> None:
    fake_op.discovery_overrides["issuer"] = "INTERNAL-SECRET-1234"
    data = {"action": "check_connection_action", "_selected_action": [provider.pk]}
    text = superuser_client.post("/admin/duo_oidc/provider/", data, follow=True).content.decode()
    assert "Duo has problems" in text
    assert "INTERNAL-SECRET-1234" not in text


# Item 20: values from a request or a provider cannot forge log lines ---------------------------------


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "django_duo_oidc"]


def test_a_callback_error_with_a_newline_forges_no_log_line(
    client: Client, provider: Provider, fake_op: FakeOP, caplog: pytest.LogCaptureFixture
) -> None:
    from django_duo_oidc import signals
    from tests.conftest import captured
    from tests.integration.test_login_flow import start

    caplog.set_level(logging.INFO, logger="django_duo_oidc")
    with captured(signals.login_failed) as failures:
        response = client.get("/oidc/callback/?" + fake_op.authorize(start(client), error="x\nWARNING forged"))
    assert response.status_code == 400
    messages = _messages(caplog)
    assert any("Login failed" in m for m in messages)
    assert all("\n" not in m and "\r" not in m for m in messages)
    # RFC 6749 section 4.1.2.1: error is %x20-21 / %x23-5B / %x5D-7E; anything else is not used as sent.
    assert failures[0]["reason"] == "invalid_error"
    assert "WARNING forged" not in response.content.decode()


def test_a_well_formed_callback_error_is_kept(client: Client, provider: Provider, fake_op: FakeOP) -> None:
    from django_duo_oidc import signals
    from tests.conftest import captured
    from tests.integration.test_login_flow import start

    with captured(signals.login_failed) as failures:
        response = client.get("/oidc/callback/?" + fake_op.authorize(start(client), error="access_denied"))
    assert response.status_code == 403
    assert failures[0]["reason"] == "access_denied"


def test_a_bearer_refusal_for_a_path_with_a_newline_forges_no_log_line(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    from django.test import RequestFactory

    from tests.urls import bearer_only_view

    caplog.set_level(logging.INFO, logger="django_duo_oidc")
    request = RequestFactory().get("/t/bearer/any/%0AWARNING%20forged%E2%80%A8x", HTTP_AUTHORIZATION="Bearer junk")
    assert "\n" in request.path  # the test sends what it means to
    response = bearer_only_view(request)
    assert response.status_code == 401
    messages = _messages(caplog)
    assert any("refused" in m and "WARNING forged" in m for m in messages)
    assert all("\n" not in m and "\u2028" not in m for m in messages)
