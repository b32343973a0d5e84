"""Issue 14, "the bearer user path, free": the linked user (or a miss) is remembered with the proven
token for at most the freshness window, so a seen token costs no query even when the view reads
``request.user``; each request gets its own copy of the user; a deactivation saved in this process takes
effect at once, one saved in another process within ``SHARED_CHECK_INTERVAL``, one that sends no signal
within the window; a remembered refusal costs neither a query nor a provider call."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import OperationalError, connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils.functional import SimpleLazyObject

from django_duo_oidc.models import Identity, Provider
from django_duo_oidc.resource import context as resource_context
from django_duo_oidc.resource import identities, memory
from django_duo_oidc.resource.context import authenticate, forget_linked_users
from tests.conftest import StillClock
from tests.fakeop import FakeOP

from .test_hardening_cache_outage import DownCache, use_cache
from .test_resource import API, get, issue, link

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("long_lived_memos")]


@pytest.fixture
def jwt_provider(provider: Provider) -> Provider:
    provider.access_token_validation = Provider.AccessTokenValidation.JWT
    provider.save()
    return provider


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move this process's monotonic clock ``seconds`` ahead."""
    clock = time.monotonic() + seconds
    monkeypatch.setattr(time, "monotonic", lambda: clock)


def test_a_seen_token_whose_view_reads_request_user_costs_no_query(
    client: Client, fake_op: FakeOP, jwt_provider: Provider, django_assert_num_queries: Any, still_clock: StillClock
) -> None:
    link(jwt_provider)
    token = issue(fake_op)
    assert get(client, API, token).json()["caller"] == {"sub": "alice-sub", "username": "alice"}
    fake_op.calls.clear()
    with django_assert_num_queries(0):
        # The example's /api/contacts/ reads request.user.get_username().
        response = get(client, API, token)
    assert response.json()["caller"] == {"sub": "alice-sub", "username": "alice"}
    with django_assert_num_queries(0):  # a second token of the same user: its user is remembered too
        assert get(client, API, issue(fake_op)).json()["caller"]["username"] == "alice"
    assert fake_op.calls == []


def test_a_miss_is_remembered_and_a_first_login_links_at_once(
    client: Client, fake_op: FakeOP, jwt_provider: Provider, django_assert_num_queries: Any
) -> None:
    token = issue(fake_op, sub="newcomer")
    assert get(client, "/t/bearer/any/", token).json()["user"] is None
    with django_assert_num_queries(0):
        assert get(client, "/t/bearer/any/", token).json()["user"] is None
    # The subject logs in through the browser (an identity is created): this process sees it at once.
    link(jwt_provider, sub="newcomer", username="newcomer")
    assert get(client, "/t/bearer/any/", token).json()["user"] == "newcomer"


def test_a_deactivation_takes_effect_at_once_in_this_process(
    client: Client, fake_op: FakeOP, jwt_provider: Provider
) -> None:
    user = link(jwt_provider)
    token = issue(fake_op)
    assert get(client, API, token).status_code == 200
    assert get(client, API, token).status_code == 200  # served from the memo
    user.is_active = False
    user.save()
    assert get(client, API, token).status_code == 401
    user.is_active = True
    user.save()
    assert get(client, API, token).json()["caller"]["username"] == "alice"


def test_a_deprovisioning_that_calls_forget_linked_users_takes_effect_at_once(
    client: Client, fake_op: FakeOP, jwt_provider: Provider
) -> None:
    # A directory sync deactivates with a queryset update (no signal), then calls forget_linked_users().
    user = link(jwt_provider)
    token = issue(fake_op)
    assert get(client, API, token).status_code == 200
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    forget_linked_users()
    assert get(client, API, token).status_code == 401


