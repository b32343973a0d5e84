"""Issue 10, session side: no header switches the freshness check off, inactive users are logged out,
step-up needs a provider-asserted ``auth_time``, the login URL may only tighten, short-lived tokens,
and async class-based views behind the mixins."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import AsyncClient, Client
from django.urls import path
from django.views import View
from rest_framework.authentication import SessionAuthentication
from rest_framework.views import APIView

from django_duo_oidc.contrib.drf import DuoBearerAuthentication
from django_duo_oidc.models import Provider
from django_duo_oidc.policy.mixins import ScopesRequiredMixin
from django_duo_oidc.policy.rules import reset_policy_cache
from django_duo_oidc.resource.metadata import is_token_only_view
from django_duo_oidc.resource.views import BearerAuthMixin
from tests import urls as test_urls
from tests.conftest import StillClock, close_executor_connections, query
from tests.fakeop import FakeOP

from .test_login_views import login, me, start, token_calls
from .test_policy import CRM, age_session, settings_with
from .test_resource import issue, link

pytestmark = pytest.mark.django_db
JUNK = {"HTTP_AUTHORIZATION": "Bearer junk"}


class AsyncScopesView(ScopesRequiredMixin, View):
    required_scopes = "crm.contacts.read"

    async def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("async mixin ok")


class AsyncBearerView(BearerAuthMixin, ScopesRequiredMixin, View):
    required_scopes = "crm.contacts.read"

    async def get(self, request: HttpRequest) -> HttpResponse:
        user = await request.auser()  # type: ignore[attr-defined]
        return JsonResponse({"user": user.get_username() or None, "scopes": sorted(request.oidc.scopes)})


class BearerOnlyAPI(APIView):
    authentication_classes = [DuoBearerAuthentication]


class MixedAPI(APIView):
    authentication_classes = [DuoBearerAuthentication, SessionAuthentication]


urlpatterns = [
    *test_urls.urlpatterns,
    path("t/async-mixin/", AsyncScopesView.as_view()),
    path("t/async-bearer-mixin/", AsyncBearerView.as_view()),
]
with_async_views = pytest.mark.urls(__name__)


# 1. A bearer header never switches off the session's freshness check ---------------------------------


def test_token_only_views_are_told_apart() -> None:
    assert is_token_only_view(test_urls.bearer_only_view)
    assert is_token_only_view(test_urls.bearer_reversed_view)
    assert is_token_only_view(test_urls.BearerMixinView.as_view())
    assert is_token_only_view(BearerOnlyAPI.as_view())
    # Answers to sessions too: the session's grant must be fresh.
    assert not is_token_only_view(MixedAPI.as_view())
    assert not is_token_only_view(test_urls.BearerContactsAPI.as_view())
    assert not is_token_only_view(test_urls.ContactsAPI.as_view())
    assert not is_token_only_view(test_urls.MixinView.as_view())
    assert not is_token_only_view(test_urls.all_of_view)


@pytest.mark.parametrize("path", ["/contacts/", "/t/mixin/", "/t/drf/"])
def test_junk_bearer_header_does_not_keep_a_revoked_session(
    client: Client, fake_op: FakeOP, provider: Provider, path: str
) -> None:
    login(client, fake_op, scope=CRM)
    assert client.get(path, **JUNK).status_code == 200
    fake_op.revoke("alice")
    age_session(client)
    response = client.get(path, **JUNK)
    assert response.status_code in (302, 403), response.status_code  # DRF answers 403 to anonymous
    assert me(client) == {"authenticated": False}


def test_junk_bearer_header_does_not_keep_a_narrowed_scope(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    fake_op.narrow("alice", "openid profile email")
    age_session(client)
    assert client.get("/contacts/", **JUNK).status_code == 403


def test_junk_bearer_header_does_not_keep_an_expired_token_without_refresh(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    fake_op.issue_refresh_tokens = False
    login(client, fake_op, scope=CRM)
    age_session(client, expires_at=time.time() - 1)
    assert client.get("/contacts/", **JUNK).status_code == 302
    assert me(client) == {"authenticated": False}


def test_junk_bearer_header_does_not_defeat_a_policy_rule(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    reset_policy_cache()
    with settings_with(SCOPE_POLICY=[{"path": "/t/policy/", "scopes": ["crm.contacts.read"]}]):
        login(client, fake_op, scope=CRM)
        assert client.get("/t/policy/area/", **JUNK).status_code == 200
        fake_op.revoke("alice")
        age_session(client)
        assert client.get("/t/policy/area/", **JUNK).status_code == 302
    reset_policy_cache()


@pytest.mark.django_db(transaction=True)
def test_junk_bearer_header_on_the_async_stack(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    fake_op.revoke("alice")
    age_session(client)
    async_client = AsyncClient()
    async_client.cookies = client.cookies
    try:
        response = asyncio.run(async_client.get("/t/async/", headers={"Authorization": "Bearer junk"}))
        assert response.status_code == 302
    finally:
        close_executor_connections()
    assert me(client) == {"authenticated": False}


def test_within_the_window_a_scope_check_costs_no_provider_call(
    client: Client, fake_op: FakeOP, provider: Provider, still_clock: StillClock
) -> None:
    login(client, fake_op, scope=CRM)
    before = len(fake_op.calls)
    for _ in range(5):
        assert client.get("/contacts/", **JUNK).status_code == 200
        assert client.get("/contacts/").status_code == 200
    assert len(fake_op.calls) == before


def test_a_token_only_view_leaves_the_session_alone(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    link(provider)
    login(client, fake_op, scope=CRM)
    age_session(client)
    checked_at = client.session["duo_oidc"]["checked_at"]
    token = issue(fake_op)
    response = client.get("/t/bearer/any/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert response.json()["sub"] == "alice-sub"
    assert client.session["duo_oidc"]["checked_at"] == checked_at  # the session was not revalidated


# 2. A user deactivated in Django is logged out ---------------------------------------------------------


def test_deactivated_user_loses_the_session(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    assert me(client)["authenticated"] is True
    user = client.get("/me/").wsgi_request.user
    user.is_active = False
    user.save()
    assert me(client) == {"authenticated": False}
    response = client.get("/contacts/")
    assert response.status_code == 302 and response["Location"].startswith("/oidc/login/")


# 3. Only a provider-asserted auth_time counts for max_age ---------------------------------------------


def test_login_without_auth_time_does_not_satisfy_step_up(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.id_token_drop = {"auth_time"}
    login(client, fake_op, scope=CRM)
    assert client.get("/contacts/").status_code == 200
    response = client.get("/contacts/export/")
    assert response.status_code == 302
    params = query(response["Location"])
    assert (params["max_age"], params["prompt"]) == ("300", "login")
    # The step-up login asks for max_age, so the provider must assert auth_time (OIDC Core 3.1.2.1).
    location = client.get(response["Location"])["Location"]
    assert (query(location)["max_age"], query(location)["prompt"]) == ("300", "login")
    assert client.get("/oidc/callback/?" + fake_op.authorize(location, scope=CRM)).status_code == 502
    fake_op.id_token_drop = set()
    location = client.get(response["Location"])["Location"]
    assert client.get("/oidc/callback/?" + fake_op.authorize(location, scope=CRM))["Location"] == "/contacts/export/"
    assert client.get("/contacts/export/").status_code == 200


def test_old_session_without_auth_time_must_step_up(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    age_session(client, auth_time=None, checked_at=time.time())
    assert client.get("/contacts/export/").status_code == 302


# 4. A hostile auth_time refuses the login cleanly --------------------------------------------------------


@pytest.mark.parametrize("value", ["yesterday", True, [1], "NaN", "1e999", float("nan")], ids=repr)
def test_hostile_auth_time_refuses_the_login(client: Client, fake_op: FakeOP, provider: Provider, value: Any) -> None:
    fake_op.id_token_claims = {"auth_time": value}
    response = login(client, fake_op, scope=CRM)
    assert response.status_code == 502
    assert b"Traceback" not in response.content
    assert me(client) == {"authenticated": False}
    assert "duo_oidc" not in client.session
    assert client.get("/contacts/export/").status_code == 302


# 5. The login URL may only tighten the provider's prompt and max_age ---------------------------------------


def login_params(client: Client, qs: str) -> dict[str, str]:
    return query(start(client, "/oidc/login/?provider=duo" + qs))


def test_request_cannot_loosen_max_age(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider.max_age = 300
    provider.save()
    assert login_params(client, "&max_age=99999999")["max_age"] == "300"
    assert login_params(client, "&max_age=60")["max_age"] == "60"
    assert login_params(client, "")["max_age"] == "300"
    assert login_params(client, "&max_age=junk")["max_age"] == "300"
    pending = client.session["oidc_states"]
    assert {entry["max_age"] for entry in pending.values()} == {300, 60}


def test_request_may_set_max_age_when_the_provider_sets_none(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    assert login_params(client, "&max_age=120")["max_age"] == "120"
    assert "max_age" not in login_params(client, "")


def test_request_cannot_replace_or_drop_the_configured_prompt(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    provider.prompt = "login"
    provider.save()
    assert login_params(client, "&prompt=none")["prompt"] == "login"
    assert login_params(client, "&prompt=")["prompt"] == "login"
    assert login_params(client, "&prompt=bogus")["prompt"] == "login"
    assert login_params(client, "&prompt=consent")["prompt"].split() == ["login", "consent"]
    assert login_params(client, "&prompt=none+consent")["prompt"].split() == ["login", "consent"]


def test_prompt_none_is_never_combined(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    assert login_params(client, "&prompt=none")["prompt"] == "none"
    # OIDC Core 3.1.2.1: none with any other value is an error; the stronger values win.
    assert login_params(client, "&prompt=none+login")["prompt"] == "login"
    assert login_params(client, "&prompt=login+select_account")["prompt"].split() == ["login", "select_account"]
    assert "prompt" not in login_params(client, "&prompt=bogus")


# 6. Access tokens shorter than REFRESH_MARGIN -----------------------------------------------------------


def test_short_lived_token_is_not_refreshed_right_after_login(
    client: Client, fake_op: FakeOP, provider: Provider, still_clock: StillClock
) -> None:
    fake_op.token_overrides = {"expires_in": 20}
    login(client, fake_op, scope=CRM)
    fake_op.refresh_tokens.clear()  # a refresh would be refused and end the session
    assert client.get("/contacts/").status_code == 200
    assert token_calls(fake_op) == 1
    assert me(client)["authenticated"] is True


def test_short_lived_token_is_refreshed_after_half_its_life(
    client: Client, fake_op: FakeOP, provider: Provider, still_clock: StillClock
) -> None:
    fake_op.token_overrides = {"expires_in": 20}
    login(client, fake_op, scope=CRM)
    now = time.time()
    age_session(client, issued_at=now - 9, expires_at=now + 11, checked_at=now)
    assert client.get("/contacts/").status_code == 200
    assert token_calls(fake_op) == 1
    age_session(client, issued_at=now - 11, expires_at=now + 9, checked_at=now)
    assert client.get("/contacts/").status_code == 200
    assert token_calls(fake_op) == 2  # renewed
    data = client.session["duo_oidc"]
    assert data["expires_at"] - data["issued_at"] == pytest.approx(3600, abs=2)


def test_session_without_issue_time_uses_the_configured_margin(
    client: Client, fake_op: FakeOP, provider: Provider, still_clock: StillClock
) -> None:
    login(client, fake_op, scope=CRM)
    session = client.session
    data = dict(session["duo_oidc"])
    data.pop("issued_at", None)  # stored by an earlier version
    data["expires_at"] = time.time() + 60
    session["duo_oidc"] = data
    session.save()
    assert client.get("/contacts/").status_code == 200
    assert token_calls(fake_op) == 1
    age_session(client, expires_at=time.time() + 20, checked_at=time.time())
    assert client.get("/contacts/").status_code == 200
    assert token_calls(fake_op) == 2


# 14. Async class-based views behind the mixins ----------------------------------------------------------


@with_async_views
@pytest.mark.django_db(transaction=True)
def test_scopes_mixin_on_an_async_view(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    async_client = AsyncClient()
    try:
        assert asyncio.run(async_client.get("/t/async-mixin/")).status_code == 302
        login(client, fake_op, scope=CRM)
        async_client.cookies = client.cookies
        response = asyncio.run(async_client.get("/t/async-mixin/"))
        assert response.status_code == 200 and response.content == b"async mixin ok"
        login(client, fake_op, scope="openid")
        async_client.cookies = client.cookies
        assert asyncio.run(async_client.get("/t/async-mixin/")).status_code == 403
    finally:
        close_executor_connections()
    # Through the sync handler too (the view still runs in an event loop).
    assert client.get("/t/async-mixin/").status_code == 403


@with_async_views
@pytest.mark.django_db(transaction=True)
def test_bearer_mixin_on_an_async_view(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    link(provider)
    async_client = AsyncClient()
    try:
        assert asyncio.run(async_client.get("/t/async-bearer-mixin/")).status_code == 401
        good = {"Authorization": f"Bearer {issue(fake_op)}"}
        response = asyncio.run(async_client.get("/t/async-bearer-mixin/", headers=good))
        assert response.status_code == 200
        assert response.json() == {"user": "alice", "scopes": ["crm.contacts.read"]}
        narrow = {"Authorization": f"Bearer {issue(fake_op, scope='crm.contacts.write')}"}
        assert asyncio.run(async_client.get("/t/async-bearer-mixin/", headers=narrow)).status_code == 403
    finally:
        close_executor_connections()
