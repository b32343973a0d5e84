"""Adversarial review of issue 15's merged work (second pass): each test fails on the code before its fix.

* A client secret that cannot be read (its variable unset after a deploy) ended every user's session at
  the next revalidation or renewal, as if the provider had refused the grant: it is this site's own
  configuration, so the session is kept and marked stale (503 on scope-protected views, as when the
  provider is down), and the log names the variable, never a value.
"""

from __future__ import annotations

import logging
import time

import pytest
from django.core.cache import cache
from django.test import Client

from django_duo_oidc.models import Provider
from tests.fakeop import FakeOP

from . import test_act_for_user as act
from .test_login_views import login, me
from .test_policy import CRM, age_session

pytestmark = pytest.mark.django_db
SECRET_VAR = "DUO_FAKE_OP_SECRET"


# 1. A missing secret is an outage of this site, not a refusal of the user's grant --------------------


@pytest.mark.parametrize("expired", [False, True], ids=["revalidation", "refresh"])
def test_a_missing_secret_keeps_the_session_and_closes_scope_views(
    client: Client,
    fake_op: FakeOP,
    provider: Provider,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    expired: bool,
) -> None:
    login(client, fake_op, scope=CRM)
    monkeypatch.delenv(SECRET_VAR)
    age_session(client, **({"expires_at": time.time() - 1} if expired else {}))
    with caplog.at_level(logging.WARNING, logger="django_duo_oidc"):
        response = client.get("/contacts/")
    assert response.status_code == 503  # before the fix: 302 to the login, the session ended
    assert SECRET_VAR not in response.content.decode()
    assert me(client)["authenticated"] is True
    assert SECRET_VAR in caplog.text  # the administrators are told which variable
    monkeypatch.setenv(SECRET_VAR, fake_op.client_secret)
    cache.clear()  # the refusal shared with the other workers for a few seconds (single_flight) has expired
    assert client.get("/contacts/").status_code == 200  # back as soon as the variable is back, no new login


@pytest.mark.urls(act.__name__)
def test_a_missing_secret_during_renewal_for_an_api_call_keeps_the_session(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_op.access_token_format = "opaque"
    act.HANDED_OUT.clear()
    login(client, fake_op, scope=CRM)
    first = act.stored_tokens(client)[0]
    act.due(client)  # due for renewal, 5 s still valid
    monkeypatch.delenv(SECRET_VAR)
    assert client.get("/t/act/token/").status_code == 200
    assert [first] == act.HANDED_OUT  # before the fix: the session ended, the user sent to log in again
    act.due(client, expires_at=time.time() - 1)
    assert client.get("/t/act/token/").status_code == 503
    assert me(client)["authenticated"] is True
    act.HANDED_OUT.clear()
