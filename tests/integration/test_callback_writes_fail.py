"""A login whose writes fail at its callback (the user, the identity, the session's index row): a 503
page, no half-made login, no driver message in logs or pages, and the next attempt works once the
database is back. Each case was a 500 before the fix (the database's error left the view)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from django_duo_oidc import signals
from django_duo_oidc.models import Identity, LiveSession, Provider
from tests.conftest import captured, failing_db
from tests.fakeop import FakeOP

from .test_login_views import login, me, start

# As in production (autocommit): inside a test's transaction a failed write inside an atomic block would
# poison every later query of the test.
pytestmark = pytest.mark.django_db(transaction=True)

WRITES = ("INSERT", "UPDATE", "DELETE")


def failing_writes_to(table: str) -> Callable[..., Any]:
    quoted = f'"{table}"'

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if quoted in sql and sql.lstrip().upper().startswith(WRITES):
            raise failing_db[0]
        return execute(sql, params, many, context)

    return wrapper


@pytest.mark.parametrize("table", ["auth_user", "duo_oidc_identity", "duo_oidc_livesession"])
def test_a_login_whose_writes_fail_at_its_callback_is_a_503_page_and_no_login(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: pytest.LogCaptureFixture, db_failure: str, table: str
) -> None:
    callback = "/oidc/callback/?" + fake_op.authorize(start(client))
    failing = connection.execute_wrapper(failing_writes_to(table))
    with captured(signals.login_succeeded) as logins, caplog.at_level(logging.WARNING), failing:
        response = client.get(callback)
    assert response.status_code == 503 and "Location" not in response
    assert b"cannot complete the sign-in" in response.content
    assert not logins
    assert me(client)["authenticated"] is False  # no half-made login in the session
    assert not LiveSession.objects.exists()
    assert f"the database failed: {db_failure}" in caplog.text
    assert "closed" not in caplog.text and "closed" not in response.content.decode()
    login(client, fake_op)  # the database is back: the next attempt completes
    assert me(client)["authenticated"] is True
    assert Identity.objects.filter(provider=provider).count() == 1
    assert LiveSession.objects.count() == 1
