"""A browser session of a provider an admin disables, deletes or renames ends on its next request once
this process has re-read its list of enabled providers (``providers.enabled``: at most every
``ENABLED_TTL`` seconds, the read the bearer registry uses), not a freshness window later; a scope check
on a live session still costs no query. Each "process" here is one list in memory: a second process is a
second, empty list (``process``); time is moved, never waited for."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext

from django_duo_oidc import signals
from django_duo_oidc.freshness.revalidation import PROVIDER_GONE
from django_duo_oidc.models import LiveSession, Provider
from django_duo_oidc.providers import enabled
from tests.conftest import StillClock, captured, close_executor_connections, failing_db
from tests.fakeop import FakeOP

from .test_login_views import login, me
from .test_policy import CRM, age_session, settings_with
from .test_resource import issue

# Each process's list lives an hour here (a loaded machine never sees it expire between two requests);
# tests move the clock past it (``later``) or start another process (``process``).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("long_lived_memos")]
PROVIDER_TABLE = '"duo_oidc_provider"'


def contacts(client: Client, **extra: Any) -> int:
    """The status of a scope-protected page (crm.contacts.read)."""
    return int(client.get("/contacts/", **extra).status_code)


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move this process's monotonic clock ``seconds`` ahead (the memos' clock)."""
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + seconds)


@pytest.fixture
def process(monkeypatch: pytest.MonkeyPatch) -> Callable[[], Any]:
    """Switch to another worker process: its own, empty list of providers (returned, to switch back to
    with ``use``)."""

    def switch() -> Any:
        other = enabled._Memo()
        monkeypatch.setattr(enabled, "_memo", other)
        return other

    return switch


def use(monkeypatch: pytest.MonkeyPatch, memo: Any) -> None:
    monkeypatch.setattr(enabled, "_memo", memo)


def session_key(client: Client) -> str:
    return str(client.cookies[django_settings.SESSION_COOKIE_NAME].value)


@pytest.fixture
def ended() -> Iterator[list[dict[str, Any]]]:
    with captured(signals.session_ended) as seen:
        yield seen


