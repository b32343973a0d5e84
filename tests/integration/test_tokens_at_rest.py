"""Issue 10 item 22: access and refresh tokens are sealed at rest (session store, shared cache), and
neither tokens nor codes reach Django's error reports."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.fernet import Fernet
from django.contrib.sessions.models import Session
from django.core.cache.backends.locmem import _caches
from django.core.signals import got_request_exception
from django.test import Client
from django.views.debug import ExceptionReporter

from django_duo_oidc.login import session as stored
from django_duo_oidc.models import Provider
from django_duo_oidc.outbound.client_credentials import client_token
from django_duo_oidc.providers.runtime import ProviderRuntime
from tests.conftest import query
from tests.fakeop import FakeOP

from .test_login_views import login, me, start
from .test_policy import CRM, age_session

pytestmark = pytest.mark.django_db


def every_token(op: FakeOP) -> list[str]:
    tokens = [*op.tokens, *op.refresh_tokens]
    assert tokens
    return tokens


def raw_session(client: Client) -> str:
    """The session as the database holds it, decoded (signed, compressed JSON) to plain text."""
    row = Session.objects.get(session_key=client.cookies["sessionid"].value)
    return str(row.get_decoded()) + row.session_data


def raw_cache() -> bytes:
    """Every value the cache holds, as stored (pickled): every local-memory cache, or the whole Redis on the
    PostgreSQL + Redis leg."""
    from django.core.cache import caches

    backend = caches["default"]
    if backend.__class__.__name__ == "RedisCache":
        redis_client = backend._cache.get_client()
        return b"".join(redis_client.get(key) or b"" for key in redis_client.keys("*"))
    return b"".join(value for store in _caches.values() for value in store.values())


def without_encryption_keys(settings: Any) -> None:
    settings.DUO_OIDC = {k: v for k, v in settings.DUO_OIDC.items() if k != "ENCRYPTION_KEYS"}


# At rest ---------------------------------------------------------------------------------------------


def test_the_session_store_holds_no_token(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    text = raw_session(client)
    for token in every_token(fake_op):
        assert token not in text
    assert stored.access_token(client.session["duo_oidc"]) == fake_op.last_access_token


def test_the_cache_holds_no_token_after_refresh_introspection_and_client_tokens(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=CRM)
    age_session(client, expires_at=time.time() - 1)  # refresh (single-flight result) and introspection
    assert client.get("/contacts/").status_code == 200
    assert fake_op.count("token_introspection") == 1
    outbound = client_token("crm.contacts.read")  # cached client token and its single-flight result
    assert client_token("crm.contacts.read").from_cache
    dump = raw_cache()
    assert dump  # the cache was used
    for token in [*every_token(fake_op), outbound.access_token]:
        assert token.encode() not in dump
        assert token not in raw_session(client)


def test_a_renewed_session_keeps_working(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.rotate_refresh_tokens = True
    login(client, fake_op, scope=CRM)
    for _ in range(3):
        age_session(client, expires_at=time.time() - 1)
        assert client.get("/contacts/").status_code == 200
    assert fake_op.count("token") == 4  # the login and three refreshes, each with the last refresh token
    assert stored.access_token(client.session["duo_oidc"]) == fake_op.last_access_token


def test_a_login_stored_in_clear_by_an_earlier_release_is_sealed_on_read(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=CRM)
    access = fake_op.last_access_token
    refresh = next(iter(fake_op.refresh_tokens))
    session = client.session
    data = {k: v for k, v in session["duo_oidc"].items() if k != stored.TOKENS_KEY}
    session["duo_oidc"] = {**data, "access_token": access, "refresh_token": refresh}
    session.save()
    assert me(client)["authenticated"] is True
    assert access not in raw_session(client)
    age_session(client, expires_at=time.time() - 1)
    assert client.get("/contacts/").status_code == 200  # the refresh token was carried over


# Key rotation -----------------------------------------------------------------------------------------


def test_rotating_secret_key_with_a_fallback_keeps_sessions(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    without_encryption_keys(settings)
    login(client, fake_op, scope=CRM)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-for-this-test-" + "x" * 30
    age_session(client, expires_at=time.time() - 1)
    assert client.get("/contacts/").status_code == 200  # the sealed refresh token still opens
    assert me(client)["authenticated"] is True


def test_retiring_the_old_secret_key_ends_sessions_cleanly(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    without_encryption_keys(settings)
    login(client, fake_op, scope=CRM)
    settings.SECRET_KEY = "a-new-secret-key-for-this-test-" + "x" * 30
    response = client.get("/contacts/")
    assert response.status_code == 302  # to login: no 500
    assert me(client) == {"authenticated": False}


def test_a_token_sealed_under_a_retired_key_ends_the_session_with_a_logged_reason(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    login(client, fake_op, scope=CRM)
    settings.DUO_OIDC = {**settings.DUO_OIDC, "ENCRYPTION_KEYS": [Fernet.generate_key().decode()]}
    age_session(client)
    before = len(fake_op.calls)
    with caplog.at_level(logging.WARNING, logger="django_duo_oidc"):
        response = client.get("/contacts/")
    assert response.status_code == 302
    assert me(client) == {"authenticated": False}
    assert "cannot be decrypted" in caplog.text
    assert len(fake_op.calls) == before  # nothing sent to the provider


def test_adding_a_new_encryption_key_in_front_keeps_sessions(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    login(client, fake_op, scope=CRM)
    old = settings.DUO_OIDC["ENCRYPTION_KEYS"]
    settings.DUO_OIDC = {**settings.DUO_OIDC, "ENCRYPTION_KEYS": [Fernet.generate_key().decode(), *old]}
    age_session(client, expires_at=time.time() - 1)
    assert client.get("/contacts/").status_code == 200


# Error reports ----------------------------------------------------------------------------------------


def test_an_error_report_of_the_callback_shows_no_code_and_no_token(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports: list[str] = []

    def report(sender: Any, request: Any, **kwargs: Any) -> None:
        reporter = ExceptionReporter(request, *sys.exc_info())
        reports.extend([reporter.get_traceback_text(), reporter.get_traceback_html()])

    def broken(self: Any, tokens: Any) -> frozenset[str]:
        raise RuntimeError("a bug after the token exchange")

    monkeypatch.setattr(ProviderRuntime, "granted_scopes", broken)
    got_request_exception.connect(report)
    try:
        callback = fake_op.authorize(start(client))
        response = Client(raise_request_exception=False, HTTP_COOKIE=client.cookies.output(header="", sep=";")).get(
            "/oidc/callback/?" + callback
        )
    finally:
        got_request_exception.disconnect(report)
    assert response.status_code == 500
    assert len(reports) == 2
    params = query("?" + callback)
    secrets = [params["code"], params["state"], *every_token(fake_op)]
    for text in reports:
        assert "a bug after the token exchange" in text  # the report is about this exception
        for secret in secrets:
            assert secret not in text


def report_of(request: Any) -> str:
    """The error report Django would send had this request raised."""
    try:
        raise RuntimeError("late failure")
    except RuntimeError:
        return ExceptionReporter(request, *sys.exc_info()).get_traceback_text()


def test_a_token_posted_to_a_bearer_view_is_kept_out_of_error_reports(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    token = fake_op.access_token("alice-sub", "crm.contacts.write")
    form = urlencode({"access_token": token, "note": "hello"})
    response = client.post("/t/bearer/mixin/", form, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400  # refused: the header only (RFC 6750 section 2.2 not offered)
    multipart = client.post("/t/bearer/mixin/", {"access_token": token, "note": "hello"})
    for request in (response.wsgi_request, multipart.wsgi_request):
        text = report_of(request)
        assert "hello" in text  # the rest of the form is still reported
        assert token not in text


def test_a_client_secret_posted_in_the_admin_is_kept_out_of_error_reports(provider: Provider) -> None:
    from django.contrib.auth import get_user_model

    from .test_admin_checks_command import provider_form

    admin = Client()
    admin.force_login(
        get_user_model().objects.create_superuser("admin", "admin@example.test", "pw"),
        backend="django.contrib.auth.backends.ModelBackend",
    )
    url = f"/admin/duo_oidc/provider/{provider.pk}/change/"
    response = admin.post(url, provider_form(provider, client_secret_env="", client_secret="t0p-s3cret!"))
    assert response.status_code in (200, 302)
    text = report_of(response.wsgi_request)
    assert "client_secret" in text
    assert "t0p-s3cret!" not in text