def test_a_deactivation_saved_in_another_process_is_seen_within_the_shared_check_interval(
    client: Client, fake_op: FakeOP, jwt_provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = link(jwt_provider)
    token = issue(fake_op)
    assert get(client, API, token).status_code == 200
    # Another process saves the user: its post_save sets the shared mark; none of its signals run here.
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    cache.set(identities.USERS_CHANGED_KEY, "set-by-another-process", None)
    later(monkeypatch, identities.SHARED_CHECK_INTERVAL + 0.01)
    assert get(client, API, token).status_code == 401


def test_a_save_in_this_process_sets_the_mark_other_processes_read(
    client: Client, fake_op: FakeOP, jwt_provider: Provider
) -> None:
    user = link(jwt_provider)
    before = cache.get(identities.USERS_CHANGED_KEY)
    user.first_name = "Alice"
    user.save()
    assert cache.get(identities.USERS_CHANGED_KEY) not in (None, before)


def test_a_login_updating_last_login_does_not_empty_every_process_memo(
    client: Client, fake_op: FakeOP, jwt_provider: Provider, django_assert_num_queries: Any
) -> None:
    user = link(jwt_provider)
    token = issue(fake_op)
    assert get(client, API, token).status_code == 200
    before = cache.get(identities.USERS_CHANGED_KEY)
    user.save(update_fields=["last_login"])  # what django.contrib.auth does at each login
    assert cache.get(identities.USERS_CHANGED_KEY) == before
    with django_assert_num_queries(0):
        assert get(client, API, token).status_code == 200
    user.is_active = False
    user.save(update_fields=["last_login", "is_active"])  # anything more is a change
    assert get(client, API, token).status_code == 401


def test_the_memo_lasts_no_longer_than_the_freshness_window(
    client: Client,
    fake_op: FakeOP,
    jwt_provider: Provider,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 20}
    link(jwt_provider)
    token = issue(fake_op)
    assert get(client, API, token).status_code == 200
    cache.set(identities.USERS_CHANGED_KEY, None)  # nothing heard from other processes
    later(monkeypatch, 20.01)
    with CaptureQueriesContext(connection) as queries:
        assert get(client, API, token).status_code == 200
    # The identity link, then the user: both read again (besides the provider list and the scope rules).
    read = [q["sql"] for q in queries if "duo_oidc_identity" in q["sql"] or 'FROM "auth_user"' in q["sql"]]
    assert len(read) == 2 and "duo_oidc_identity" in read[0] and '"auth_user"' in read[1], read


def unwrapped(user: Any) -> Any:
    """The user behind ``request.user`` (a lazy object until first read, or the remembered user's copy)."""
    return user._wrapped if isinstance(user, SimpleLazyObject) else user


def test_two_threads_never_share_one_user_instance(fake_op: FakeOP, jwt_provider: Provider) -> None:
    link(jwt_provider)
    token = issue(fake_op)
    factory = RequestFactory()

    def request() -> Any:
        return factory.get(API, HTTP_AUTHORIZATION=f"Bearer {token}")

    first = request()
    authenticate(first)
    assert first.user.get_username() == "alice"  # read once, remembered
    users: list[Any] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        req = request()
        authenticate(req)
        barrier.wait()
        req.user.get_username()  # from the memo: these threads have no database of their own
        user = unwrapped(req.user)
        user.first_name = f"changed by {threading.get_ident()}"  # a view scribbling on its request's user
        users.append(user)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(users) == 2 and users[0] is not users[1]
    assert users[0]._state is not users[1]._state
    assert unwrapped(first.user) is not users[0] and unwrapped(first.user) is not users[1]
    third = request()
    authenticate(third)
    assert third.user.first_name == ""  # what a request changed stays in that request


def test_a_user_copy_keeps_no_cache_and_no_shared_mutable_value(fake_op: FakeOP, jwt_provider: Provider) -> None:
    user = link(jwt_provider)
    user.some_list = ["a"]  # a mutable attribute, as a JSONField would hold
    user._perm_cache = {"app.perm"}  # Django's permission cache: per request
    memory.remember_user(user, time.monotonic() + 60)
    one, two = memory.user_copy(user.pk), memory.user_copy(user.pk)
    one.some_list.append("b")
    assert two.some_list == ["a"]
    assert not hasattr(two, "_perm_cache")
    assert two.pk == user.pk and two.username == "alice" and not two._state.adding


def test_a_remembered_refusal_costs_no_query_and_no_provider_call(
    client: Client, fake_op: FakeOP, jwt_provider: Provider, django_assert_num_queries: Any
) -> None:
    link(jwt_provider)
    assert get(client, API, issue(fake_op)).status_code == 200  # keys fetched, provider list read
    fake_op.sign_with = "other-key"
    forged = issue(fake_op)
    assert get(client, API, forged).status_code == 401
    fake_op.calls.clear()
    with django_assert_num_queries(0):
        response = get(client, API, forged)
    assert response.status_code == 401 and 'error="invalid_token"' in response["WWW-Authenticate"]
    assert fake_op.calls == []


def test_with_the_cache_down_a_seen_token_is_served_and_nothing_is_remembered_past_the_interval(
    client: Client, fake_op: FakeOP, jwt_provider: Provider, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    user = link(jwt_provider)
    token = issue(fake_op)
    assert get(client, API, token).status_code == 200
    use_cache(settings, DownCache)
    assert get(client, API, token).status_code == 200  # jwt mode needs no cache for a seen token
    # Another process deactivates the user; its mark cannot be read (nor written): the memo is dropped
    # every SHARED_CHECK_INTERVAL instead.
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    later(monkeypatch, identities.SHARED_CHECK_INTERVAL + 0.01)
    assert get(client, API, token).status_code == 401


def test_with_the_database_down_a_first_read_of_the_user_is_anonymous_never_a_500(
    client: Client, fake_op: FakeOP, jwt_provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    link(jwt_provider)
    token = issue(fake_op)
    assert get(client, "/t/bearer/hot/", token).status_code == 200  # the link remembered, not the user
    manager = get_user_model()._default_manager

    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(type(manager), "filter", down)
    response = get(client, "/t/bearer/any/", token)
    assert response.status_code == 200 and response.json()["user"] is None


def test_the_identity_link_is_forgotten_when_an_identity_moves(
    client: Client, fake_op: FakeOP, jwt_provider: Provider
) -> None:
    link(jwt_provider)
    token = issue(fake_op)
    assert get(client, API, token).json()["caller"]["username"] == "alice"
    bob = get_user_model().objects.create_user(username="bob")
    Identity.objects.filter(provider=jwt_provider).update(user=bob)  # no signal: like another process
    forget_linked_users()
    assert get(client, API, token).json()["caller"]["username"] == "bob"
    assert resource_context.forget_linked_users is forget_linked_users  # still importable from .context


def test_a_refusal_sent_again_is_logged_once_not_once_per_request(
    client: Client, fake_op: FakeOP, jwt_provider: Provider, caplog: pytest.LogCaptureFixture, still_clock: StillClock
) -> None:
    assert get(client, API, issue(fake_op)).status_code == 200
    fake_op.sign_with = "other-key"
    forged = issue(fake_op)
    with caplog.at_level(logging.DEBUG, logger="django_duo_oidc"):
        for _ in range(5):
            assert get(client, API, forged).status_code == 401
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.WARNING] + [logging.DEBUG] * 4
    assert forged not in caplog.text


def test_a_browser_login_does_not_empty_the_memo_but_a_staff_change_does(
    client: Client, fake_op: FakeOP, jwt_provider: Provider, django_assert_num_queries: Any
) -> None:
    user = link(jwt_provider)
    token = issue(fake_op)
    assert get(client, API, token).status_code == 200
    identity = Identity.objects.get(user=user)
    identity.save(update_fields=["last_login_at", "granted_staff"])  # what every login does
    with django_assert_num_queries(0):
        assert get(client, API, token).status_code == 200
    user.is_staff = True
    user.save(update_fields=["is_staff"])  # a group rule making the user staff: request.user must say so
    request = RequestFactory().get(API, HTTP_AUTHORIZATION=f"Bearer {token}")
    authenticate(request)
    assert request.user.is_staff


def test_an_async_view_gets_the_remembered_user_without_a_query(
    client: Client, fake_op: FakeOP, jwt_provider: Provider, django_assert_num_queries: Any
) -> None:
    link(jwt_provider)
    token = issue(fake_op)
    assert get(client, "/t/bearer/async/", token).json()["user"] == "alice"  # read once (in a thread)
    with django_assert_num_queries(0):
        assert get(client, "/t/bearer/async/", token).json()["user"] == "alice"


def test_remembered_refusal_answers_are_per_host_scheme_and_kind(
    client: Client, fake_op: FakeOP, jwt_provider: Provider, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["testserver", "api.example.test"]
    fake_op.sign_with = "other-key"
    forged = issue(fake_op)
    first = get(client, API, forged)
    other_host = get(client, API, forged, HTTP_HOST="api.example.test")
    secure = get(client, API, forged, secure=True)
    assert 'resource_metadata="http://testserver/.well-known/oauth-protected-resource"' in first["WWW-Authenticate"]
    assert 'realm="api.example.test"' in other_host["WWW-Authenticate"]
    assert "http://api.example.test/.well-known/oauth-protected-resource" in other_host["WWW-Authenticate"]
    assert "https://testserver/.well-known/" in secure["WWW-Authenticate"]
    assert get(client, API, forged, HTTP_HOST="evil.example.test").status_code == 400  # DisallowedHost
    fake_op.sign_with = "rsa"
    expired = issue(fake_op, ttl=-3600)
    answer = get(client, API, expired)
    assert answer.json() == {"error": "invalid_token", "error_description": "The access token has expired."}
    assert first.json() == {"error": "invalid_token", "error_description": "The access token is not valid."}
    assert first["Cache-Control"] == "no-store" and first["Content-Type"] == "application/json"
