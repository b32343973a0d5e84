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

from django_duo_oidc.core.discovery import discovery_url
from django_duo_oidc.core.errors import ConfigurationError
from django_duo_oidc.models import Provider
from django_duo_oidc.providers.connection import check_connection
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
    from tests.integration.test_login_views import start

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
    from tests.integration.test_login_views import start

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


# Item 16: changing where the secret goes is a deliberate, logged permission ------------------------------

CONNECTION = "change_provider_connection"


def staff_client(*perms: str) -> Client:
    from django.contrib.auth.models import Permission

    user = User.objects.create_user(f"staff-{len(perms)}", "staff@example.test", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="duo_oidc", codename__in=perms))
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    client.user = user  # type: ignore[attr-defined]
    return client


def change_url(provider: Provider) -> str:
    return f"/admin/duo_oidc/provider/{provider.pk}/change/"


def test_without_the_connection_permission_the_connection_fields_are_read_only(provider: Provider) -> None:
    from tests.integration.test_admin_checks_command import provider_form

    client = staff_client("change_provider", "view_provider")
    page = client.get(change_url(provider)).content.decode()
    assert 'name="issuer"' not in page and 'name="link_existing_by_email"' not in page
    assert 'name="client_secret"' not in page and 'name="client_secret_env"' not in page
    data = provider_form(
        provider,
        name="Renamed",
        issuer="https://attacker.example.test/oidc/x",
        client_id="attacker",
        client_secret_env="DUO_OTHER",
        link_existing_by_email=True,
        machine_clients="attacker",
        access_token_validation="off",
        client_secret="typed",
    )
    response = client.post(change_url(provider), data)
    assert response.status_code == 302, response.content
    provider.refresh_from_db()
    assert provider.name == "Renamed"  # the other fields still work
    assert provider.issuer == FakeOP().issuer
    assert provider.client_id == FakeOP().client_id
    assert provider.client_secret_env == "DUO_FAKE_OP_SECRET"
    assert not provider.link_existing_by_email
    assert provider.machine_clients == ""
    assert provider.access_token_validation == "auto"
    assert provider.client_secret_encrypted == ""


def test_without_the_connection_permission_no_provider_can_be_added(db: Any) -> None:
    client = staff_client("add_provider", "change_provider", "view_provider")
    assert client.get("/admin/duo_oidc/provider/add/").status_code == 403


@pytest.fixture
def stored_secret(provider: Provider) -> Provider:
    provider.client_secret_env = ""
    provider.set_client_secret(FakeOP().client_secret)
    provider.save()
    return provider


def test_a_new_issuer_needs_the_secret_typed_again(stored_secret: Provider) -> None:
    from tests.integration.test_admin_checks_command import provider_form

    client = staff_client("change_provider", "view_provider", CONNECTION)
    data = provider_form(stored_secret, issuer="https://attacker.example.test/oidc/x")
    response = client.post(change_url(stored_secret), data)
    assert response.status_code == 200
    assert "type the client secret again" in response.content.decode()
    stored_secret.refresh_from_db()
    assert stored_secret.issuer == FakeOP().issuer
    # The same for a new client id.
    response = client.post(change_url(stored_secret), provider_form(stored_secret, client_id="other"))
    assert "type the client secret again" in response.content.decode()


