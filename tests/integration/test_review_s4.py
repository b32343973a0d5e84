"""An adversarial review of session 4's changes (providers gone end their sessions, API step-up, parallel
tickets, dev.py's hang-up): each test failed before its fix unless it says it pins what already held.

- The database failing for the provider table while a session's grant is due (the list of enabled
  providers fresh, so the new check let the request on) was a 500 from ``ensure_fresh``'s own read of
  the provider row: now a provider outage (the session stale, ``ON_PROVIDER_DOWN`` decides), as the list's
  read already was.
- A bearer request while the provider list could not be read (the list due) was a 500 from the bearer
  registry: now a 503 ``temporarily_unavailable``, as when the user directory cannot be read.

A failure of the provider table alone is what a migration holding its lock, a ``statement_timeout`` or a
fail-over in the middle of a request gives; the rest of the database answers.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.db import connection
from django.test import Client

from django_duo_oidc import signals
from django_duo_oidc.models import Provider
from django_duo_oidc.providers import enabled
from tests.conftest import captured
from tests.fakeop import FakeOP

from .test_disabled_provider_sessions import failing_provider_reads
from .test_login_views import login, me
from .test_policy import CRM, age_session, settings_with
from .test_resource import issue

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("long_lived_memos")]


@pytest.mark.parametrize(("mode", "status"), [("deny", 503), ("allow", 200)])
def test_the_database_failing_when_the_grant_is_due_is_a_provider_outage_not_a_500(
    client: Client, fake_op: FakeOP, provider: Provider, mode: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Was a 500: the list of enabled providers was fresh, so ``end_if_provider_gone`` let the request
    on to ``ensure_fresh``, whose read of the provider row raised the database's error."""
    login(client, fake_op, scope=CRM)
    assert client.get("/contacts/").status_code == 200  # this process reads the provider list now
    age_session(client)  # the grant is due (REVALIDATE_SECONDS passed); the list is not
    calls = len(fake_op.calls)
    with captured(signals.session_ended) as ended, settings_with(ON_PROVIDER_DOWN=mode):
        with connection.execute_wrapper(failing_provider_reads), caplog.at_level(logging.WARNING):
            response = client.get("/contacts/")
        assert response.status_code == status
        assert me(client)["authenticated"] is True  # neither trusted nor ended: stale
        assert client.get("/contacts/").status_code == 200  # the database is back: revalidated at once
    assert not ended
    assert len(fake_op.calls) > calls  # the second request asked the provider, the first did not
    assert "the database failed: OperationalError" in caplog.text
    assert "server closed" not in caplog.text  # the driver's message may name hosts and users


