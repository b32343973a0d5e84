"""Issue 10 item 21: the shared cache down is an outage, not a crash.

Views without scope requirements keep working, scope views answer a 503 page, bearer views an RFC 6750
503, login and callback an error page that says they cannot go on; a failed cache read never lets a
check be skipped, and never lets every request call the provider instead.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis.exceptions
from django.core.cache.backends.locmem import LocMemCache
from django.test import Client

from django_duo_oidc.models import Provider
from django_duo_oidc.resource import registry
from tests.fakeop import FakeOP

from .test_login_views import login, start
from .test_policy import CRM, age_session
from .test_resource import issue, link

pytestmark = pytest.mark.django_db


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


class DownCache(LocMemCache):
    """A Redis that went away: every operation the app may use raises (clear works, for the fixtures)."""

    get = set = add = delete = get_many = set_many = delete_many = incr = decr = touch = has_key = _refuse  # type: ignore[assignment]


class WriteOnlyFailsCache(LocMemCache):
    """Reads work, writes fail (a read replica, a full or read-only Redis)."""

    set = add = delete = set_many = delete_many = incr = decr = touch = _refuse  # type: ignore[assignment]


class PublishFailsCache(LocMemCache):
    """Everything works but storing values: the lock is taken, the result cannot be shared."""

    set = _refuse  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _local_memory_cache(settings: Any) -> None:
    """Every test here starts on a working local-memory cache (also on the Redis leg), so that switching to
    a failing twin at the same location keeps what the login stored (discovery, JWKS)."""
    settings.CACHES = {"default": {"BACKEND": f"{LocMemCache.__module__}.LocMemCache", "LOCATION": "duo-oidc-tests"}}


def use_cache(settings: Any, backend: type[LocMemCache]) -> None:
    # The test settings' location: what the login put there (discovery, JWKS) is still readable.
    settings.CACHES = {"default": {"BACKEND": f"{__name__}.{backend.__name__}", "LOCATION": "duo-oidc-tests"}}


def provider_calls(op: FakeOP) -> int:
    return len(op.calls)


@pytest.fixture
def client() -> Client:
    # An exception escaping a view must fail the test loudly, never become a page.
    return Client(raise_request_exception=True)


# Session views ------------------------------------------------------------------------------------


def test_a_view_without_scopes_keeps_working_when_the_check_is_due(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    login(client, fake_op, scope=CRM)
    age_session(client)
    use_cache(settings, DownCache)
    before = provider_calls(fake_op)
    response = client.get("/me/")
    assert response.status_code == 200
    assert response.json()["authenticated"] is True
    assert provider_calls(fake_op) == before  # no single-flight, so no provider call either


def test_a_scope_view_answers_503_when_the_check_is_due(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    login(client, fake_op, scope=CRM)
    age_session(client)
    use_cache(settings, DownCache)
    before = provider_calls(fake_op)
    for _ in range(3):
        response = client.get("/contacts/")
        assert response.status_code == 503
        assert b"Ada Lovelace" not in response.content
    assert provider_calls(fake_op) == before
    assert client.get("/me/").json()["authenticated"] is True  # the session is kept for later


def test_a_scope_view_within_the_window_needs_no_cache(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    login(client, fake_op, scope=CRM)
    use_cache(settings, DownCache)
    assert client.get("/contacts/").status_code == 200  # confirmed moments ago, read from the session


def test_an_expired_token_is_not_refreshed_without_the_cache(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    """Without the single-flight lock two workers could both spend a rotating refresh token."""
    fake_op.rotate_refresh_tokens = True
    login(client, fake_op, scope=CRM)
    age_session(client, expires_at=time.time() - 1)
    use_cache(settings, DownCache)
    before = sum(1 for _m, name in fake_op.calls if name == "token")
    assert client.get("/contacts/").status_code == 503
    assert sum(1 for _m, name in fake_op.calls if name == "token") == before


def test_a_cache_that_cannot_store_the_down_flag_does_not_crash(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    """The provider fails and the cache refuses the write of the down flag: still a clean answer."""
    login(client, fake_op, scope=CRM)
    age_session(client)
    use_cache(settings, WriteOnlyFailsCache)
    fake_op.faults["token_introspection"] = "down"
    assert client.get("/contacts/").status_code == 503
    assert client.get("/me/").status_code == 200


def test_a_refresh_whose_result_cannot_be_shared_is_kept(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    """The provider already rotated the refresh token: losing its answer would end the grant."""
    fake_op.rotate_refresh_tokens = True
    # Distinct access tokens within one second (the fake's JWTs minted in one second are equal, and an
    # unshared introspection would keep its lock for lock_timeout, by design).
    fake_op.access_token_format = "opaque"
    login(client, fake_op, scope=CRM)
    use_cache(settings, PublishFailsCache)
    age_session(client, expires_at=time.time() - 1)
    assert client.get("/contacts/").status_code == 200
    age_session(client, expires_at=time.time() - 1)
    assert client.get("/contacts/").status_code == 200  # the rotated refresh token was stored
    assert client.get("/me/").json()["authenticated"] is True


# Bearer views --------------------------------------------------------------------------------------


def test_a_bearer_view_answers_503_temporarily_unavailable(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    link(provider)
    token = issue(fake_op)
    use_cache(settings, DownCache)
    response = client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response["Retry-After"]) >= 1
    assert response["Cache-Control"] == "no-store"


def test_a_bearer_view_in_jwt_mode_answers_503_too(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    provider.access_token_validation = Provider.AccessTokenValidation.JWT
    provider.save()
    link(provider)
    token = issue(fake_op)
    use_cache(settings, DownCache)
    response = client.get("/t/bearer/drf/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 503
    assert client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 503


# Login and callback --------------------------------------------------------------------------------


def test_login_says_it_cannot_start(client: Client, fake_op: FakeOP, provider: Provider, settings: Any) -> None:
    use_cache(settings, DownCache)
    response = client.get("/oidc/login/?provider=duo&next=/me/")
    assert response.status_code == 503
    assert "Location" not in response
    assert b"cannot start" in response.content


def test_callback_answers_503_and_redeems_nothing(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    location = start(client)
    use_cache(settings, DownCache)
    before = sum(1 for _m, name in fake_op.calls if name == "token")
    response = client.get("/oidc/callback/?" + fake_op.authorize(location))
    assert response.status_code == 503
    assert sum(1 for _m, name in fake_op.calls if name == "token") == before
    assert client.get("/me/").json() == {"authenticated": False}


def test_a_bearer_token_due_for_introspection_answers_503(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    """The token was proven with the cache up; its next introspection finds the cache down."""
    link(provider)
    token = issue(fake_op)
    assert client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0}
    use_cache(settings, DownCache)
    registry._registry.expires = 0.0  # providers re-read now, not ENABLED_TTL later (the token stays proven)
    before = provider_calls(fake_op)
    response = client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert provider_calls(fake_op) == before


def test_with_on_provider_down_allow_a_proven_bearer_token_is_served_stale(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    """The admin's opt-in for an unreachable provider holds for an unreachable cache; no 500 on the way."""
    link(provider)
    token = issue(fake_op)
    assert client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0, "ON_PROVIDER_DOWN": "allow"}
    use_cache(settings, DownCache)
    registry._registry.expires = 0.0
    assert client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


