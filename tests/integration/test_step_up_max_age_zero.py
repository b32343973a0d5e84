"""``max_age=0`` ("authenticate again for this visit") and other requirements shorter than the round trip.

``max_age`` is measured from the provider's (or Duo's) ``auth_time``; the redirect back to the page takes a
moment, so ``@scopes_required(max_age=0)`` and ``@duo_required(max_age=0)`` sent the user through the
provider again and again, forever (a leftover noted at the end of issue 13). A step-up just completed now
counts once for the page it was for (``core.step_up``): the next request to that page passes, the one
after steps up again; another page, a stricter requirement, or a late return get nothing from it.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from django_duo_oidc.core import step_up
from django_duo_oidc.mfa.decorators import duo_required
from django_duo_oidc.models import MFAConfiguration, Provider
from django_duo_oidc.policy.decorators import scopes_required
from tests.conftest import StillClock
from tests.fakeop import FakeOP

from .test_login_views import login
from .test_mfa_login import _clean_state, alice, callback, config, duo  # noqa: F401 (fixtures)
from .test_mfa_login import login as mfa_login
from .test_mfa_login import urlpatterns as mfa_urls
from .test_policy import CRM

pytestmark = [pytest.mark.django_db]


@scopes_required("crm.contacts.read", max_age=0)
def every_visit(request: HttpRequest) -> HttpResponse:
    return HttpResponse("every visit ok")


@scopes_required("crm.contacts.read", max_age=0)
def other_every_visit(request: HttpRequest) -> HttpResponse:
    return HttpResponse("other ok")


@duo_required(max_age=0)
def duo_every_visit(request: HttpRequest) -> HttpResponse:
    return HttpResponse("duo every visit ok")


urlpatterns = [
    *mfa_urls,
    path("t/zero/", every_visit),
    path("t/zero-other/", other_every_visit),
    path("t/mfa/zero/", duo_every_visit),
]
here = pytest.mark.urls(__name__)


def step_up_through_the_provider(client: Client, fake_op: FakeOP, url: str) -> Any:
    response = client.get(url)
    assert response.status_code == 302
    login_url = response["Location"]
    assert urlsplit(login_url).path == "/oidc/login/"
    return client.get("/oidc/callback/?" + fake_op.authorize(client.get(login_url)["Location"], scope=CRM))


def step_up_through_duo(client: Client, fake_duo: Any, url: str) -> Any:
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/oidc/mfa/step-up/")
    return callback(client, fake_duo.approve(client.get(response["Location"])["Location"]))


@here
def test_max_age_zero_opens_the_page_once_after_the_step_up(
    client: Client, fake_op: FakeOP, provider: Provider, still_clock: StillClock
) -> None:
    login(client, fake_op, scope=CRM)
    back = step_up_through_the_provider(client, fake_op, "/t/zero/")
    assert back["Location"] == "/t/zero/"
    response = client.get("/t/zero/")
    assert response.status_code == 200, response.get("Location")  # was a 302 back to the provider, forever
    # Once: the next visit asks again.
    assert client.get("/t/zero/").status_code == 302


@here
def test_the_step_up_counts_only_for_the_page_it_was_for(
    client: Client, fake_op: FakeOP, provider: Provider, still_clock: StillClock
) -> None:
    login(client, fake_op, scope=CRM)
    assert step_up_through_the_provider(client, fake_op, "/t/zero/")["Location"] == "/t/zero/"
    assert client.get("/t/zero-other/").status_code == 302
    assert client.get("/t/zero/").status_code == 200


@here
def test_a_late_return_gets_nothing_from_the_step_up(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    login(client, fake_op, scope=CRM)
    assert step_up_through_the_provider(client, fake_op, "/t/zero/")["Location"] == "/t/zero/"
    later = time.time() + step_up.GRACE + 1
    monkeypatch.setattr(time, "time", lambda: later)
    assert client.get("/t/zero/").status_code == 302


@here
def test_a_login_asked_for_a_longer_max_age_does_not_count_for_a_shorter_one(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=CRM)
    # A login asked for max_age=300 (the export's step-up), then the max_age=0 page: it must ask again.
    start = client.get("/oidc/login/?provider=duo&max_age=300&prompt=login&next=/t/zero/")["Location"]
    assert client.get("/oidc/callback/?" + fake_op.authorize(start, scope=CRM))["Location"] == "/t/zero/"
    assert client.get("/t/zero/").status_code == 302


@here
def test_an_ordinary_login_gives_no_step_up_ticket(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, url="/oidc/login/?provider=duo&next=/t/zero/", scope=CRM)
    assert client.get("/t/zero/").status_code == 302


@here
def test_duo_required_max_age_zero_opens_the_page_once_after_the_step_up(
    client: Client,
    duo: Any,  # noqa: F811 (the fixture)
    config: MFAConfiguration,  # noqa: F811
    alice: Any,  # noqa: F811
) -> None:
    mfa_login(client, duo, "alice")
    assert step_up_through_duo(client, duo, "/t/mfa/zero/")["Location"] == "/t/mfa/zero/"
    response = client.get("/t/mfa/zero/")
    assert response.status_code == 200, response.get("Location")  # was a 302 back to Duo, forever
    assert client.get("/t/mfa/zero/").status_code == 302


def test_the_ticket_is_single_use_path_bound_and_no_looser_than_asked() -> None:
    record: dict[str, Any] = {}
    step_up.grant(record, path="/a/", max_age=60, now=1000.0)
    assert not step_up.take(record, path="/b/", max_age=60, now=1001.0)
    assert not step_up.take(record, path="/a/", max_age=30, now=1001.0)  # stricter than the login was asked
    assert not step_up.take(record, path="/a/", max_age=60, now=1000.0 + step_up.GRACE + 0.1)
    assert step_up.take(record, path="/a/", max_age=60, now=1001.0)
    assert not step_up.take(record, path="/a/", max_age=60, now=1001.0)
    for forged in ({"step_up": "x"}, {"step_up": {"path": "/a/", "until": "later"}}, {"step_up": {"path": "/a/"}}):
        assert not step_up.take(dict(forged), path="/a/", max_age=60, now=1.0)
