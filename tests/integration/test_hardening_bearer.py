"""Issue 10, bearer tokens: the holes an adversarial review found, each shown closed on the wire."""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import logging
import secrets
import time
import tracemalloc
from typing import Any

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from django_duo_oidc import resource
from django_duo_oidc.core.errors import InvalidClaim, TokenExpired
from django_duo_oidc.models import Identity, Provider
from django_duo_oidc.resource import context as resource_context
from django_duo_oidc.resource import memory, registry, validation
from tests.conftest import StillClock
from tests.fakeop import FakeOP

from .test_login_views import login
from .test_policy import age_session

pytestmark = pytest.mark.django_db

CRM = "openid profile email crm.contacts.read"


def issue(op: FakeOP, sub: str = "alice-sub", scope: str = "crm.contacts.read", **kw: Any) -> str:
    """A Duo-shaped access token, registered at the provider for introspection."""
    kw.setdefault("jti", secrets.token_hex(8))
    token = op.access_token(sub, scope, **kw)
    op.tokens[token] = {"sub": sub, "scope": scope, "active": True}
    return token


def get(client: Client, path: str, token: str | None = None, **extra: Any) -> Any:
    if token is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.get(path, **extra)


def link(provider: Provider, sub: str = "alice-sub", username: str = "alice", **fields: Any) -> Any:
    user = get_user_model().objects.create_user(username=username, **fields)
    Identity.objects.create(provider=provider, sub=sub, user=user)
    return user


# 13. DRF: no bearer header leaves the request to the next authentication class -------------------


