"""Adversarial review of the lead's late changes of issue 15 (the step-up ticket, the change-log lines of
deletions, the checks that read the database): each test failed before its fix.

- A page whose path needs percent-encoding (``/t/zero/café/``, ``/t/zero/a b/``) looped through the
  provider (or Duo) forever after a ``max_age=0`` step-up: the ticket held the encoded path of the ``next``
  URL, the page's ``request.path`` is decoded, so they never matched.
- A second, stricter check in the same request (a scope rule, then the view's own requirement) was refused
  although the ticket was for it: the request remembered the first check's ``max_age``, not the ticket's.
- ``authenticated_within(max_age, now=0.0)`` used the clock instead of the ``now`` it was given.
- ``duo_oidc_scope_rule --remove`` and ``duo_oidc_group_rule --remove`` logged "deleted" before deleting,
  outside a transaction: a deletion that failed was logged as done.
- With no database configured, ``check --deploy`` (Django 6, which gives every check the database
  aliases), ``check --tag database`` (Django 6) and ``check --database default`` (both) ended in a
  traceback from the second factor's checks, which caught a missing table but not a missing database.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import path

from django_duo_oidc.core import step_up
from django_duo_oidc.login.context import OIDCContext
from django_duo_oidc.login.session import LOGIN_KEY
from django_duo_oidc.mfa.decorators import duo_required
from django_duo_oidc.models import GroupRule, Provider, ScopeRule
from django_duo_oidc.policy.decorators import scopes_required
from tests.conftest import StillClock
from tests.fakeop import FakeOP

from .test_login_views import login
from .test_mfa_login import _clean_state, alice, config, duo  # noqa: F401 (fixtures)
from .test_mfa_login import login as mfa_login
from .test_policy import CRM
from .test_step_up_max_age_zero import step_up_through_duo, step_up_through_the_provider
from .test_step_up_max_age_zero import urlpatterns as zero_urls

pytestmark = [pytest.mark.django_db]


@scopes_required("crm.contacts.read", max_age=0)
def named_page(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponse("named ok")


@duo_required(max_age=0)
def duo_named_page(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponse("duo named ok")


urlpatterns = [
    *zero_urls,
    path("t/zero/<str:name>/", named_page),
    path("t/mfa/zero/<str:name>/", duo_named_page),
]
here = pytest.mark.urls(__name__)


@here
@pytest.mark.parametrize("name", ["caf%C3%A9", "a%20b"])
def test_max_age_zero_opens_a_page_whose_path_is_percent_encoded(
    client: Client, fake_op: FakeOP, provider: Provider, name: str, still_clock: StillClock
) -> None:
    login(client, fake_op, scope=CRM)
    url = f"/t/zero/{name}/"
    back = step_up_through_the_provider(client, fake_op, url)
    assert back["Location"] == url
    response = client.get(url)
    assert response.status_code == 200, response.get("Location")  # was a 302 back to the provider, forever
    assert client.get(url).status_code == 302  # once


@here
@pytest.mark.usefixtures("config", "alice")
def test_duo_max_age_zero_opens_a_page_whose_path_is_percent_encoded(client: Client, duo: Any) -> None:  # noqa: F811
    mfa_login(client, duo, "alice")
    url = "/t/mfa/zero/caf%C3%A9/"
    assert step_up_through_duo(client, duo, url)["Location"] == url
    response = client.get(url)
    assert response.status_code == 200, response.get("Location")  # was a 302 back to Duo, forever
    assert client.get(url).status_code == 302


@here
def test_a_ticket_for_one_page_does_not_open_another_that_decodes_differently(
    client: Client, fake_op: FakeOP, provider: Provider, still_clock: StillClock
) -> None:
    """Decoding the ticket's path may not widen it: ``/t/zero/a%2520b/`` is the page named ``a%20b``."""
    login(client, fake_op, scope=CRM)
    assert step_up_through_the_provider(client, fake_op, "/t/zero/a%20b/")["Location"] == "/t/zero/a%20b/"
    assert client.get("/t/zero/a%2520b/").status_code == 302
    assert client.get("/t/zero/a%20b/").status_code == 200


class _Context(OIDCContext):
    """A session context whose provider ``auth_time`` is fixed (the session holds only the ticket)."""

    def __init__(self, request: HttpRequest, auth_time: float) -> None:
        super().__init__(request)
        self._auth_time = auth_time

    @property
    def auth_time(self) -> float | None:
        return self._auth_time


