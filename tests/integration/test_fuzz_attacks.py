"""Fuzz tests with the attack shapes of issue 10, seeded so a failure replays exactly.

- every shape of ``Authorization`` header (junk, other schemes, odd spacing and case, a *valid* token of
  the same user) sent to session views whose grant was revoked: the session is never kept alive by it;
- hostile ``error`` values on the callback: never a 500, never a forged log line, never echoed raw;
- hostile ``auth_time`` values in ID tokens: the login is refused cleanly, never a 500;
- a cache that fails at random on any operation, over a whole run of logins, scope checks, bearer calls
  and refreshes: never a 500, never a session or a token trusted unchecked.

Forged tokens in bulk, with the memory they leave behind measured, are in ``test_hardening_bearer``.
"""

from __future__ import annotations

import logging
import random
import string
import time
from typing import Any

import pytest
import redis
from django.core.cache.backends.locmem import LocMemCache
from django.test import Client

from django_duo_oidc.models import Provider
from django_duo_oidc.policy.rules import reset_policy_cache
from tests.fakeop import FakeOP

from .test_login_views import login, me, start
from .test_policy import CRM, age_session, settings_with
from .test_resource import issue

pytestmark = pytest.mark.django_db

HOSTILE = string.printable + "\u00e9\u2603\x00\x1b\x7f\x85\u2028\u2029\u202e\ufeff"


def _bearer_headers(rng: random.Random, op: FakeOP) -> list[str]:
    valid = issue(op, sub="alice", scope="openid profile email crm.contacts.read")
    headers = [
        "Bearer junk",
        "bearer junk",
        "BEARER junk",
        "Bearer  junk",
        "Bearer\tjunk",
        " Bearer junk",
        "Bearer",
        "Bearer ",
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer " + valid,  # a valid token of the same user: session views never read it
        "Bearer " + valid[:-4],
        "Bearer " + "A" * 20_000,
    ]
    headers += ["Bearer " + "".join(rng.choice(HOSTILE) for _ in range(rng.randint(1, 60))) for _ in range(24)]
    headers += ["".join(rng.choice(HOSTILE) for _ in range(rng.randint(1, 30))) for _ in range(8)]
    return headers