def test_a_bearer_request_while_the_provider_list_cannot_be_read_is_a_503_not_a_500(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    """Was a 500: the bearer registry raised the database's error out of the list's read."""
    token = issue(fake_op)
    enabled.forget()
    with connection.execute_wrapper(failing_provider_reads), caplog.at_level(logging.WARNING):
        response = client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 503, response.content
    assert response.json()["error"] == "temporarily_unavailable"
    assert "Retry-After" in response
    assert "the database failed: OperationalError" in caplog.text
    assert "server closed" not in caplog.text and token not in caplog.text
    assert client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200  # back: read again


# Pinned (held before the fixes above): what must NOT end a session ----------------------------------


def edited_in_the_admin(provider: Provider) -> None:
    provider.name = "Duo (EU)"
    provider.scopes = provider.scopes + " offline_access"
    provider.save()  # updated_at moves: the bearer registry's version of the row changes


def edited_by_an_import(provider: Provider) -> None:
    from django_duo_oidc.management.config_file import export_document
    from django_duo_oidc.management.config_import import import_document

    document, _warnings = export_document()
    document["providers"][provider.slug]["name"] = "Duo (imported)"
    report = import_document(document, prune=True)
    assert report.changes  # the row was written (save()), under the same slug


@pytest.mark.parametrize("edit", [edited_in_the_admin, edited_by_an_import])
def test_a_provider_edited_but_still_enabled_keeps_its_sessions_and_tokens(
    client: Client, fake_op: FakeOP, provider: Provider, edit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    login(client, fake_op, scope=CRM)
    token = issue(fake_op)
    assert client.get("/contacts/").status_code == 200
    before = Provider.objects.get(pk=provider.pk).updated_at
    edit(Provider.objects.get(pk=provider.pk))
    assert Provider.objects.get(pk=provider.pk).updated_at > before
    enabled.forget()  # the next request reads the list again, as every ENABLED_TTL in production
    with captured(signals.session_ended) as ended:
        assert client.get("/contacts/").status_code == 200
        assert client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
        age_session(client)  # and its next revalidation, against the edited row, keeps it too
        assert client.get("/contacts/").status_code == 200
    assert not ended and me(client)["authenticated"] is True


# request.oidc.access_token() with the provider table failing ------------------------------------------


@pytest.mark.urls("tests.integration.test_act_for_user")
@pytest.mark.parametrize("url", ["/t/act/token/", "/t/act/async/"])
def test_handing_out_the_token_while_the_provider_row_cannot_be_read_is_a_503_not_a_500(
    client: Client, fake_op: FakeOP, provider: Provider, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Was a 500: ``current_access_token`` reads the session's provider row on every call, and the
    database's error went out of the view (``ProviderUnavailable`` is what the middleware answers 503)."""
    from .test_act_for_user import HANDED_OUT

    login(client, fake_op, scope=CRM)
    assert client.get(url).status_code == 200  # the list is read; a token is handed out
    handed = len(HANDED_OUT)
    with connection.execute_wrapper(failing_provider_reads), caplog.at_level(logging.WARNING):
        response = client.get(url)
    assert response.status_code == 503, response.content
    assert b"temporarily unavailable" in response.content
    assert len(HANDED_OUT) == handed  # nothing handed out
    assert me(client)["authenticated"] is True  # not ended: the grant is not at fault
    assert "the database failed: OperationalError" in caplog.text and "server closed" not in caplog.text
    assert client.get(url).status_code == 200


def test_the_resource_metadata_while_the_provider_list_cannot_be_read_is_a_503_not_a_500(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    """Was a 500: the public RFC 9728 document lists the trusted issuers from the bearer registry's read
    (fixed with the registry: its ``ProviderUnavailable`` is the middleware's 503 page). Never cached as
    the document is (``public, max-age=300``)."""
    enabled.forget()
    with connection.execute_wrapper(failing_provider_reads):
        response = client.get("/.well-known/oauth-protected-resource")
    assert response.status_code == 503, response.content
    assert "public" not in response.get("Cache-Control", "")
    assert client.get("/.well-known/oauth-protected-resource").json()["authorization_servers"] == [fake_op.issuer]


# Pinned (held before): the API step-up behind a script prefix (SCRIPT_NAME, a site mounted under /app) ---


@pytest.mark.urls("tests.integration.test_step_up_followups")
def test_an_api_step_up_behind_a_script_prefix_names_and_opens_the_prefixed_path(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    """``api_path`` is ``request.path`` (with the prefix) and is only ever compared with ``request.path``:
    the ticket opens the API as the browser calls it, once. (Django's test client sets no script prefix
    for ``reverse()``: the login URL comes without it, and is requested here under the prefix, as the
    browser would.)"""
    prefix = "/app"
    login(client, fake_op, scope=CRM)
    api = "/t/followups/ninja/export"
    body = client.get(api, SCRIPT_NAME=prefix).json()
    assert parse_qs(urlsplit(body["step_up_url"]).query)["api_path"] == [prefix + api]
    start = client.get(
        body["step_up_url"] + "&" + urlencode({"next": prefix + "/t/followups/app/"}), SCRIPT_NAME=prefix
    )
    back = client.get("/oidc/callback/?" + fake_op.authorize(start["Location"], scope=CRM), SCRIPT_NAME=prefix)
    assert back["Location"] == prefix + "/t/followups/app/"
    assert client.get(api).status_code == 403  # the same API without the prefix is another path
    assert client.get(api, SCRIPT_NAME=prefix).status_code == 200
    assert client.get(api, SCRIPT_NAME=prefix).status_code == 403


# Pinned (held before): other session engines, and the stolen cookie of an ended session -------------


@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.cached_db",
        # Refused by duo_oidc.E007 (tokens in a cookie), but a replayed cookie must still not log in again.
        "django.contrib.sessions.backends.signed_cookies",
    ],
)
def test_a_provider_gone_ends_its_sessions_in_every_engine_and_a_replayed_cookie_stays_out(
    client: Client, fake_op: FakeOP, provider: Provider, engine: str, settings: Any
) -> None:
    settings.SESSION_ENGINE = engine
    login(client, fake_op, scope=CRM)
    assert client.get("/contacts/").status_code == 200
    stolen = {name: morsel.value for name, morsel in client.cookies.items()}
    Provider.objects.filter(pk=provider.pk).update(enabled=False)
    enabled.forget()
    assert client.get("/contacts/").status_code == 302
    assert me(client) == {"authenticated": False}
    thief = Client()
    for name, value in stolen.items():
        thief.cookies[name] = value
    assert me(thief) == {"authenticated": False}  # a signed cookie still holds the login: ended again