def test_drf_without_a_bearer_header_falls_through_to_the_session_user(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    # [DuoBearerAuthentication, SessionAuthentication] + HasScopes, as the README shows.
    login(client, fake_op, scope=CRM)
    response = client.get("/t/bearer/drf/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["user"] is not None  # the session user, not an anonymous one
    assert body["auth"] == "NoneType"  # SessionAuthentication's request.auth
    assert body["scopes"] == ["crm.contacts.read", "email", "openid", "profile"]


def test_drf_with_a_bearer_header_is_judged_on_the_token_even_with_a_session(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=CRM)
    response = get(client, "/t/bearer/drf/", issue(fake_op, sub="bob-sub", scope="crm.contacts.read"))
    assert response.status_code == 200
    body = response.json()
    assert body["auth"] == "BearerContext"
    assert body["sub"] == "bob-sub"
    assert body["scopes"] == ["crm.contacts.read"]
    narrow = get(client, "/t/bearer/drf/", issue(fake_op, sub="bob-sub", scope="email"))
    assert narrow.status_code == 403  # the token's grant, not the session's wider one


def test_token_only_views_still_ignore_the_session(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    assert client.get("/t/bearer/any/").status_code == 401
    assert client.get("/api/contacts/").status_code == 401


# 2. A bearer token whose linked user is inactive is refused, from the next request on ------------


def test_a_token_of_an_inactive_linked_user_is_refused_and_the_reason_logged(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="django_duo_oidc")
    link(provider, is_active=False)
    token = issue(fake_op)
    for path in ("/t/bearer/any/", "/api/contacts/", "/t/bearer/async/", "/t/bearer/drf/"):
        response = get(client, path, token)
        assert response.status_code == 401, (path, response.content)
        assert 'error="invalid_token"' in response["WWW-Authenticate"]
        assert response.json()["error"] == "invalid_token"
    assert any("inactive" in r.getMessage() and token not in r.getMessage() for r in caplog.records)


def test_deactivation_takes_effect_on_the_next_request_and_reactivation_too(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    user = link(provider)
    token = issue(fake_op)
    assert get(client, "/t/bearer/any/", token).json()["user"] == "alice"  # proven and remembered
    user.is_active = False
    user.save()
    assert get(client, "/t/bearer/any/", token).status_code == 401  # the grant is remembered, not the user
    user.is_active = True
    user.save()
    assert get(client, "/t/bearer/any/", token).json()["user"] == "alice"


def test_the_user_is_read_once_per_window_only_when_the_view_asks(
    client: Client, fake_op: FakeOP, provider: Provider, long_lived_memos: None, still_clock: StillClock
) -> None:
    link(provider)
    token = issue(fake_op)
    assert get(client, "/t/bearer/hot/", token).status_code == 200  # proven; the link remembered
    with CaptureQueriesContext(connection) as queries:
        # The view reads request.user several times (is_authenticated, get_username).
        assert get(client, "/t/bearer/any/", token).json()["user"] == "alice"
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert "auth_user" in queries[0]["sql"]
    with CaptureQueriesContext(connection) as queries:  # issue 14: then remembered, a copy per request
        assert get(client, "/t/bearer/any/", token).json()["user"] == "alice"
    assert len(queries) == 0, [q["sql"] for q in queries]


def test_a_seen_token_costs_no_query_when_the_view_does_not_read_the_user(
    client: Client, fake_op: FakeOP, provider: Provider, long_lived_memos: None
) -> None:
    # The hot path of a bearer API: a token already seen, a view that never touches request.user. The
    # linked user's state is remembered per process for the freshness window (and forgotten at once here when
    # a user or an identity is saved), so this request costs no database round trip at all.
    link(provider)
    token = issue(fake_op)
    assert get(client, "/t/bearer/hot/", token).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert get(client, "/t/bearer/hot/", token).status_code == 200
    assert len(queries) == 0, [q["sql"] for q in queries]


def test_a_user_deactivated_without_a_signal_is_refused_within_the_freshness_window(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    # Issue 14 ("the bearer user path, free"): the linked user is remembered for the freshness window. A
    # queryset update() sends no signal, so no process hears of it: it takes effect within the window
    # (a save(), here or in another process, within SHARED_CHECK_INTERVAL: test_bearer_user_memo.py).
    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 30}
    user = link(provider)
    token = issue(fake_op)
    assert get(client, "/t/bearer/any/", token).status_code == 200
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    clock = time.monotonic() + 30.01
    monkeypatch.setattr(time, "monotonic", lambda: clock)
    assert get(client, "/t/bearer/any/", token).status_code == 401


def test_an_async_view_gets_the_user_with_auser(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    link(provider)
    response = get(client, "/t/bearer/async/", issue(fake_op))
    assert response.json() == {"user": "alice", "scopes": ["crm.contacts.read"]}


def test_a_token_whose_sub_has_no_identity_stays_valid_and_anonymous(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    link(provider, sub="someone-else", is_active=False)
    response = get(client, "/t/bearer/any/", issue(fake_op, sub="stranger"))
    assert response.status_code == 200
    assert response.json()["user"] is None


# 8. Refused tokens do not pin memory -------------------------------------------------------------

# Bounds stated for the measurements below (per worker process, Python objects as tracemalloc counts them).
FORGED_TOKENS = 1_500  # JWS-shaped, trusted iss, known kid, bad signature, ~16 kB each
OPAQUE_TOKENS = 500  # random opaque strings, ~16 kB each
RETAINED_BOUND = 3 * 1024 * 1024  # what may stay allocated after all of them: 3 MB (was ~hundreds of MB)
RESEND_BOUND = 64 * 1024  # growth allowed over 500 resends of one refused token


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(op: FakeOP, size: int = 15_500) -> str:
    """A JWS-shaped token of ``size`` characters: a trusted issuer, a known kid, a signature that is not one."""
    header = _b64(json.dumps({"alg": "RS256", "kid": op.kid, "typ": "jwt"}).encode())
    now = int(time.time())
    claims = {"iss": op.issuer, "sub": "mallory", "aud": op.client_id, "exp": now + 600, "iat": now}
    claims["jti"] = secrets.token_hex(8)
    pad = size - len(header) - 2 - 342 - len(_b64(json.dumps({**claims, "pad": ""}).encode()))
    claims["pad"] = "A" * (pad * 3 // 4)
    return f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(secrets.token_bytes(256))}"


def _retained(run: Any) -> int:
    """Bytes still allocated after ``run()`` (garbage collected), as tracemalloc counts them.

    Logging is off meanwhile: pytest's capture handler keeps every LogRecord for the test's report, and
    django.request's 4xx records hold the request (with its 16 kB header); a production handler writes
    a record and drops it, so that is the harness's memory, not the site's.
    """
    gc.collect()
    logging.disable(logging.CRITICAL)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        logging.disable(logging.NOTSET)


@pytest.fixture
def wsgi() -> Any:
    """Send a request through the site's real WSGI handler (middleware, URL resolution, the view).

    Not the test client: it connects signal receivers on every request, whose weakref finalizers
    stay registered (~2 kB a request), which would be measured as the site's memory.
    """
    handler = WSGIHandler()
    factory = RequestFactory()
    # What the test client does too: the test's transaction must survive the request signals.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)

    def send(path: str, token: str | None = None) -> int:
        extra = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
        environ = factory.get(path, **extra).environ
        response = handler(environ, lambda status, headers: None)
        response.close()
        return int(response.status_code)

    yield send
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_forged_tokens_in_bulk_retain_a_bounded_amount_of_memory(
    wsgi: Any, fake_op: FakeOP, provider: Provider
) -> None:
    token = forged(fake_op)
    assert 15_000 < len(token) <= 16_384
    assert wsgi("/api/contacts/", token) == 401  # fetch discovery and JWKS outside the measurement

    def flood() -> None:
        for _ in range(FORGED_TOKENS):
            assert wsgi("/api/contacts/", forged(fake_op)) == 401
        for _ in range(OPAQUE_TOKENS):
            assert wsgi("/api/contacts/", secrets.token_urlsafe(11_500)) in (401, 503)
        fake_op.calls.clear()  # the fake provider's own call log is not the site's memory

    retained = _retained(flood)
    print(f"retained after {FORGED_TOKENS + OPAQUE_TOKENS} forged tokens: {retained / 1e6:.2f} MB")
    assert retained < RETAINED_BOUND, f"{retained / 1e6:.1f} MB retained"


def test_resending_one_refused_token_does_not_grow_memory(wsgi: Any, fake_op: FakeOP, provider: Provider) -> None:
    token = forged(fake_op)
    assert wsgi("/api/contacts/", token) == 401  # refused and remembered

    def resend() -> None:
        for _ in range(500):
            assert wsgi("/api/contacts/", token) == 401

    grown = _retained(resend)
    print(f"grown after 500 resends: {grown / 1e3:.1f} kB")
    assert grown < RESEND_BOUND, f"{grown / 1e3:.1f} kB"


def test_proven_grants_are_bounded_in_bytes_as_well_as_in_entries(
    wsgi: Any, fake_op: FakeOP, provider: Provider, monkeypatch: Any
) -> None:
    provider.access_token_validation = Provider.AccessTokenValidation.JWT
    provider.save()
    big = {"groups": [f"group-{i:04d}-{'x' * 40}" for i in range(150)]}  # ~8 kB of claims per token
    tokens = [issue(fake_op, sub=f"user-{i}", **big) for i in range(120)]
    assert wsgi("/api/contacts/", tokens[0]) == 200

    # The accounted size follows what the entries really hold (tracemalloc), within a factor of two.
    resource.reset()

    def prove() -> None:
        for token in tokens:
            assert wsgi("/api/contacts/", token) == 200

    retained = _retained(prove)
    print(f"{len(tokens)} proven grants: retained {retained / 1e3:.0f} kB, accounted {memory._seen_bytes / 1e3:.0f} kB")
    assert len(memory._seen) == len(tokens)
    assert retained / 2 < memory._seen_bytes < retained * 2

    # A byte budget smaller than all of them: the oldest go first, the total stays under it.
    monkeypatch.setattr(memory, "SEEN_MAX_BYTES", 200_000)
    resource.reset()
    for token in tokens:
        assert wsgi("/api/contacts/", token) == 200
        assert memory._seen_bytes <= 200_000
    assert 10 < len(memory._seen) < 40
    assert hashlib.sha256(tokens[-1].encode()).digest() in memory._seen
    assert hashlib.sha256(tokens[0].encode()).digest() not in memory._seen
    assert memory._seen_bytes == sum(entry.size for entry in memory._seen.values())

    # And the entry bound still holds for refusals, which are small.
    monkeypatch.setattr(memory, "SEEN_MAX", 50)
    for _ in range(80):
        assert wsgi("/api/contacts/", forged(fake_op)) == 401
    assert len(memory._seen) == 50


# 11. Client-credentials tokens are clients in every validation mode ------------------------------


@pytest.mark.parametrize("mode", ["jwt", "auto", "introspection"])
def test_a_duo_client_credentials_token_is_a_client_in_every_mode(
    client: Client, fake_op: FakeOP, provider: Provider, mode: str
) -> None:
    provider.access_token_validation = mode
    provider.save()
    link(provider, sub=fake_op.client_id, username="impostor")  # an identity with the client's id as sub
    status, payload, _ = fake_op.client_credentials_grant({"scope": "crm.contacts.read"})
    assert status == 200
    token = payload["access_token"]
    assert "client_id" not in jwt.decode(token, options={"verify_signature": False})  # Duo's shape
    for path in ("/t/bearer/any/", "/t/bearer/drf/"):
        body = get(client, path, token).json()
        assert body["is_client"] is True, (mode, path, body)
        assert body["user"] is None
        assert body["sub"] == fake_op.client_id


@pytest.mark.parametrize("named", ["svc-reports", "5b1e8c1e-service-account"])
def test_a_keycloak_service_account_named_as_a_machine_client_is_a_client(
    client: Client, fake_op: FakeOP, provider: Provider, named: str
) -> None:
    provider.access_token_validation = Provider.AccessTokenValidation.JWT
    provider.machine_clients = f"other {named}"
    provider.save()
    sa = "5b1e8c1e-service-account"
    link(provider, sub=sa, username="service-account-svc-reports")
    token = issue(fake_op, sub=sa, azp="svc-reports", client_id="svc-reports")
    body = get(client, "/t/bearer/any/", token).json()
    assert body == {
        "is_client": True,
        "sub": sa,
        "client_id": "svc-reports",
        "user": None,
        "scopes": ["crm.contacts.read"],
    }


def test_a_user_token_of_the_same_provider_is_still_a_user(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider.access_token_validation = Provider.AccessTokenValidation.JWT
    provider.machine_clients = "svc-reports"
    provider.save()
    link(provider, sub="b1cee4e5" * 8)
    body = get(client, "/t/bearer/any/", issue(fake_op, sub="b1cee4e5" * 8, azp="crm-web")).json()
    assert body["is_client"] is False
    assert body["user"] == "alice"


# 9. Opaque strings are not an unauthenticated amplifier ------------------------------------------

DOWN_KEY = "duo_oidc:down:duo"


def introspection_mode(provider: Provider) -> Provider:
    provider.access_token_validation = Provider.AccessTokenValidation.INTROSPECTION
    provider.save()
    return provider


def test_auto_mode_never_introspects_an_opaque_token(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    assert provider.access_token_validation == Provider.AccessTokenValidation.AUTO
    for _ in range(20):
        response = get(client, "/api/contacts/", secrets.token_urlsafe(32))
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
    assert fake_op.count("token_introspection") == 0
    # Only tokens that pass the local JWT checks are introspected in auto mode.
    fake_op.sign_with = "other-key"
    assert get(client, "/api/contacts/", issue(fake_op)).status_code == 401
    assert fake_op.count("token_introspection") == 0
    fake_op.sign_with = "rsa"
    assert get(client, "/api/contacts/", issue(fake_op)).status_code == 200
    assert fake_op.count("token_introspection") == 1


def test_introspection_mode_spends_a_shared_budget_on_unseen_tokens(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any, caplog: Any, monkeypatch: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="django_duo_oidc")
    clock = [float(int(time.time() // 60) * 60 + 1)]  # one second into a budget window
    monkeypatch.setattr(time, "time", lambda: clock[0])
    settings.DUO_OIDC = {**settings.DUO_OIDC, "BEARER_INTROSPECTION_BUDGET": 5, "BEARER_INTROSPECTION_WINDOW": 60}
    introspection_mode(provider)
    fake_op.access_token_format = "opaque"
    for i in range(8):
        if i == 3:
            resource.reset()  # another worker: the budget is shared through the cache
        response = get(client, "/api/contacts/", secrets.token_urlsafe(32))
        if i < 5:
            assert response.status_code == 401, i
            continue
        assert response.status_code == 503, i
        assert response.json()["error"] == "temporarily_unavailable"
        assert response["Retry-After"] == "60"  # when the window ends
    assert fake_op.count("token_introspection") == 5
    assert cache.get(DOWN_KEY) is None  # our own budget never marks the provider down
    assert any("budget" in r.getMessage() for r in caplog.records)

    # Over budget is not remembered: the same valid token is served once the window has passed.
    good = issue(fake_op)
    assert get(client, "/api/contacts/", good).status_code == 503
    clock[0] += 60
    assert get(client, "/api/contacts/", good).status_code == 200
    # A token already proven costs no budget: it is not asked about again within its window.
    for _ in range(5):
        assert get(client, "/api/contacts/", good).status_code == 200
    assert fake_op.count("token_introspection") == 6


def test_a_provider_429_on_a_never_seen_token_does_not_mark_the_provider_down(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=CRM)
    fake_op.faults["token_introspection"] = 429
    other = Client()
    assert get(other, "/api/contacts/", issue(fake_op)).status_code == 503
    assert cache.get(DOWN_KEY) is None
    del fake_op.faults["token_introspection"]
    age_session(client)  # the session's grant is due for its check with the provider
    assert client.get("/contacts/").status_code == 200  # asked, not refused as "down moments ago"


def test_a_provider_marked_down_is_not_asked_about_unseen_tokens(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    introspection_mode(provider)
    fake_op.access_token_format = "opaque"
    cache.set(DOWN_KEY, 1, 3600)  # a session's check failed moments ago (the flag outlives the test's requests)
    for _ in range(5):
        assert get(client, "/api/contacts/", issue(fake_op)).status_code == 503
    assert fake_op.count("token_introspection") == 0


# 10. Introspection: the token must be for this resource -----------------------------------------

OTHER_CLIENT = "DIOTHERCLIENT0000002"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({}, 200),  # Duo's answer: client_id = this site's client
        ({"client_id": OTHER_CLIENT}, 401),  # another client's token, no aud: refused
        ({"client_id": None}, 401),  # nothing names the audience: refused
        ({"client_id": None, "azp": "DIFAKECLIENT0000001"}, 200),
        ({"client_id": OTHER_CLIENT, "aud": "DIFAKECLIENT0000001"}, 200),
        ({"aud": OTHER_CLIENT}, 401),  # an aud that is not ours is never overridden by client_id
        ({"aud": ["x", "DIFAKECLIENT0000001"]}, 200),
    ],
)
def test_an_opaque_token_must_be_for_this_resource(
    client: Client, fake_op: FakeOP, provider: Provider, answer: dict[str, Any], expected: int
) -> None:
    introspection_mode(provider)
    fake_op.access_token_format = "opaque"
    token = issue(fake_op)
    fake_op.tokens[token]["introspection"] = answer
    response = get(client, "/api/contacts/", token)
    assert response.status_code == expected, response.content
    if expected == 401:
        assert response.json()["error"] == "invalid_token"


@pytest.mark.parametrize(("aud", "expected"), [("DIFAKECLIENT0000001", 200), (OTHER_CLIENT, 401)])
def test_a_jwt_in_introspection_mode_may_prove_its_audience_with_its_own_aud(
    client: Client, fake_op: FakeOP, provider: Provider, aud: str, expected: int
) -> None:
    introspection_mode(provider)
    token = issue(fake_op, aud=aud)
    fake_op.tokens[token]["introspection"] = {"client_id": None}
    assert get(client, "/api/contacts/", token).status_code == expected


def test_the_audience_requirement_can_be_turned_off_explicitly(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="django_duo_oidc")
    introspection_mode(provider)
    fake_op.access_token_format = "opaque"
    token = issue(fake_op)
    fake_op.tokens[token]["introspection"] = {"client_id": OTHER_CLIENT}
    assert get(client, "/api/contacts/", token).status_code == 401
    assert any("claim aud" in r.getMessage() for r in caplog.records)
    provider.access_token_require_audience = False
    provider.save()
    resource.reset()
    assert get(client, "/api/contacts/", token).status_code == 200
    fake_op.tokens[token]["introspection"] = {"aud": OTHER_CLIENT}  # an explicit other aud: still refused
    resource.reset()
    cache.clear()
    assert get(client, "/api/contacts/", token).status_code == 401


def test_jwt_plus_introspection_keeps_the_audience_its_signature_proved(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    token = issue(fake_op)  # auto: jwt+introspection
    fake_op.tokens[token]["introspection"] = {"client_id": None}
    assert get(client, "/api/contacts/", token).status_code == 200


# 12. Two provider rows on one issuer (two clients of one authorization server) -------------------

SECOND = "DISECONDCLIENT000002"


@pytest.fixture
def second(provider: Provider, fake_op: FakeOP, monkeypatch: Any) -> Provider:
    fake_op.other_clients[SECOND] = "second-secret"
    monkeypatch.setenv("DUO_SECOND_SECRET", "second-secret")
    return Provider.objects.create(
        slug="second",
        name="Second client",
        issuer=fake_op.issuer,
        client_id=SECOND,
        client_secret_env="DUO_SECOND_SECRET",
    )


@pytest.mark.parametrize("mode", ["jwt", "auto"])
def test_a_token_for_the_second_client_of_an_issuer_is_accepted(
    client: Client, fake_op: FakeOP, provider: Provider, second: Provider, mode: str
) -> None:
    for row in (provider, second):
        row.access_token_validation = mode
        row.save()
    link(second, sub="bob-sub", username="bob")
    token = issue(fake_op, sub="bob-sub", aud=SECOND)
    fake_op.tokens[token]["introspection"] = {"client_id": SECOND}
    body = get(client, "/t/bearer/any/", token).json()
    assert body["user"] == "bob"  # the identity linked on the second row
    assert body["client_id"] == (SECOND if mode == "auto" else None)  # Duo's JWT names no client_id
    assert validation.validate(token)[1].slug == "second"
    first = issue(fake_op)
    assert get(client, "/t/bearer/any/", first).status_code == 200
    assert validation.validate(first)[1].slug == "duo"
    assert get(client, "/t/bearer/any/", issue(fake_op, aud="neither")).status_code == 401
    if mode == "auto":  # each row asks with its own credentials
        assert fake_op.count("token_introspection") == 2


def test_introspection_mode_picks_the_row_by_the_answers_client(
    client: Client, fake_op: FakeOP, provider: Provider, second: Provider
) -> None:
    for row in (provider, second):
        introspection_mode(row)
    fake_op.access_token_format = "opaque"
    token = issue(fake_op, sub="bob-sub")
    fake_op.tokens[token]["introspection"] = {"client_id": SECOND}
    assert get(client, "/t/bearer/any/", token).json()["client_id"] == SECOND
    assert validation.validate(token)[1].slug == "second"
    mine = issue(fake_op)
    assert validation.validate(mine)[1].slug == "duo"
    stranger = issue(fake_op)
    fake_op.tokens[stranger]["introspection"] = {"client_id": "DITHIRDCLIENT0000003"}
    assert get(client, "/t/bearer/any/", stranger).status_code == 401


def test_the_issuer_is_listed_once_in_the_resource_metadata(
    client: Client, fake_op: FakeOP, provider: Provider, second: Provider
) -> None:
    assert registry.trusted_issuers() == [fake_op.issuer]
    assert client.get("/.well-known/oauth-protected-resource").json()["authorization_servers"] == [fake_op.issuer]


def test_drf_says_when_to_retry_a_503(client: Client, fake_op: FakeOP, provider: Provider, settings: Any) -> None:
    # Sibling of item 9: DRF's 503 carried no Retry-After, unlike @bearer_auth's.
    settings.DUO_OIDC = {**settings.DUO_OIDC, "BEARER_INTROSPECTION_BUDGET": 0}
    introspection_mode(provider)
    fake_op.access_token_format = "opaque"
    response = get(client, "/t/bearer/drf/", issue(fake_op))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert 1 <= int(response["Retry-After"]) <= 61
    fake_op.faults["token_introspection"] = "down"
    settings.DUO_OIDC = {**settings.DUO_OIDC, "BEARER_INTROSPECTION_BUDGET": 10}
    response = get(client, "/t/bearer/drf/", issue(fake_op))
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1


@pytest.mark.parametrize("endpoint", [".well-known/openid-configuration", "jwks"])
def test_forged_tokens_do_not_refetch_from_a_failing_provider_on_every_request(
    client: Client, fake_op: FakeOP, provider: Provider, endpoint: str, settings: Any
) -> None:
    # Sibling of item 9: with discovery or the JWKS failing (nothing cached), every forged token naming
    # the trusted issuer made a fetch (and held a worker up to HTTP_TIMEOUT).
    settings.DUO_OIDC = {**settings.DUO_OIDC, "PROVIDER_DOWN_BACKOFF": 3600}  # ten requests stay within it
    provider.access_token_validation = Provider.AccessTokenValidation.JWT
    provider.save()
    fake_op.faults[endpoint] = "down"
    for _ in range(10):
        assert get(client, "/api/contacts/", forged(fake_op, size=400)).status_code == 503
    assert fake_op.count(endpoint) == 1
    assert cache.get(DOWN_KEY) is None  # sessions are not affected
    del fake_op.faults[endpoint]
    validation._fetch_failed.clear()  # PROVIDER_DOWN_BACKOFF (5 s) later
    assert get(client, "/api/contacts/", issue(fake_op)).status_code == 200


def test_a_failed_refetch_for_an_unknown_kid_does_not_close_the_door(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    provider.access_token_validation = Provider.AccessTokenValidation.JWT
    provider.save()
    assert get(client, "/api/contacts/", issue(fake_op)).status_code == 200  # keys fetched and cached
    fake_op.faults["jwks"] = "down"
    now = int(time.time())
    claims = {"iss": fake_op.issuer, "sub": "a", "aud": fake_op.client_id, "exp": now + 60, "iat": now}
    assert get(client, "/api/contacts/", fake_op.sign(claims, {"kid": "unknown"})).status_code == 503
    assert get(client, "/api/contacts/", issue(fake_op)).status_code == 200


def test_a_remembered_refusal_is_rebuilt_from_its_class_description_and_claim() -> None:
    refused = memory._Refused.of(resource_context._InactiveUser(), until=0)
    again = refused.exception()
    assert type(again) is InvalidClaim and again.claim == "sub" and again.description == refused.description
    assert again is not refused.exception()  # a fresh exception each time
    expired = memory._Refused.of(TokenExpired("gone"), until=0).exception()
    assert type(expired) is TokenExpired and expired.description == "gone" and expired.__traceback__ is None


def test_a_policy_rule_on_a_drf_view_that_also_takes_sessions_judges_the_session(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    # A SCOPE_POLICY rule over a DRF view listing [DuoBearerAuthentication, SessionAuthentication]: without a
    # bearer header the session is what DRF will authenticate, so the rule must judge the session too.
    from django_duo_oidc.policy.rules import reset_policy_cache

    settings.DUO_OIDC = {**settings.DUO_OIDC, "SCOPE_POLICY": [{"path": "/t/bearer/drf/", "scopes": [CRM]}]}
    reset_policy_cache()
    try:
        login(client, fake_op, scope=CRM)
        assert client.get("/t/bearer/drf/").status_code == 200
        # With a header, the token is judged, and a narrower token is refused by the rule.
        narrow = get(client, "/t/bearer/drf/", issue(fake_op, sub="bob-sub", scope="email"))
        assert narrow.status_code == 403
        assert "insufficient_scope" in narrow["WWW-Authenticate"]
    finally:
        reset_policy_cache()