def test_a_new_issuer_with_a_new_secret_is_saved_logged_and_recorded(
    stored_secret: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    from django.contrib.admin.models import LogEntry

    from tests.integration.test_admin_checks_command import provider_form

    client = staff_client("change_provider", "view_provider", CONNECTION)
    caplog.set_level(logging.INFO, logger="django_duo_oidc")
    data = provider_form(stored_secret, issuer="https://sso-new.example.test/oidc/x", client_secret="n3w-s3cret")
    response = client.post(change_url(stored_secret), data)
    assert response.status_code == 302, response.content
    stored_secret.refresh_from_db()
    assert stored_secret.issuer == "https://sso-new.example.test/oidc/x"
    assert stored_secret.get_client_secret() == "n3w-s3cret"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    user_pk = client.user.pk  # type: ignore[attr-defined]
    assert any(f"admin user {user_pk}" in m and "issuer" in m and "client_secret" in m for m in warnings)
    assert all("n3w-s3cret" not in r.getMessage() for r in caplog.records)
    entry = LogEntry.objects.get(object_id=str(stored_secret.pk))
    message = entry.get_change_message()
    assert "connection" in message and "Issuer" in message
    assert "n3w-s3cret" not in entry.change_message


@pytest.mark.parametrize("name", ["HOME", "DATABASE_PASSWORD", "AWS_SECRET_ACCESS_KEY", "duo_lower", "DUO_"])
def test_a_variable_outside_the_allowed_prefixes_is_refused_everywhere(
    name: str, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_admin_checks_command import provider_form

    monkeypatch.setenv(name, "leak-me")
    provider.client_secret_env = name
    with pytest.raises(ValidationError) as info:
        provider.full_clean()
    assert "client_secret_env" in info.value.message_dict
    # The admin form.
    client = staff_client("change_provider", "view_provider", CONNECTION)
    response = client.post(
        change_url(provider), provider_form(Provider.objects.get(pk=provider.pk), client_secret_env=name)
    )
    assert response.status_code == 200 and "DUO_" in response.content.decode()
    # The command.
    with pytest.raises(CommandError, match="client_secret_env"):
        call_command("duo_oidc_provider", "duo", "--client-secret-env", name, stdout=io.StringIO())
    # At use time, for a row written around validation: fail closed, and say nothing about the variable.
    Provider.objects.filter(pk=provider.pk).update(client_secret_env=name)
    provider.refresh_from_db()
    with pytest.raises(ConfigurationError):
        provider.get_client_secret()
    assert "set" not in provider.secret_status.replace("not allowed", "")
    listing = client.get("/admin/duo_oidc/provider/").content.decode()
    assert "(set)" not in listing and "NOT SET" not in listing


def test_the_allowed_prefixes_are_a_setting(provider: Provider, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAPP_OIDC_SECRET", FakeOP().client_secret)
    provider.client_secret_env = "MYAPP_OIDC_SECRET"
    with pytest.raises(ValidationError):
        provider.full_clean()
    settings.DUO_OIDC = {**settings.DUO_OIDC, "SECRET_ENV_PREFIXES": ["MYAPP_"]}
    provider.full_clean()
    assert provider.get_client_secret() == FakeOP().client_secret


def test_a_disallowed_variable_is_a_check_error_that_does_not_say_whether_it_is_set(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_duo_oidc import checks

    Provider.objects.filter(pk=provider.pk).update(client_secret_env="HOME")

    def said() -> list[str]:  # a deploy check since ab13f16 (check --deploy, with or without --database)
        return [m.id for m in checks.check_deploy(databases=None) if m.id in ("duo_oidc.E008", "duo_oidc.W003")]

    assert said() == ["duo_oidc.E008"]
    monkeypatch.delenv("HOME", raising=False)
    assert said() == ["duo_oidc.E008"]
    assert checks.check_providers(databases=["default"]) == []  # said once: not by the database checks too


# Item 17: email linking never hands an account made through a less trusted provider to someone else -----


@pytest.fixture
def two_providers(provider: Provider, fake_op: FakeOP) -> tuple[Provider, Provider]:
    """``duo`` links by email (trusted for it); ``partner`` does not (anyone may register there)."""
    provider.link_existing_by_email = True
    provider.save()
    partner = Provider.objects.create(
        slug="partner",
        name="Partner",
        issuer=fake_op.issuer,
        client_id=fake_op.client_id,
        client_secret_env="DUO_FAKE_OP_SECRET",
        link_existing_by_email=False,
    )
    return provider, partner


def _login(client: Client, op: FakeOP, slug: str, **kwargs: Any) -> Any:
    from tests.integration.test_login_views import login

    client.post("/oidc/logout/")
    return login(client, op, url=f"/oidc/login/?provider={slug}&next=/me/", **kwargs)


def test_an_account_pre_registered_through_a_less_trusted_provider_is_not_linked(
    client: Client, fake_op: FakeOP, two_providers: tuple[Provider, Provider]
) -> None:
    from django_duo_oidc.models import Identity

    trusted, partner = two_providers
    # The attacker registers at the partner provider with the victim's (unverified) address.
    _login(client, fake_op, "partner", sub="mallory", claims={"email": "victim@example.test"})
    attacker_user = Identity.objects.get(provider=partner, sub="mallory").user
    assert attacker_user.email == "victim@example.test"
    # The victim's first login through the provider trusted for linking.
    assert _login(Client(), fake_op, "duo", sub="victim", claims={"email": "victim@example.test"}).status_code == 302
    victim_user = Identity.objects.get(provider=trusted, sub="victim").user
    assert victim_user != attacker_user
    # And the attacker's next login does not open the victim's account.
    _login(client, fake_op, "partner", sub="mallory", claims={"email": "victim@example.test"})
    assert client.get("/me/").json()["username"] == attacker_user.get_username()
    assert not Identity.objects.filter(user=attacker_user, provider=trusted).exists()


def test_an_account_made_by_an_administrator_is_still_linked(
    client: Client, fake_op: FakeOP, two_providers: tuple[Provider, Provider]
) -> None:
    from django_duo_oidc.models import Identity

    trusted, _partner = two_providers
    made = User.objects.create_user("ann", email="ann@example.test")
    _login(client, fake_op, "duo", sub="ann-sub", claims={"email": "ann@example.test"})
    assert Identity.objects.get(provider=trusted, sub="ann-sub").user == made


def test_a_pre_registered_account_does_not_block_linking_of_the_real_one(
    client: Client, fake_op: FakeOP, two_providers: tuple[Provider, Provider]
) -> None:
    from django_duo_oidc.models import Identity

    trusted, _partner = two_providers
    made = User.objects.create_user("ann", email="ann@example.test")
    _login(client, fake_op, "partner", sub="mallory", claims={"email": "ann@example.test"})
    # Two users have the address, but only one may be linked: no 'several accounts' refusal.
    assert _login(client, fake_op, "duo", sub="ann-sub", claims={"email": "ann@example.test"}).status_code == 302
    assert Identity.objects.get(provider=trusted, sub="ann-sub").user == made


def test_an_unverified_email_is_never_linked(
    client: Client, fake_op: FakeOP, two_providers: tuple[Provider, Provider]
) -> None:
    from django_duo_oidc.models import Identity

    trusted, _partner = two_providers
    made = User.objects.create_user("ann", email="ann@example.test")
    _login(client, fake_op, "duo", sub="ann-sub", claims={"email": "ann@example.test", "email_verified": False})
    assert Identity.objects.get(provider=trusted, sub="ann-sub").user != made


@pytest.mark.parametrize("flag", ["is_staff", "is_superuser"])
def test_a_staff_or_superuser_account_is_never_linked_by_email(
    client: Client, fake_op: FakeOP, two_providers: tuple[Provider, Provider], flag: str
) -> None:
    # One wrong address in a trusted provider's directory must not hand over the admin: an administrator
    # links privileged accounts by hand. The login is refused with a page saying so; no account is made.
    from django_duo_oidc.models import Identity

    User.objects.create_user("root", email="root@example.test", **{flag: True})
    response = _login(client, fake_op, "duo", sub="root-sub", claims={"email": "root@example.test"})
    assert response.status_code == 403
    assert "linked by an administrator" in response.content.decode()
    assert not Identity.objects.filter(sub="root-sub").exists()
    assert User.objects.filter(email__iexact="root@example.test").count() == 1


def test_a_database_error_while_reading_a_tokens_user_is_a_503_not_a_500(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    from django_duo_oidc.resource import identities as resource_identities
    from tests.integration.test_resource import issue

    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(resource_identities, "identity_link", down)
    response = client.get("/t/bearer/any/", HTTP_AUTHORIZATION=f"Bearer {issue(fake_op)}")
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