def _request_with_ticket(path: str, *, max_age: int, now: float) -> HttpRequest:
    request = RequestFactory().get(path)
    record: dict[str, Any] = {}
    step_up.grant(record, path=path, max_age=max_age, now=now)
    request.session = _Session({LOGIN_KEY: record})  # type: ignore[attr-defined]
    return request


class _Session(dict[str, Any]):
    modified = False


def test_a_stricter_check_after_a_looser_one_in_the_same_request_uses_the_ticket() -> None:
    """The ticket was for ``max_age=0``: a rule of 5 s checked first consumes it, the view's 0 must pass too."""
    now = 1_000_000.0
    request = _request_with_ticket("/p/", max_age=0, now=now - 10)
    context = _Context(request, auth_time=now - 10)  # the way back took 10 s
    assert context.authenticated_within(5, now=now)
    assert context.authenticated_within(0, now=now)  # was False: 5 (the first check) > 0
    assert request.session.modified  # type: ignore[attr-defined]
    # Still once, and still no looser than the ticket: another request gets nothing.
    assert not _Context(request, auth_time=now - 10).authenticated_within(0, now=now)


def test_a_later_check_stricter_than_the_ticket_is_refused() -> None:
    now = 1_000_000.0
    request = _request_with_ticket("/p/", max_age=5, now=now - 10)
    context = _Context(request, auth_time=now - 10)
    assert context.authenticated_within(8, now=now)
    assert not context.authenticated_within(4, now=now)  # stricter than the login was asked


def test_authenticated_within_uses_the_now_it_is_given_even_zero() -> None:
    request = RequestFactory().get("/p/")
    request.session = _Session()  # type: ignore[attr-defined]
    assert _Context(request, auth_time=0.0).authenticated_within(10, now=0.0)  # was the clock: 56 years old
    assert not _Context(request, auth_time=100.0).authenticated_within(10, now=0.0 + 111)


@pytest.fixture
def deletions(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.INFO, logger="django_duo_oidc")
    return lambda: [r.getMessage() for r in caplog.records if " deleted by manage.py " in r.getMessage()]


def _fail(*args: Any, **kwargs: Any) -> Any:
    raise DatabaseError("the database went away")


def test_a_scope_rule_removal_that_fails_is_not_logged(
    deletions: Callable[[], list[str]],
    django_capture_on_commit_callbacks: Callable[..., AbstractContextManager[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ScopeRule.objects.create(path_prefix="/reports/", scopes="reports.read")
    monkeypatch.setattr(ScopeRule, "delete", _fail)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(DatabaseError):
        call_command("duo_oidc_scope_rule", "--path", "/reports/", "--remove")
    assert ScopeRule.objects.filter(path_prefix="/reports/").exists()
    assert deletions() == []  # was "scope rule /reports/ deleted by manage.py duo_oidc_scope_rule"


def test_a_group_rule_removal_that_fails_is_not_logged(
    deletions: Callable[[], list[str]],
    django_capture_on_commit_callbacks: Callable[..., AbstractContextManager[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = Provider.objects.create(slug="a", issuer="https://op.example.test/oidc", client_id="c")
    GroupRule.objects.create(provider=provider, claim="groups", value="crm-users", staff=True)
    monkeypatch.setattr("django.db.models.query.QuerySet.delete", _fail)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(DatabaseError):
        call_command("duo_oidc_group_rule", "a", "--value", "crm-users", "--remove")
    assert GroupRule.objects.filter(provider=provider).exists()
    assert deletions() == []  # was "group rule groups=crm-users: of provider a deleted by ..."


@pytest.mark.parametrize("command", [["--deploy"], ["--tag", "database"], ["--deploy", "--database", "default"]])
def test_the_checks_never_fail_without_a_database(tmp_path: Path, command: list[str]) -> None:
    """A build step runs ``check --deploy`` where no database is configured: the checks say nothing
    about the rows they cannot read, and never end in a traceback."""
    (tmp_path / "no_database_settings.py").write_text("from tests.settings import *  # noqa: F403\nDATABASES = {}\n")
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "no_database_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "django", "check", *command],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr[-2000:]  # was ImproperlyConfigured from check_mfa*
    assert done.returncode == 0, done.stderr[-2000:]
