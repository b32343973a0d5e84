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
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from django_duo_oidc import bearer
from django_duo_oidc.models import Identity, Provider
from tests.fakeop import FakeOP

from .test_login_flow import login

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


def test_the_user_is_read_once_per_request_with_its_identity(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    link(provider)
    token = issue(fake_op)
    assert get(client, "/t/bearer/any/", token).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        # The view reads request.user several times (is_authenticated, get_username).
        assert get(client, "/t/bearer/any/", token).json()["user"] == "alice"
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert "duo_oidc_identity" in queries[0]["sql"] and "auth_user" in queries[0]["sql"]


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
    bearer.reset()

    def prove() -> None:
        for token in tokens:
            assert wsgi("/api/contacts/", token) == 200

    retained = _retained(prove)
    print(f"{len(tokens)} proven grants: retained {retained / 1e3:.0f} kB, accounted {bearer._seen_bytes / 1e3:.0f} kB")
    assert len(bearer._seen) == len(tokens)
    assert retained / 2 < bearer._seen_bytes < retained * 2

    # A byte budget smaller than all of them: the oldest go first, the total stays under it.
    monkeypatch.setattr(bearer, "SEEN_MAX_BYTES", 200_000)
    bearer.reset()
    for token in tokens:
        assert wsgi("/api/contacts/", token) == 200
        assert bearer._seen_bytes <= 200_000
    assert 10 < len(bearer._seen) < 40
    assert hashlib.sha256(tokens[-1].encode()).digest() in bearer._seen
    assert hashlib.sha256(tokens[0].encode()).digest() not in bearer._seen
    assert bearer._seen_bytes == sum(entry.size for entry in bearer._seen.values())

    # And the entry bound still holds for refusals, which are small.
    monkeypatch.setattr(bearer, "SEEN_MAX", 50)
    for _ in range(80):
        assert wsgi("/api/contacts/", forged(fake_op)) == 401
    assert len(bearer._seen) == 50


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