def test_no_authorization_header_keeps_a_revoked_session_alive(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    rng = random.Random(10_1)
    paths = ["/contacts/", "/t/mixin/", "/t/drf/", "/t/policy/area/", "/t/async/"]
    reset_policy_cache()
    with settings_with(SCOPE_POLICY=[{"path": "/t/policy/", "scopes": [CRM]}]):
        for n, header in enumerate(_bearer_headers(rng, fake_op)):
            client.cookies.clear()
            login(client, fake_op, scope=CRM)
            fake_op.revoke("alice")
            age_session(client)
            path = paths[n % len(paths)]
            response = client.get(path, HTTP_AUTHORIZATION=header)
            # Logged out (redirect to login) or refused; DRF answers 403 to the anonymous user it now sees.
            assert response.status_code in (302, 403), (path, header[:40], response.status_code)
            assert me(client) == {"authenticated": False}, (path, header[:40])
    reset_policy_cache()


def test_hostile_callback_errors_never_500_forge_a_log_line_or_show_raw(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(10_20)
    values = ["x\r\nWARNING forged", "\u2028forged", "a" * 10_000, "%0Aforged", "<script>alert(1)</script>"]
    values += ["".join(rng.choice(HOSTILE) for _ in range(rng.randint(1, 120))) for _ in range(60)]
    caplog.set_level(logging.INFO, logger="django_duo_oidc")
    for value in values:
        authorize_url = start(client)
        state = dict(p.split("=", 1) for p in authorize_url.split("?", 1)[1].split("&"))["state"]
        response = client.get("/oidc/callback/", {"state": state, "error": value, "iss": fake_op.issuer})
        assert response.status_code in (400, 403), (value[:40], response.status_code)
        assert client.session.get("_auth_user_id") is None
        page = response.content.decode()
        if any(not (c.isprintable() and c.isascii()) for c in value) or len(value) > 64:
            assert value not in page
    for record in caplog.records:
        message = record.getMessage()
        assert "\n" not in message and "\r" not in message, message[:120]
        assert "\u2028" not in message and "\x1b" not in message, message[:120]


@pytest.mark.parametrize(
    "auth_time",
    ["yesterday", "", "1700000000", True, False, None, [], [1700000000], {"t": 1}, 10**400, -(10**400), "NaN"],
)
def test_hostile_auth_time_is_refused_never_a_500(
    client: Client, fake_op: FakeOP, provider: Provider, auth_time: Any
) -> None:
    fake_op.id_token_claims["auth_time"] = auth_time
    response = login(client, fake_op, scope=CRM)
    assert response.status_code == 502, response.status_code
    assert me(client) == {"authenticated": False}
    # The step-up view sends an anonymous visitor to log in: nothing to compare, nothing to crash on.
    assert client.get("/contacts/export/").status_code == 302


class FlakyCache(LocMemCache):
    """A cache that fails at random (seeded), on any operation the app uses: a Redis under strain."""

    rng = random.Random(0)
    failure_rate = 0.0

    def _maybe_fail(self) -> None:
        if FlakyCache.rng.random() < FlakyCache.failure_rate:
            raise redis.exceptions.ConnectionError("Error 104 while reading from socket: connection reset")


for _name in ("get", "set", "add", "delete", "get_many", "set_many", "delete_many", "incr", "decr", "touch"):

    def _flaky(self: FlakyCache, *args: Any, _op: str = _name, **kwargs: Any) -> Any:
        self._maybe_fail()
        return getattr(LocMemCache, _op)(self, *args, **kwargs)

    setattr(FlakyCache, _name, _flaky)


@pytest.fixture
def flaky_cache(settings: Any) -> Any:
    settings.CACHES = {"default": {"BACKEND": f"{__name__}.FlakyCache", "LOCATION": "duo-oidc-fuzz"}}
    FlakyCache.rng = random.Random(10_21)
    FlakyCache.failure_rate = 0.0
    yield FlakyCache
    FlakyCache.failure_rate = 0.0


def test_a_cache_failing_at_random_never_gives_a_500(
    flaky_cache: type[FlakyCache], fake_op: FakeOP, provider: Provider
) -> None:
    rng = random.Random(10_22)
    seen: dict[tuple[str, int], int] = {}
    for round_ in range(12):
        client = Client()
        flaky_cache.failure_rate = 0.0
        login(client, fake_op, scope=CRM)  # a working login to start from
        token = issue(fake_op, sub=f"agent-{round_}", scope=CRM)
        flaky_cache.failure_rate = 0.3
        for _ in range(25):
            if rng.random() < 0.3:
                age_session(client, expires_at=time.time() - 1)  # due: refresh + introspection
            path, extra, forged = rng.choice(
                [
                    ("/me/", {}, False),
                    ("/contacts/", {}, False),
                    ("/t/drf/", {}, False),
                    ("/api/contacts/", {"HTTP_AUTHORIZATION": f"Bearer {token}"}, False),
                    ("/api/contacts/", {"HTTP_AUTHORIZATION": f"Bearer {token[:-2]}"}, True),
                    ("/oidc/login/?provider=duo", {}, False),
                ]
            )
            # The test client re-raises any exception a view lets escape: a 500 would fail here.
            response = client.get(path, **extra)
            status = response.status_code
            seen[(path, status)] = seen.get((path, status), 0) + 1
            assert status in (200, 302, 401, 403, 503), (path, status)
            assert not (forged and status == 200), "a forged token was served while the cache failed"
    # The run exercised both outcomes: the outage answers and the working ones.
    statuses = {status for (_path, status) in seen}
    assert 503 in statuses and 200 in statuses, seen
