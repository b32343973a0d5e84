"""An adversarial read of the lead's late changes (``except DBError`` everywhere): each test failed before
its fix unless it says it pins what already held.

- The scope rules' read (the admin's ``ScopeRule`` rows, every 5 s per process, by the middleware before
  any view) was the one read on a request that caught no database error: a failure of that table when the
  read was due was a 500 for every request, signed-in, bearer or anonymous. Now it is an outage: a 503
  (the unavailable page, or RFC 6750's ``temporarily_unavailable`` for a bearer view), and the next request
  reads again. The rules cannot be judged, so no view runs unjudged.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from django_duo_oidc.models import Provider, ScopeRule
from django_duo_oidc.policy.rules import reset_policy_cache
from tests.conftest import failing_db
from tests.fakeop import FakeOP

from .test_disabled_provider_sessions import failing_provider_reads
from .test_login_views import login, me, start
from .test_policy import CRM
from .test_resource import issue

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("long_lived_memos")]

SCOPE_RULE_TABLE = ScopeRule._meta.db_table


def failing_rule_reads(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    if SCOPE_RULE_TABLE in sql:
        raise failing_db[0]
    return execute(sql, params, many, context)


def test_the_scope_rules_unreadable_when_due_is_a_503_page_not_a_500(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: pytest.LogCaptureFixture, db_failure: str
) -> None:
    login(client, fake_op, scope=CRM)
    reset_policy_cache()  # the rules are due
    with connection.execute_wrapper(failing_rule_reads), caplog.at_level(logging.WARNING):
        response = client.get("/contacts/")
        anonymous = Client().get("/")
    assert response.status_code == 503 and anonymous.status_code == 503
    assert f"the database failed: {db_failure}" in caplog.text and "closed" not in caplog.text
    assert client.get("/contacts/").status_code == 200  # the database is back: read again at once


def test_the_scope_rules_unreadable_when_due_is_a_503_for_a_bearer_view_not_a_500(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: pytest.LogCaptureFixture, db_failure: str
) -> None:
    token = issue(fake_op)
    reset_policy_cache()
    with connection.execute_wrapper(failing_rule_reads), caplog.at_level(logging.WARNING):
        response = client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable" and int(response["Retry-After"]) >= 1
    assert token not in caplog.text and "closed" not in caplog.text
    ok = client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert ok.status_code == 200


# The login views' own reads of the provider table ------------------------------------------------


def test_starting_a_login_while_the_provider_table_fails_is_a_503_page_not_a_500(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: pytest.LogCaptureFixture, db_failure: str
) -> None:
    calls = len(fake_op.calls)
    with connection.execute_wrapper(failing_provider_reads), caplog.at_level(logging.WARNING):
        response = client.get("/oidc/login/?provider=duo&next=/me/")
    assert response.status_code == 503 and "Location" not in response
    assert len(fake_op.calls) == calls  # the browser is sent nowhere
    assert "closed" not in caplog.text and "closed" not in response.content.decode()
    assert start(client).startswith(fake_op.issuer)  # the database is back


def test_a_callback_while_the_provider_table_fails_is_a_503_page_not_a_500(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: pytest.LogCaptureFixture, db_failure: str
) -> None:
    callback = "/oidc/callback/?" + fake_op.authorize(start(client))
    with connection.execute_wrapper(failing_provider_reads), caplog.at_level(logging.WARNING):
        response = client.get(callback)
    assert response.status_code == 503 and "Location" not in response
    assert me(client)["authenticated"] is False  # nothing was trusted
    assert "closed" not in caplog.text and "closed" not in response.content.decode()


def test_logging_out_while_the_provider_table_fails_still_logs_out(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: pytest.LogCaptureFixture, db_failure: str
) -> None:
    login(client, fake_op, scope=CRM)
    with connection.execute_wrapper(failing_provider_reads), caplog.at_level(logging.WARNING):
        response = client.post("/oidc/logout/")
    assert response.status_code == 302
    assert me(client)["authenticated"] is False
    assert "closed" not in caplog.text
