"""The step-up ticket's leftovers (an adversarial review of ``core.step_up``, low severity): each test
failed before its fix unless it says it pins what already held.

- Stacked ``@duo_required(max_age=...)`` checks of one request: the first took Duo's ticket, the second
  found none and sent the user to Duo again, forever for ``max_age=0``. Every check of a request now sees
  the same verdict (a per-request memo, as ``request.oidc`` keeps one for the provider's ticket).
- Two requests of one session that both loaded it before either saved it both found the ticket and both
  passed: "once" held per saved session, not per request. The ticket now also has to be claimed in the
  shared cache (an atomic add, as the login state is), and fails closed when the cache cannot say.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View

from django_duo_oidc.core import step_up
from django_duo_oidc.mfa.decorators import DuoRequiredMixin, duo_required
from django_duo_oidc.models import Provider
from tests.fakeop import FakeOP

from .test_login_views import login
from .test_mfa_login import _clean_state, alice, callback, config, duo  # noqa: F401 (fixtures)
from .test_mfa_login import login as mfa_login
from .test_policy import CRM
from .test_step_up_max_age_zero import step_up_through_duo, step_up_through_the_provider
from .test_step_up_max_age_zero import urlpatterns as zero_urls

pytestmark = [pytest.mark.django_db]


@duo_required(max_age=0)
@duo_required(max_age=0)
def duo_twice(request: HttpRequest) -> HttpResponse:
    return HttpResponse("duo twice ok")


@duo_required(max_age=0)
@duo_required(max_age=0)
async def duo_twice_async(request: HttpRequest) -> HttpResponse:
    return HttpResponse("duo twice async ok")


@method_decorator(duo_required(max_age=0), name="get")
class DuoMixinAndDecorator(DuoRequiredMixin, View):
    duo_max_age = 0

    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("duo mixin ok")


urlpatterns = [
    *zero_urls,
    path("t/followups/duo-twice/", duo_twice),
    path("t/followups/duo-twice-async/", duo_twice_async),
    path("t/followups/duo-mixin/", DuoMixinAndDecorator.as_view()),
]
here = pytest.mark.urls(__name__)


# 2. Stacked Duo checks of one request see one verdict ---------------------------------------------


@here
@pytest.mark.usefixtures("config", "alice")
@pytest.mark.parametrize("url", ["/t/followups/duo-twice/", "/t/followups/duo-twice-async/", "/t/followups/duo-mixin/"])
def test_stacked_duo_checks_of_one_request_all_see_the_step_up(client: Client, duo: Any, url: str) -> None:  # noqa: F811
    mfa_login(client, duo, "alice")
    assert step_up_through_duo(client, duo, url)["Location"] == url
    response = client.get(url)
    # Was a 302 back to Duo: the outer check took the ticket, the inner one found none.
    assert response.status_code == 200, response.get("Location")
    assert client.get(url).status_code == 302  # still once: the next request asks again


# 3. Two requests that loaded the session before either saved it ---------------------------------


def parallel(client: Client) -> Callable[[], None]:
    """Snapshot the client's session as stored now; calling the result stores that snapshot again, as a
    second request that loaded the session before the first one saved it would save it."""
    engine = import_module(settings.SESSION_ENGINE)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    snapshot = engine.SessionStore(session_key=key).load()

    def restore() -> None:
        store = engine.SessionStore(session_key=key)
        store.update(snapshot)
        store.save()

    return restore


@here
def test_two_parallel_requests_cannot_both_use_one_provider_ticket(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=CRM)
    assert step_up_through_the_provider(client, fake_op, "/t/zero/")["Location"] == "/t/zero/"
    second_request_loaded = parallel(client)
    assert client.get("/t/zero/").status_code == 200
    second_request_loaded()  # the session as the parallel request found it: the ticket still in it
    response = client.get("/t/zero/")
    assert response.status_code == 302, "the ticket was used twice"  # was 200
    assert response["Location"].startswith("/oidc/login/?")


@here
@pytest.mark.usefixtures("config", "alice")
def test_two_parallel_requests_cannot_both_use_one_duo_ticket(client: Client, duo: Any) -> None:  # noqa: F811
    mfa_login(client, duo, "alice")
    assert step_up_through_duo(client, duo, "/t/mfa/zero/")["Location"] == "/t/mfa/zero/"
    second_request_loaded = parallel(client)
    assert client.get("/t/mfa/zero/").status_code == 200
    second_request_loaded()
    response = client.get("/t/mfa/zero/")
    assert response.status_code == 302, "the ticket was used twice"  # was 200
    assert response["Location"].startswith("/oidc/mfa/step-up/")


@here
def test_the_cache_down_gives_nothing_from_the_ticket_and_no_500(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    """Fail closed: the ticket cannot be claimed, so the page asks for the step-up again (whose login
    then says the cache is unreachable); the ticket stays for a retry once the cache is back."""
    login(client, fake_op, scope=CRM)
    assert step_up_through_the_provider(client, fake_op, "/t/zero/")["Location"] == "/t/zero/"
    caches = settings.CACHES
    settings.CACHES = {
        "default": {"BACKEND": "tests.integration.test_hardening_cache_outage.DownCache", "LOCATION": "down"}
    }
    response = client.get("/t/zero/")
    assert response.status_code == 302 and response["Location"].startswith("/oidc/login/?")
    settings.CACHES = caches
    assert client.get("/t/zero/").status_code == 200


class _Claims:
    def __init__(self) -> None:
        self.used: set[str] = set()

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        if key in self.used:
            return False
        self.used.add(key)
        return True


def test_a_claimed_ticket_passes_once_and_an_unclaimable_one_never() -> None:
    claims = _Claims()
    first: dict[str, Any] = {}
    step_up.grant(first, path="/a/", max_age=0, now=1000.0)
    second = copy.deepcopy(first)  # the same session as a parallel request loaded it
    assert step_up.take(first, path="/a/", max_age=0, now=1001.0, claims=claims) == 0
    assert step_up.take(second, path="/a/", max_age=0, now=1001.0, claims=claims) is None
    assert step_up.KEY in second  # the loser removes nothing: its session saves what it loaded
    # A ticket without its id (stored before tickets had one) cannot be claimed, so it opens nothing.
    legacy = {step_up.KEY: {"path": "/a/", "max_age": 0, "until": 2000.0}}
    assert step_up.take(legacy, path="/a/", max_age=0, now=1001.0, claims=claims) is None
