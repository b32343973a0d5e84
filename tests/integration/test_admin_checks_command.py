"""The admin (secrets never shown, Check connection), system checks by id, the management command."""

from __future__ import annotations

import io
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings

from django_duo_oidc import checks
from django_duo_oidc.models import Provider
from django_duo_oidc.state import encryption
from tests.fakeop import FakeOP

pytestmark = pytest.mark.django_db

KEY1 = Fernet.generate_key().decode()
KEY2 = Fernet.generate_key().decode()


@pytest.fixture
def admin_client(db: Any) -> Client:
    user = get_user_model().objects.create_superuser("admin", "admin@example.test", "pw")
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def provider_form(provider: Provider, **changes: Any) -> dict[str, Any]:
    data = {
        f.name: getattr(provider, f.attname)
        for f in Provider._meta.fields
        if f.editable and f.name not in ("id", "created_at", "updated_at")
    }
    data = {k: "" if v is None else v for k, v in data.items()}  # a blank number or foreign key
    data.update({f"group_rules-{k}": v for k, v in {"TOTAL_FORMS": 0, "INITIAL_FORMS": 0}.items()})
    data.update(changes)
    return {k: v for k, v in data.items() if v is not False}


def test_admin_stores_secret_encrypted_and_never_shows_it(admin_client: Client, provider: Provider) -> None:
    url = f"/admin/duo_oidc/provider/{provider.pk}/change/"
    response = admin_client.post(url, provider_form(provider, client_secret_env="", client_secret="t0p-s3cret!"))
    assert response.status_code == 302, response.content
    provider.refresh_from_db()
    assert "t0p-s3cret!" not in provider.client_secret_encrypted
    assert provider.get_client_secret() == "t0p-s3cret!"
    page = admin_client.get(url).content.decode()
    assert "t0p-s3cret!" not in page
    assert "stored encrypted" in page
    listing = admin_client.get("/admin/duo_oidc/provider/").content.decode()
    assert "t0p-s3cret!" not in listing


def test_admin_blank_secret_keeps_the_stored_one(admin_client: Client, provider: Provider) -> None:
    provider.client_secret_env = ""
    provider.set_client_secret("kept")
    provider.save()
    url = f"/admin/duo_oidc/provider/{provider.pk}/change/"
    assert admin_client.post(url, provider_form(provider, client_secret="")).status_code == 302
    provider.refresh_from_db()
    assert provider.get_client_secret() == "kept"


def test_admin_check_connection_reports_in_words(admin_client: Client, provider: Provider, fake_op: FakeOP) -> None:
    data = {"action": "check_connection_action", "_selected_action": [provider.pk]}
    response = admin_client.post("/admin/duo_oidc/provider/", data, follow=True)
    text = response.content.decode()
    assert "Duo works" in text
    assert "Signing keys OK: 1 key(s) published." in text
    fake_op.discovery_overrides["issuer"] = "https://other.example"
    response = admin_client.post("/admin/duo_oidc/provider/", data, follow=True)
    assert "Duo has problems" in response.content.decode()
    assert "must be identical" in response.content.decode()


def test_admin_check_connection_when_provider_is_down(
    admin_client: Client, provider: Provider, fake_op: FakeOP
) -> None:
    fake_op.faults[".well-known/openid-configuration"] = "down"
    data = {"action": "check_connection_action", "_selected_action": [provider.pk]}
    text = admin_client.post("/admin/duo_oidc/provider/", data, follow=True).content.decode()
    assert "could not be reached" in text


def test_secret_keys_rotate() -> None:
    with override_settings(DUO_OIDC={"ENCRYPTION_KEYS": [KEY1]}):
        token = encryption.encrypt("s3cret")
    with override_settings(DUO_OIDC={"ENCRYPTION_KEYS": [KEY2, KEY1]}):
        assert encryption.decrypt(token) == "s3cret"
        rotated = encryption.rotate(token)
    with override_settings(DUO_OIDC={"ENCRYPTION_KEYS": [KEY2]}):
        assert encryption.decrypt(rotated) == "s3cret"
        with pytest.raises(encryption.SecretDecryptionError):
            encryption.decrypt(token)


def ids(messages: list[Any]) -> list[str]:
    return sorted(m.id for m in messages)


def test_checks_clean_on_the_test_settings(provider: Provider) -> None:
    assert ids(checks.check_settings()) == []
    assert ids(checks.check_providers(databases=["default"])) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"AUTHENTICATION_BACKENDS": ["django.contrib.auth.backends.ModelBackend"]}, ["duo_oidc.E001"]),
        (
            {"MIDDLEWARE": ["django.contrib.sessions.middleware.SessionMiddleware"]},
            ["duo_oidc.E002", "duo_oidc.E003"],
        ),
        (
            {
                "MIDDLEWARE": [
                    "django.contrib.sessions.middleware.SessionMiddleware",
                    "django_duo_oidc.middleware.DuoOIDCMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware",
                ]
            },
            ["duo_oidc.E003"],
        ),
        ({"DUO_OIDC": {"LEEWAY_SECONDS": 5}}, ["duo_oidc.E004"]),
        ({"DUO_OIDC": {"ENCRYPTION_KEYS": ["not-a-key"]}}, ["duo_oidc.E006"]),
        ({"SESSION_ENGINE": "django.contrib.sessions.backends.signed_cookies"}, ["duo_oidc.E007", "duo_oidc.W005"]),
    ],
)
def test_setting_checks(overrides: dict[str, Any], expected: list[str]) -> None:
    with override_settings(**overrides):
        assert ids(checks.check_settings()) == expected


