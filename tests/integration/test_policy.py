"""Scope policy on every request: declared requirements, freshness, refresh, revocation, step-up."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from django_duo_oidc import signals
from django_duo_oidc.core import errors
from django_duo_oidc.login import session as stored
from django_duo_oidc.models import Provider, ScopeRule
from django_duo_oidc.policy.rules import reset_policy_cache
from django_duo_oidc.state.encryption import seal_bound
from django_duo_oidc.state.singleflight import single_flight
from tests.conftest import StillClock, captured, close_executor_connections, query
from tests.fakeop import FakeOP
from tests.settings import DUO_OIDC

from .test_login_views import login, me

pytestmark = pytest.mark.django_db
CRM = "openid profile email crm.contacts.read"


def settings_with(**values: Any) -> Any:
    return override_settings(DUO_OIDC={**DUO_OIDC, **values})


def age_session(client: Client, **changes: Any) -> None:
    """Move the stored login back in time (as if the freshness window or token lifetime had passed)."""
    session = client.session
    data = dict(session["duo_oidc"])
    data.update({"checked_at": time.time() - 3600, **changes})
    session["duo_oidc"] = data
    session.save()


@pytest.fixture
def denials() -> Any:
    with captured(signals.scope_denied) as seen:
        yield seen


# Declaring requirements ----------------------------------------------------------------------------


def test_granted_scope_opens_the_view(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    response = client.get("/contacts/")
    assert response.status_code == 200
    assert b"Ada Lovelace" in response.content


def test_anonymous_goes_to_login_with_next(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    response = client.get("/contacts/")
    assert response.status_code == 302
    assert response["Location"] == "/oidc/login/?next=/contacts/"


def test_missing_scope_is_a_403_page_naming_it(
    client: Client, fake_op: FakeOP, provider: Provider, denials: list, caplog: pytest.LogCaptureFixture
) -> None:
    login(client, fake_op, scope="openid profile email")
    with caplog.at_level(logging.WARNING, logger="django_duo_oidc"):
        response = client.get("/contacts/")
    assert response.status_code == 403
    html = response.content.decode()
    assert "<code>crm.contacts.read</code>" in html
    assert "/oidc/login/?provider=duo&amp;scope=crm.contacts.read&amp;next=%2Fcontacts%2F" in html
    assert denials[-1]["missing"] == frozenset({"crm.contacts.read"})
    assert denials[-1]["view"] == "example_project.views.contacts"
    user_pk = response.wsgi_request.user.pk
    assert f"Scope denied: user={user_pk} view=example_project.views.contacts missing=crm.contacts.read" in caplog.text


def test_request_access_reauthorizes_with_the_missing_scope(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope="openid profile email")
    location = client.get("/oidc/login/?provider=duo&scope=crm.contacts.read&next=/contacts/")["Location"]
    assert "crm.contacts.read" in query(location)["scope"].split()
    callback = fake_op.authorize(location)  # the admin granted it meanwhile
    assert client.get("/oidc/callback/?" + callback)["Location"] == "/contacts/"
    assert client.get("/contacts/").status_code == 200


def test_all_of_and_any_of(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    assert client.get("/t/any/").status_code == 200
    assert client.get("/t/all/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_async_view(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    from django.test import AsyncClient

    assert client.get("/t/async/").status_code == 302
    login(client, fake_op, scope=CRM)
    async_client = AsyncClient()
    async_client.cookies = client.cookies
    try:
        response = asyncio.run(async_client.get("/t/async/"))
        assert response.status_code == 200
        login(client, fake_op, scope="openid")
        async_client.cookies = client.cookies
        assert asyncio.run(async_client.get("/t/async/")).status_code == 403
    finally:
        close_executor_connections()


def test_raise_exception_and_login_url(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    assert client.get("/t/raise/").status_code == 403
    assert client.get("/t/custom-login/")["Location"] == "/elsewhere/?next=/t/custom-login/"


def test_mixin(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    assert client.get("/t/mixin/").status_code == 302
    login(client, fake_op, scope="openid")
    assert client.get("/t/mixin/").status_code == 403
    login(client, fake_op, scope=CRM)
    assert client.get("/t/mixin/").status_code == 200


def test_mixin_without_scopes_names_the_fix(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op)
    with pytest.raises(ImproperlyConfigured, match=r"UnconfiguredMixinView\.required_scopes"):
        client.get("/t/unconfigured/")


def test_drf_permission(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    assert client.get("/t/drf/").status_code == 403  # anonymous, session authentication
    login(client, fake_op, scope="openid")
    response = client.get("/t/drf/")
    assert response.status_code == 403
    assert response.json() == {"detail": "Missing scopes: crm.contacts.read."}
    login(client, fake_op, scope=CRM)
    assert client.get("/t/drf/").json() == {"contacts": ["ada"]}


def test_password_login_has_no_scopes(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("pw", password="pw")
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    assert client.get("/contacts/").status_code == 403
    assert me(client)["scopes"] == []


# Policy for views you don't own ---------------------------------------------------------------------


def test_policy_by_path_from_settings(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    reset_policy_cache()
    with settings_with(SCOPE_POLICY=[{"path": "/t/policy/", "scopes": ["crm.contacts.read"]}]):
        assert client.get("/t/policy/area/").status_code == 302
        login(client, fake_op, scope="openid")
        assert client.get("/t/policy/area/").status_code == 403
        assert client.get("/t/unguarded/").status_code == 200
    reset_policy_cache()


def test_policy_by_url_name_from_the_admin(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    ScopeRule.objects.create(url_name="unguarded", scopes="admin.access")
    reset_policy_cache()
    login(client, fake_op, scope=CRM)
    assert client.get("/t/unguarded/").status_code == 403
    assert client.get("/t/policy/area/").status_code == 200
    login(client, fake_op, scope="openid admin.access")
    assert client.get("/t/unguarded/").status_code == 200
    reset_policy_cache()


def test_policy_never_guards_the_login_flow(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    reset_policy_cache()
    with settings_with(SCOPE_POLICY=[{"path": "/", "scopes": ["everything"]}]):
        assert client.get("/oidc/login/?provider=duo").status_code == 302
    reset_policy_cache()


# Freshness: refresh, introspection, revocation -----------------------------------------------------


def test_within_the_window_no_provider_call(
    client: Client, fake_op: FakeOP, provider: Provider, still_clock: StillClock
) -> None:
    login(client, fake_op, scope=CRM)
    before = len(fake_op.calls)
    for _ in range(20):
        assert client.get("/contacts/").status_code == 200
    assert len(fake_op.calls) == before


def test_revoked_grant_ends_the_session_after_the_window(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    fake_op.revoke("alice")
    assert client.get("/contacts/").status_code == 200  # still inside the window
    age_session(client)
    with captured(signals.session_ended) as ended:
        response = client.get("/contacts/")
    assert response.status_code == 302 and response["Location"].startswith("/oidc/login/")
    assert me(client) == {"authenticated": False}
    assert ended and "no longer active" in ended[-1]["reason"]


def test_dropped_scope_is_enforced_from_the_next_check(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    fake_op.narrow("alice", "openid profile email")
    age_session(client)
    assert client.get("/contacts/").status_code == 403
    assert me(client)["scopes"] == ["email", "openid", "profile"]


def test_window_zero_checks_every_request(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    with settings_with(REVALIDATE_SECONDS=0):
        login(client, fake_op, scope=CRM)
        for _ in range(3):
            client.get("/contacts/")
        assert fake_op.count("token_introspection") == 3


def test_one_introspection_per_window_for_many_requests(
    client: Client, fake_op: FakeOP, provider: Provider, still_clock: StillClock
) -> None:
    login(client, fake_op, scope=CRM)
    age_session(client)
    for _ in range(10):
        client.get("/contacts/")
    assert fake_op.count("token_introspection") == 1


def test_expired_access_token_is_refreshed_and_scopes_reread(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=CRM)
    old = stored.access_token(client.session["duo_oidc"])
    fake_op.refresh_scope = "openid profile email"  # policy changed: the renewed token has fewer scopes
    age_session(client, expires_at=time.time() - 1)
    assert client.get("/contacts/").status_code == 403
    data = client.session["duo_oidc"]
    assert stored.access_token(data) != old
    assert data["expires_at"] > time.time() + 3000
    assert fake_op.count("token") == 2


def test_rotated_refresh_token_is_kept(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.rotate_refresh_tokens = True
    login(client, fake_op, scope=CRM)
    first = stored.refresh_token(client.session["duo_oidc"])
    age_session(client, expires_at=time.time() - 1)
    assert client.get("/contacts/").status_code == 200
    second = stored.refresh_token(client.session["duo_oidc"])
    assert second != first
    age_session(client, expires_at=time.time() - 1)
    assert client.get("/contacts/").status_code == 200  # the old one would have been refused


def test_refused_refresh_ends_the_session(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    fake_op.refresh_tokens.clear()
    age_session(client, expires_at=time.time() - 1)
    assert client.get("/contacts/").status_code == 302
    assert me(client) == {"authenticated": False}


def test_no_refresh_token_ends_the_session_at_expiry(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.issue_refresh_tokens = False  # Duo's generic OIDC app issues none
    login(client, fake_op, scope=CRM)
    assert client.get("/contacts/").status_code == 200
    age_session(client, expires_at=time.time() - 1)
    assert client.get("/contacts/").status_code == 302
    assert me(client) == {"authenticated": False}


@pytest.mark.parametrize("fault", ["down", "timeout", 503, "garbage"])
def test_provider_down_keeps_scope_views_closed(
    client: Client, fake_op: FakeOP, provider: Provider, fault: Any, caplog: pytest.LogCaptureFixture
) -> None:
    login(client, fake_op, scope=CRM)
    fake_op.faults["token_introspection"] = fault
    age_session(client)
    with caplog.at_level(logging.WARNING, logger="django_duo_oidc"):
        response = client.get("/contacts/")
    assert response.status_code == 503
    assert b"temporarily unavailable" in response.content
    assert "Could not revalidate" in caplog.text
    assert client.get("/me/").json()["authenticated"] is True  # views without scopes keep working


def test_provider_down_backs_off(client: Client, fake_op: FakeOP, provider: Provider, settings: Any) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "PROVIDER_DOWN_BACKOFF": 3600}  # five requests stay within it
    login(client, fake_op, scope=CRM)
    fake_op.faults["token_introspection"] = "down"
    age_session(client)
    for _ in range(5):
        client.get("/contacts/")
    assert fake_op.count("token_introspection") == 1
    fake_op.faults.clear()
    cache.clear()  # the backoff (and the shared failure) have expired
    assert client.get("/contacts/").status_code == 200


def test_provider_down_can_be_configured_open(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    with settings_with(ON_PROVIDER_DOWN="allow"):
        login(client, fake_op, scope=CRM)
        fake_op.faults["token_introspection"] = "down"
        age_session(client)
        assert client.get("/contacts/").status_code == 200


def test_introspection_about_another_user_ends_the_session(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    for state in fake_op.tokens.values():
        state["sub"] = "mallory"
    age_session(client)
    assert client.get("/contacts/").status_code == 302
    assert me(client) == {"authenticated": False}


def test_provider_without_introspection_relies_on_refresh(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider.introspect = False
    provider.save()
    login(client, fake_op, scope=CRM)
    fake_op.revoke("alice")
    age_session(client)
    assert client.get("/contacts/").status_code == 200  # nothing to ask until the token expires
    age_session(client, expires_at=time.time() - 1)
    assert client.get("/contacts/").status_code == 302  # the refresh is refused: revoked


# Step-up ----------------------------------------------------------------------------------------------


def test_step_up_sends_an_old_login_back_through_the_provider(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=CRM)
    assert client.get("/contacts/export/").status_code == 200  # auth_time a few seconds old
    age_session(client, auth_time=time.time() - 301, checked_at=time.time())
    response = client.get("/contacts/export/")
    assert response.status_code == 302
    params = query(response["Location"])
    assert params == {"max_age": "300", "prompt": "login", "next": "/contacts/export/", "provider": "duo"}
    location = client.get(response["Location"])["Location"]
    assert (query(location)["max_age"], query(location)["prompt"]) == ("300", "login")
    callback = client.get("/oidc/callback/?" + fake_op.authorize(location, scope=CRM))
    assert callback["Location"] == "/contacts/export/"
    assert client.get("/contacts/export/").status_code == 200


def test_step_up_refuses_a_provider_that_skips_reauthentication(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=CRM)
    location = client.get("/oidc/login/?provider=duo&max_age=300&prompt=login&next=/contacts/export/")["Location"]
    fake_op.id_token_claims = {"auth_time": int(time.time()) - 3600}  # the provider did not ask again
    assert client.get("/oidc/callback/?" + fake_op.authorize(location, scope=CRM)).status_code == 502


# Single flight ----------------------------------------------------------------------------------------


def test_single_flight_calls_once_for_concurrent_workers() -> None:
    calls: list[int] = []

    def slow() -> str:
        calls.append(1)
        time.sleep(0.1)
        return "result"

    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(single_flight(cache, "t:sf", slow, ttl=5, lock_timeout=5)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["result"] * 8
    assert len(calls) == 1
    cache.clear()


def test_single_flight_reads_again_after_taking_the_lock() -> None:
    """The other worker publishes and releases the lock between our read and our add (seen on Redis)."""

    class Racing:
        def __init__(self) -> None:
            self.data: dict[str, object] = {}
            self.raced = False

        def get(self, key: str, default: object = None) -> object:
            found = self.data.get(key, default)
            if key.endswith(":result") and not self.raced:
                self.raced = True
                self.data[key] = seal_bound(key, ["ok", "theirs"], 5)  # just after our read, the other worker finishes
            return found

        def add(self, key: str, value: object, timeout: float | None = None) -> bool:
            return self.data.setdefault(key, value) is value

        def set(self, key: str, value: object, timeout: float | None = None) -> None:
            self.data[key] = value

        def delete(self, key: str) -> None:
            self.data.pop(key, None)

    computed: list[int] = []
    racing = Racing()
    assert single_flight(racing, "t:race", lambda: computed.append(1) or "ours", ttl=5, lock_timeout=5) == "theirs"
    assert computed == []
    assert "t:race:lock" not in racing.data


def test_single_flight_shares_a_refusal() -> None:
    def refuse() -> str:
        raise errors.TokenEndpointError("refused", error="invalid_grant")

    with pytest.raises(errors.TokenEndpointError):
        single_flight(cache, "t:refuse", refuse, ttl=5, lock_timeout=5)
    with pytest.raises(errors.TokenEndpointError) as info:
        single_flight(cache, "t:refuse", lambda: "never", ttl=5, lock_timeout=5)
    assert info.value.error == "invalid_grant"
    cache.clear()


def test_requirement_accepts_strings_and_iterables() -> None:
    from django_duo_oidc.core.scopes import Requirement

    assert Requirement.of("a b").scopes == {"a", "b"}
    assert Requirement.of(["a b", ("c", "d e")]).scopes == {"a", "b", "c", "d", "e"}
    assert Requirement.of(("x",), any_of=True, max_age=5) == Requirement(frozenset({"x"}), True, 5)