def assert_ended(client: Client, key: str, sent: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    """Ended as ``end_session`` ends one: flushed from the store, one ``session_ended``, one log line."""
    assert me(client) == {"authenticated": False}
    assert not Session.objects.filter(session_key=key).exists()
    assert not LiveSession.objects.exists()  # the index row went with it (user_logged_out)
    assert [(e["reason"], e["provider"]) for e in sent] == [(PROVIDER_GONE, None)]
    assert sent[0]["user"] == get_user_model().objects.get()
    lines = [r.getMessage() for r in caplog.records if "Ended the session" in r.getMessage()]
    assert len(lines) == 1 and PROVIDER_GONE in lines[0]
    assert key not in caplog.text


# Ending ------------------------------------------------------------------------------------------


def change_disabled(provider: Provider) -> None:
    Provider.objects.filter(pk=provider.pk).update(enabled=False)


def change_disabled_in_the_admin(provider: Provider) -> None:
    provider.enabled = False
    provider.save()


def change_deleted(provider: Provider) -> None:
    provider.delete()


def change_renamed(provider: Provider) -> None:
    provider.slug = "duo-eu"
    provider.save()


@pytest.mark.parametrize("change", [change_disabled, change_disabled_in_the_admin, change_deleted, change_renamed])
def test_the_session_of_a_provider_gone_ends_at_the_next_read_of_the_provider_list(
    client: Client,
    fake_op: FakeOP,
    provider: Provider,
    change: Callable[[Provider], None],
    ended: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fails before the change: the session was judged only when its freshness window was due
    (``REVALIDATE_SECONDS``), so the page stayed open after the provider list was read again."""
    login(client, fake_op, scope=CRM)
    assert contacts(client) == 200  # this process reads the provider list now
    key = session_key(client)
    change(provider)
    calls = len(fake_op.calls)
    assert contacts(client) == 200  # within ENABLED_TTL of this process's read: not seen yet
    later(monkeypatch, enabled.ENABLED_TTL + 0.1)
    with caplog.at_level(logging.INFO, logger="django_duo_oidc"):
        response = client.get("/contacts/")
    assert response.status_code == 302 and response["Location"].startswith("/oidc/login/")
    assert_ended(client, key, ended, caplog)
    assert len(fake_op.calls) == calls  # decided here: the provider is not asked


def test_each_process_ends_it_at_its_own_next_read(
    fake_op: FakeOP,
    provider: Provider,
    process: Callable[[], Any],
    ended: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two workers: one read the list before the admin's change, the other reads it after."""
    first, second = Client(), Client()
    login(first, fake_op, scope=CRM)
    login(second, fake_op, scope=CRM)
    assert contacts(first) == 200  # worker A reads the list
    worker_a = enabled._memo
    change_disabled(provider)
    process()  # worker B: its first read is after the change
    assert contacts(first) == 302
    assert me(first) == {"authenticated": False}
    use(monkeypatch, worker_a)
    assert contacts(second) == 200  # worker A has not read the list again yet
    later(monkeypatch, enabled.ENABLED_TTL + 0.1)
    assert contacts(second) == 302
    assert [e["reason"] for e in ended] == [PROVIDER_GONE] * 2


def test_a_stolen_cookie_of_an_ended_session_stays_dead(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    stolen = session_key(client)
    change_disabled(provider)
    enabled.forget()
    assert contacts(client) == 302
    thief = Client()
    thief.cookies[django_settings.SESSION_COOKIE_NAME] = stolen
    assert me(thief) == {"authenticated": False}
    assert contacts(thief) == 302


def test_a_session_naming_no_provider_it_can_be_judged_by_ends_not_500(
    client: Client, fake_op: FakeOP, provider: Provider, ended: list[dict[str, Any]]
) -> None:
    """A stored login whose provider is not a slug (a store written by hand, or damaged) ends cleanly."""
    login(client, fake_op, scope=CRM)
    age_session(client, provider=["duo"], checked_at=time.time() - 1)  # unhashable; the grant is not due
    assert contacts(client) == 302
    assert [e["reason"] for e in ended] == [PROVIDER_GONE]


@pytest.mark.django_db(transaction=True)
def test_on_the_async_stack_too(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    change_disabled(provider)
    enabled.forget()
    async_client = AsyncClient()
    async_client.cookies = client.cookies
    try:
        assert asyncio.run(async_client.get("/t/async/")).status_code == 302
    finally:
        close_executor_connections()
    assert me(client) == {"authenticated": False}


# Kept ----------------------------------------------------------------------------------------------


def test_disabled_and_re_enabled_between_two_reads_goes_unnoticed(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    login(client, fake_op, scope=CRM)
    assert contacts(client) == 200
    change_disabled(provider)
    Provider.objects.filter(pk=provider.pk).update(enabled=True)
    later(monkeypatch, enabled.ENABLED_TTL + 0.1)
    assert contacts(client) == 200


@pytest.mark.parametrize("how", ["re-enabled", "created"])
def test_a_login_after_this_process_read_the_list_is_not_ended_by_that_older_read(
    client: Client, fake_op: FakeOP, provider: Provider, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list was read while the provider was off (or before it existed); a login through it since then
    is newer news: the session is kept, and the next read of the list judges it."""
    slug = provider.slug
    if how == "re-enabled":
        change_disabled(provider)
    else:
        provider.delete()
    enabled.forget()
    token = issue(fake_op)
    assert client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401  # list read
    if how == "re-enabled":
        Provider.objects.filter(slug=slug).update(enabled=True)
    else:
        provider.pk = None
        provider.save()
    login(client, fake_op, scope=CRM)
    assert slug not in enabled.enabled_providers().slugs  # this process's list is the older read
    assert contacts(client) == 200
    later(monkeypatch, enabled.ENABLED_TTL + 0.1)
    assert contacts(client) == 200
    assert slug in enabled.enabled_providers().slugs


def test_a_session_without_an_oidc_login_is_not_judged_by_providers(provider: Provider) -> None:
    """A password session (with or without Duo's second factor) names no provider: every provider off
    changes nothing for it, and it costs no read of the list."""
    user = get_user_model().objects.create_user("pat", password="pw")
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    Provider.objects.update(enabled=False)
    enabled.forget()
    with CaptureQueriesContext(connection) as queries:
        assert me(client)["authenticated"] is True
    assert not any(PROVIDER_TABLE in q["sql"] for q in queries.captured_queries)


def test_bearer_tokens_are_judged_as_before_and_share_the_read(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    """Bearer tokens of an enabled provider are accepted, refused once the list read shows it disabled,
    and the sessions' check and the bearer registry read the providers once between them."""
    token = issue(fake_op)
    login(client, fake_op, scope=CRM)
    with CaptureQueriesContext(connection) as queries:
        assert contacts(client) == 200
        assert client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert sum(PROVIDER_TABLE in q["sql"] for q in queries.captured_queries) == 1
    change_disabled(provider)
    enabled.forget()
    assert client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert me(client) == {"authenticated": False}


def test_a_bearer_request_carrying_the_cookie_of_an_ended_session_is_answered_by_its_token(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    other = Provider.objects.create(
        slug="other", name="Other", issuer=fake_op.issuer, client_id=fake_op.client_id, client_secret_env="X"
    )
    login(client, fake_op, scope=CRM)
    age_session(client, provider=other.slug, checked_at=time.time() - 1)  # the grant is not due
    other.delete()
    enabled.forget()
    response = client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {issue(fake_op)}")
    assert response.status_code == 200
    assert me(client) == {"authenticated": False}


# Cost ------------------------------------------------------------------------------------------------


def test_a_scope_check_on_a_live_session_still_costs_no_provider_query(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=CRM)
    assert contacts(client) == 200  # the process memos (rules, providers) are read
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert contacts(client) == 200
    assert not any(PROVIDER_TABLE in q["sql"] for q in queries.captured_queries)


def test_the_list_is_read_once_per_window_per_process_whatever_the_traffic(
    fake_op: FakeOP, provider: Provider, still_clock: StillClock
) -> None:
    """No one can make a process read the providers more often: not many sessions, nor old ones."""
    clients = [Client() for _ in range(3)]
    for each in clients:
        login(each, fake_op, scope=CRM)
    age_session(clients[0], checked_at=time.time() - 1)  # older than the read: judged by it (not due)
    enabled.forget()
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            for each in clients:
                assert contacts(each) == 200
    assert sum(PROVIDER_TABLE in q["sql"] for q in queries.captured_queries) == 1


# The database failing when the list is due ----------------------------------------------------------


def failing_provider_reads(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    if PROVIDER_TABLE in sql:
        raise failing_db[0]
    return execute(sql, params, many, context)


@pytest.mark.parametrize(("mode", "status"), [("deny", 503), ("allow", 200)])
def test_the_database_failing_when_the_list_is_due_is_a_provider_outage_not_a_500(
    client: Client,
    fake_op: FakeOP,
    provider: Provider,
    mode: str,
    status: int,
    ended: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    db_failure: str,
) -> None:
    """The session is neither trusted nor ended: marked stale, so ``ON_PROVIDER_DOWN`` decides, as when the
    provider cannot be asked; the list stays due and is read again by the next request."""
    login(client, fake_op, scope=CRM)
    enabled.forget()
    calls = len(fake_op.calls)
    with settings_with(ON_PROVIDER_DOWN=mode):
        with connection.execute_wrapper(failing_provider_reads), caplog.at_level(logging.WARNING):
            response = client.get("/contacts/")
            assert response.status_code == status
            assert me(client)["authenticated"] is True  # views without scopes keep working
        assert contacts(client) == 200  # the database is back: read again at once
    if status == 503:
        assert b"temporarily unavailable" in response.content
    assert not ended and len(fake_op.calls) == calls
    assert f"the database failed: {db_failure}" in caplog.text
    assert "closed" not in caplog.text  # the driver's message may name hosts and users