def test_encrypted_secret_without_keys_is_an_error(provider: Provider) -> None:
    provider.client_secret_env = ""
    provider.set_client_secret("x")
    provider.save()
    with override_settings(DUO_OIDC={}):
        assert ids(checks.check_providers(databases=["default"])) == ["duo_oidc.E005"]


def test_unset_secret_variable_is_a_warning(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUO_FAKE_OP_SECRET")
    # A deploy check (Django 6 tells no check whether --database was given): said once, with or without it.
    assert ids(checks.check_deploy(databases=["default"])).count("duo_oidc.W003") == 1
    assert ids(checks.check_deploy(databases=None)).count("duo_oidc.W003") == 1
    assert "duo_oidc.W003" not in ids(checks.check_providers(databases=["default"]))


SHARED_CACHE = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x:1/0"}}


def test_deploy_checks(provider: Provider) -> None:
    with override_settings(DEBUG=False, SESSION_COOKIE_SECURE=True, CACHES=SHARED_CACHE):
        assert ids(checks.check_deploy()) == []
    Provider.objects.update(issuer="http://127.0.0.1:9000")
    with override_settings(DEBUG=False, SESSION_COOKIE_SECURE=False, CACHES=SHARED_CACHE):
        assert ids(checks.check_deploy()) == ["duo_oidc.W001", "duo_oidc.W002"]
    with override_settings(DEBUG=True, SESSION_COOKIE_SECURE=True):
        assert ids(checks.check_deploy()) == []


@pytest.mark.parametrize("backend", ["locmem.LocMemCache", "dummy.DummyCache"])
def test_a_per_process_cache_is_a_deploy_warning(backend: str) -> None:
    per_process = {"default": {"BACKEND": f"django.core.cache.backends.{backend}"}}
    with override_settings(DEBUG=False, SESSION_COOKIE_SECURE=True, CACHES=per_process):
        assert ids(checks.check_deploy()) == ["duo_oidc.W004"]
    with override_settings(DEBUG=True, SESSION_COOKIE_SECURE=True, CACHES=per_process):
        assert ids(checks.check_deploy()) == []  # runserver is one process
    other = {**SHARED_CACHE, "duo": per_process["default"]}
    with override_settings(DEBUG=False, SESSION_COOKIE_SECURE=True, CACHES=other, DUO_OIDC={"CACHE_ALIAS": "duo"}):
        assert ids(checks.check_deploy()) == ["duo_oidc.W004"]


def test_command_creates_and_updates(fake_op: FakeOP, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUO_SECRET", fake_op.client_secret)
    out = io.StringIO()
    call_command(
        "duo_oidc_provider",
        "duo",
        "--issuer",
        fake_op.issuer,
        "--client-id",
        fake_op.client_id,
        "--client-secret-env",
        "DUO_SECRET",
        "--scopes",
        "profile email",
        "--default",
        "--check",
        stdout=out,
    )
    provider = Provider.objects.get(slug="duo")
    assert provider.scope_set == {"openid", "profile", "email"}
    assert provider.is_default and provider.client_secret_env == "DUO_SECRET"
    assert "Created provider 'duo'" in out.getvalue()
    assert "Discovery OK" in out.getvalue()
    assert fake_op.client_secret not in out.getvalue()
    call_command("duo_oidc_provider", "duo", "--token-auth-method", "client_secret_post", stdout=out)
    provider.refresh_from_db()
    assert provider.token_auth_method == "client_secret_post"


def test_command_refuses_incomplete_or_invalid_input(fake_op: FakeOP) -> None:
    with pytest.raises(CommandError, match="--issuer and --client-id"):
        call_command("duo_oidc_provider", "new", stdout=io.StringIO())
    with pytest.raises(CommandError, match="issuer"):
        call_command("duo_oidc_provider", "new", "--issuer", "not a url", "--client-id", "x", stdout=io.StringIO())
    assert not Provider.objects.exists()


def test_command_check_failure_is_an_error(fake_op: FakeOP) -> None:
    fake_op.faults[".well-known/openid-configuration"] = "down"
    with pytest.raises(CommandError, match="connection check failed"):
        call_command(
            "duo_oidc_provider", "duo", "--issuer", fake_op.issuer, "--client-id", "x", "--check", stdout=io.StringIO()
        )


def test_command_reads_secret_from_stdin(fake_op: FakeOP, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin\n"))
    out = io.StringIO()
    call_command(
        "duo_oidc_provider", "duo", "--issuer", fake_op.issuer, "--client-id", "x", "--client-secret-stdin", stdout=out
    )
    assert Provider.objects.get().get_client_secret() == "from-stdin"
    assert "from-stdin" not in out.getvalue()


def test_command_group_and_staff_rules(fake_op: FakeOP) -> None:
    args = ["duo", "--issuer", fake_op.issuer, "--client-id", "x", "--group-rule", "groups=crm-users:CRM"]
    call_command("duo_oidc_provider", *args, "--staff-rule", "groups=admins", stdout=io.StringIO())
    call_command("duo_oidc_provider", *args, stdout=io.StringIO())  # idempotent
    rules = sorted(str(r) for r in Provider.objects.get().group_rules.all())
    assert rules == ["groups = admins -> - + staff", "groups = crm-users -> CRM"]
    with pytest.raises(CommandError, match="CLAIM=VALUE:GROUP"):
        call_command("duo_oidc_provider", "duo", "--group-rule", "groups=x", stdout=io.StringIO())
