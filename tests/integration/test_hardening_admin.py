"""Provider configuration under attack (issue 10): issuers that turn discovery into any URL, a
connection check that echoes what it fetched (item 18)."""

from __future__ import annotations

import io
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
