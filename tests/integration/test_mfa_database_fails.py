"""Duo as the second factor while the database fails: the password step, Duo's callback and the step-up
view answer a 503 page, never a 500, never a login they could not judge or save, and no driver message
in logs or pages. Each case was a 500 before the fix (the database's error left the view)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.test import Client

from django_duo_oidc.mfa.who import reset_config_memo
from django_duo_oidc.models import LiveSession, MFAConfiguration
from tests.conftest import failing_db

from .test_mfa_login import PASSWORD, SECRET_ENV, authenticated, callback, login, password, to_duo
from .test_mfa_login import urlpatterns as urlpatterns

# As in production (autocommit): inside a test's transaction a failed write in an atomic block would
# poison every later query of the test.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls(__name__)]


@pytest.fixture(autouse=True)
def _clean_state() -> Any:
    cache.clear()
    reset_config_memo()
    yield
    cache.clear()
    reset_config_memo()


@pytest.fixture
def duo(fake_duo_universal: Any) -> Any:
    return fake_duo_universal


@pytest.fixture
def config(duo: Any, monkeypatch: pytest.MonkeyPatch) -> MFAConfiguration:
    monkeypatch.setenv(SECRET_ENV, duo.client_secret)
    return MFAConfiguration.objects.create(
        client_id=duo.client_id, client_secret_env=SECRET_ENV, api_host=duo.api_host, ca_certs=duo.ca_path
    )


@pytest.fixture
def alice() -> Any:
    return get_user_model().objects.create_user("alice", "alice@example.test", PASSWORD, is_staff=True)


def failing(table: str, *, writes_only: bool = False) -> Callable[..., Any]:
    quoted = f'"{table}"'

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        is_write = sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        if quoted in sql and (is_write or not writes_only):
            raise failing_db[0]
        return execute(sql, params, many, context)

    return wrapper


def unavailable(response: Any, caplog: pytest.LogCaptureFixture, db_failure: str) -> None:
    assert response.status_code == 503 and "Location" not in response, response.content[:300]
    assert db_failure in caplog.text
    assert "closed" not in caplog.text and "closed" not in response.content.decode()


def test_the_password_step_while_the_second_factor_cannot_be_read_is_a_503_and_no_login(
    client: Client, config: MFAConfiguration, alice: Any, caplog: pytest.LogCaptureFixture, db_failure: str
) -> None:
    reset_config_memo()
    with caplog.at_level(logging.WARNING), connection.execute_wrapper(failing("duo_oidc_mfaconfiguration")):
        response = password(client, "alice")
    unavailable(response, caplog, db_failure)
    assert not authenticated(client)  # whether alice must use Duo could not be told: no login


@pytest.mark.parametrize("table", ["auth_user", "duo_oidc_mfauserstate", "duo_oidc_livesession"])
def test_duos_callback_whose_writes_fail_is_a_503_and_no_login(
    client: Client,
    duo: Any,
    config: MFAConfiguration,
    alice: Any,
    caplog: pytest.LogCaptureFixture,
    db_failure: str,
    table: str,
) -> None:
    approved = duo.approve(to_duo(client, duo, "alice"))
    with caplog.at_level(logging.WARNING), connection.execute_wrapper(failing(table, writes_only=True)):
        response = callback(client, approved)
    unavailable(response, caplog, db_failure)
    assert not authenticated(client)  # no half-made login
    assert not LiveSession.objects.exists()
    assert login(client, duo, "alice").status_code == 302  # the database is back: the next attempt works
    assert authenticated(client)


def test_the_step_up_view_while_the_second_factor_cannot_be_read_is_a_503(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, caplog: pytest.LogCaptureFixture, db_failure: str
) -> None:
    assert login(client, duo, "alice").status_code == 302
    with caplog.at_level(logging.WARNING), connection.execute_wrapper(failing("duo_oidc_mfaconfiguration")):
        response = client.get("/oidc/mfa/step-up/?next=/me/")
    unavailable(response, caplog, db_failure)
    assert authenticated(client)  # the session is not at fault