# The mechanism -------------------------------------------------------------------------------------


def test_every_backend_error_becomes_cache_unavailable(settings: Any) -> None:
    from django_duo_oidc.core.errors import CacheUnavailable, ProviderUnavailable
    from django_duo_oidc.state.cache import shared_cache

    use_cache(settings, DownCache)
    cache = shared_cache()
    for operation in (
        lambda: cache.get("k"),
        lambda: cache.set("k", 1, 5),
        lambda: cache.add("k", 1, 5),
        lambda: cache.delete("k"),
        lambda: cache.get_many(["k"]),
        lambda: cache.incr("k"),
    ):
        with pytest.raises(CacheUnavailable) as info:
            operation()
        assert isinstance(info.value, ProviderUnavailable)
        assert (info.value.status_code, info.value.error) == (503, "temporarily_unavailable")


def test_single_flight_computes_nothing_without_its_lock(settings: Any) -> None:
    from django_duo_oidc.core.errors import CacheUnavailable
    from django_duo_oidc.state.cache import shared_cache
    from django_duo_oidc.state.singleflight import single_flight

    use_cache(settings, WriteOnlyFailsCache)
    computed: list[int] = []
    with pytest.raises(CacheUnavailable):
        single_flight(shared_cache(), "t:nolock", lambda: computed.append(1) or "x", ttl=5, lock_timeout=1)
    assert computed == []
    use_cache(settings, PublishFailsCache)
    assert single_flight(shared_cache(), "t:nopublish", lambda: "kept", ttl=5, lock_timeout=1) == "kept"


@pytest.mark.parametrize("path", ["/t/drf/", "/t/async/", "/t/mixin/", "/contacts/export/"])
def test_every_kind_of_scope_view_answers_503(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any, path: str
) -> None:
    login(client, fake_op, scope=CRM)
    age_session(client)
    use_cache(settings, DownCache)
    assert client.get(path).status_code == 503


def test_a_scope_policy_rule_answers_503(client: Client, fake_op: FakeOP, provider: Provider, settings: Any) -> None:
    from django_duo_oidc.policy.rules import reset_policy_cache

    settings.DUO_OIDC = {**settings.DUO_OIDC, "SCOPE_POLICY": [{"path": "/t/policy/", "scopes": ["crm.contacts.read"]}]}
    reset_policy_cache()
    try:
        login(client, fake_op, scope=CRM)
        age_session(client)
        use_cache(settings, DownCache)
        assert client.get("/t/policy/area/").status_code == 503
        assert client.get("/t/unguarded/").status_code == 200
    finally:
        reset_policy_cache()


def test_a_result_that_could_not_be_shared_is_not_computed_again_by_a_waiting_worker() -> None:
    """The lock is left to expire: a waiting worker gives up (503, stale) rather than spend the same
    refresh token a second time."""
    from django_duo_oidc.core.errors import CacheUnavailable, ProviderUnavailable
    from django_duo_oidc.state.singleflight import single_flight

    class NoStoring:
        def __init__(self) -> None:
            self.data: dict[str, object] = {}

        def get(self, key: str, default: object = None) -> object:
            return self.data.get(key, default)

        def add(self, key: str, value: object, timeout: float | None = None) -> bool:
            if key in self.data:
                return False
            self.data[key] = value
            return True

        def set(self, key: str, value: object, timeout: float | None = None) -> None:
            raise CacheUnavailable()

        def delete(self, key: str) -> None:
            self.data.pop(key, None)

    cache = NoStoring()
    computed: list[int] = []
    assert single_flight(cache, "t:once", lambda: computed.append(1) or "first", ttl=5, lock_timeout=0.2) == "first"
    with pytest.raises(ProviderUnavailable):
        single_flight(cache, "t:once", lambda: computed.append(1) or "second", ttl=5, lock_timeout=0.2)
    assert computed == [1]
