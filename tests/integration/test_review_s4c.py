"""Review s4c: a login whose writes fail at a callback while the project runs every view in a
transaction (``ATOMIC_REQUESTS``). A failed ``save()`` marks the request's transaction for rollback, so
the views' flush of the session fails inside the view (suppressed); the answer must still be the 503
page and no login: the rollback undoes the login's writes, and a 5xx response saves no session and sets
no cookie, so the browser keeps its old session, which holds no login."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import user_logged_in, user_logged_out
from django.db import connection
from django.test import Client

from django_duo_oidc.mfa import session as mfa_session
from django_duo_oidc.models import LiveSession, MFAConfiguration, Provider
from tests.conftest import captured
from tests.fakeop import FakeOP

from .test_callback_writes_fail import failing_writes_to
from .test_login_views import login, me, start
from .test_mfa_database_fails import _clean_state as _clean_state
from .test_mfa_database_fails import alice as alice
from .test_mfa_database_fails import config as config
from .test_mfa_database_fails import duo as duo
from .test_mfa_database_fails import failing
from .test_mfa_login import authenticated, callback, to_duo
from .test_mfa_login import login as login_with_duo

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def atomic_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)


@pytest.mark.parametrize("returning", [False, True], ids=["new user", "returning user"])
@pytest.mark.parametrize("table", ["auth_user", "duo_oidc_identity", "duo_oidc_livesession"])
@pytest.mark.usefixtures("atomic_requests")
def test_a_failed_login_write_under_atomic_requests_is_the_503_page_and_no_login(
    client: Client, fake_op: FakeOP, provider: Provider, db_failure: str, table: str, returning: bool
) -> None:
    if returning:  # the user exists: its writes are updates (last_login after the session key rotated)
        login(client, fake_op)
        client.logout()
    callback = "/oidc/callback/?" + fake_op.authorize(start(client))
    with connection.execute_wrapper(failing_writes_to(table)):
        response = client.get(callback)
    assert response.status_code == 503, response.content
    assert b"cannot complete the sign-in" in response.content
    assert me(client)["authenticated"] is False
    assert not LiveSession.objects.exists()
    login(client, fake_op)  # the database is back: the next attempt completes
    assert me(client)["authenticated"] is True


@pytest.mark.urls("tests.integration.test_mfa_database_fails")
@pytest.mark.parametrize("table", ["auth_user", "duo_oidc_mfauserstate", "duo_oidc_livesession"])
@pytest.mark.usefixtures("atomic_requests", "_clean_state")
def test_duos_callback_whose_writes_fail_under_atomic_requests_is_the_503_page_and_no_login(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, db_failure: str, table: str
) -> None:
    approved = duo.approve(to_duo(client, duo, "alice"))
    with connection.execute_wrapper(failing(table, writes_only=True)):
        response = callback(client, approved)
    assert response.status_code == 503 and "Location" not in response, response.content[:300]
    assert not authenticated(client)
    assert not LiveSession.objects.exists()
    assert login_with_duo(client, duo, "alice").status_code == 302
    assert authenticated(client)


@pytest.mark.urls("tests.integration.test_mfa_database_fails")
@pytest.mark.usefixtures("_clean_state")
def test_a_step_up_whose_write_fails_at_duos_callback_is_a_503_and_keeps_the_login(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, db_failure: str
) -> None:
    """A failed step-up does not log the user out (test_mfa_login), a failing database neither: the login
    was whole before the step-up, its index row stays, and the step-up's mark is not saved (a 5xx saves
    no session)."""
    assert login_with_duo(client, duo, "alice").status_code == 302
    key = client.session.session_key
    passed_before = client.session[mfa_session.PASSED_KEY]
    authorize = client.get("/oidc/mfa/step-up/?next=/me/")["Location"]
    with connection.execute_wrapper(failing("duo_oidc_mfauserstate", writes_only=True)):  # its one write
        response = callback(client, duo.approve(authorize))
    assert response.status_code == 503 and "Location" not in response, response.content[:300]
    assert authenticated(client)
    assert client.session.session_key == key
    assert client.session[mfa_session.PASSED_KEY] == passed_before
    assert LiveSession.objects.filter(user=alice).count() == 1


@pytest.mark.parametrize("table", ["duo_oidc_livesession"])
def test_a_login_undone_at_the_oidc_callback_sends_user_logged_out_after_its_user_logged_in(
    client: Client, fake_op: FakeOP, provider: Provider, db_failure: str, table: str
) -> None:
    """auth.login() sent user_logged_in before the index row's write failed: the receivers that saw the
    login (audit trails, per-session state) see it end."""
    callback = "/oidc/callback/?" + fake_op.authorize(start(client))
    failing_writes = connection.execute_wrapper(failing_writes_to(table))
    with captured(user_logged_in) as ins, captured(user_logged_out) as outs, failing_writes:
        assert client.get(callback).status_code == 503
    assert len(ins) == 1 and len(outs) == 1 and outs[0]["user"] == ins[0]["user"]


@pytest.mark.urls("tests.integration.test_mfa_database_fails")
@pytest.mark.usefixtures("_clean_state")
def test_a_login_undone_at_duos_callback_sends_user_logged_out_after_its_user_logged_in(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, db_failure: str
) -> None:
    approved = duo.approve(to_duo(client, duo, "alice"))
    failing_writes = connection.execute_wrapper(failing("duo_oidc_mfauserstate", writes_only=True))
    with captured(user_logged_in) as ins, captured(user_logged_out) as outs, failing_writes:
        assert callback(client, approved).status_code == 503
    assert len(ins) == 1 and len(outs) == 1 and outs[0]["user"] == alice


def test_a_login_that_fails_before_auth_login_sends_no_user_logged_out(
    client: Client, fake_op: FakeOP, provider: Provider, db_failure: str
) -> None:
    callback = "/oidc/callback/?" + fake_op.authorize(start(client))
    failing_writes = connection.execute_wrapper(failing_writes_to("auth_user"))
    with captured(user_logged_in) as ins, captured(user_logged_out) as outs, failing_writes:
        assert client.get(callback).status_code == 503
    assert not ins and not outs
