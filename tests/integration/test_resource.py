"""Bearer access tokens on API views: every acceptance and every refusal, on the wire (RFC 6750/9728)."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import secrets
import string
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from django_duo_oidc import resource
from django_duo_oidc.models import Identity, Provider
from django_duo_oidc.resource import registry
from tests.conftest import StillClock
from tests.fakeop import FakeOP, public_jwk, rsa_key

API = "/api/contacts/"
METADATA = "http://testserver/.well-known/oauth-protected-resource"
BARE = f'Bearer realm="testserver", resource_metadata="{METADATA}"'
INVALID = BARE + ', error="invalid_token", error_description="The access token is not valid."'
EXPIRED = BARE + ', error="invalid_token", error_description="The access token has expired."'

pytestmark = pytest.mark.django_db


def issue(
    op: FakeOP, sub: str = "alice-sub", scope: str = "crm.contacts.read", *, register: bool = True, **kw: Any
) -> str:
    """A Duo-shaped access token (typ jwt, aud = client id); registered at the provider for introspection."""
    kw.setdefault("jti", secrets.token_hex(8))  # tokens minted in the same second stay distinct
    token = op.access_token(sub, scope, **kw)
    if register:
        op.tokens[token] = {"sub": sub, "scope": scope, "active": True}
    return token


def get(client: Client, path: str = API, token: str | None = None, **extra: Any) -> Any:
    if token is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.get(path, **extra)


@pytest.fixture
def jwt_mode(provider: Provider) -> Provider:
    provider.access_token_validation = Provider.AccessTokenValidation.JWT
    provider.save()
    return provider


def link(provider: Provider, sub: str = "alice-sub", username: str = "alice", **fields: Any) -> Any:
    user = get_user_model().objects.create_user(username=username, **fields)
    Identity.objects.create(provider=provider, sub=sub, user=user)
    return user


# Acceptance ---------------------------------------------------------------------------------------


def test_a_valid_token_with_the_scope_is_served(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    link(provider)
    response = get(client, token=issue(fake_op))
    assert response.status_code == 200
    body = response.json()
    assert body["caller"] == {"sub": "alice-sub", "username": "alice"}
    assert body["scopes"] == ["crm.contacts.read"]


def test_a_token_whose_subject_is_not_linked_has_no_user(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    response = get(client, "/t/bearer/any/", issue(fake_op, sub="stranger"))
    assert response.status_code == 200
    assert response.json()["user"] is None
    assert response.json()["sub"] == "stranger"


def test_an_inactive_linked_user_is_not_the_request_user(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    # Issue 10 item 2: refused (invalid_token), no longer served as an anonymous request.
    link(provider, is_active=False)
    assert get(client, "/t/bearer/any/", issue(fake_op)).status_code == 401


def test_a_client_credentials_token_is_a_client_never_a_user(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    # Even an identity whose sub equals the client id must not turn the server into a logged-in user.
    link(provider, sub=fake_op.client_id, username="impostor")
    status, payload, _ = fake_op.client_credentials_grant({"scope": "crm.contacts.read"})
    assert status == 200
    response = get(client, "/t/bearer/any/", payload["access_token"])
    assert response.status_code == 200
    assert response.json() == {
        "is_client": True,
        "sub": fake_op.client_id,
        "client_id": fake_op.client_id,
        "user": None,
        "scopes": ["crm.contacts.read"],
    }


def test_decorators_in_either_order_async_views_and_the_mixin(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    read, write = issue(fake_op), issue(fake_op, scope="crm.contacts.write")
    assert get(client, "/t/bearer/reversed/", read).status_code == 200
    assert get(client, "/t/bearer/reversed/", write).status_code == 403
    assert get(client, "/t/bearer/reversed/").status_code == 401  # not a login redirect
    link(provider)
    async_answer = get(client, "/t/bearer/async/", write)
    assert async_answer.status_code == 200  # any_of
    assert async_answer.json() == {"user": "alice", "scopes": ["crm.contacts.write"]}
    # The mixin's view is CSRF-exempt: a header-borne token is not a cross-site credential.
    csrf_client = Client(enforce_csrf_checks=True)
    assert csrf_client.post("/t/bearer/mixin/", HTTP_AUTHORIZATION=f"Bearer {write}").status_code == 200
    assert csrf_client.post("/t/bearer/mixin/", HTTP_AUTHORIZATION=f"Bearer {read}").status_code == 403


def test_accept_typ_jwt_and_at_jwt_and_no_typ(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    for typ in ("jwt", "at+jwt", "application/at+jwt", None):
        now = int(time.time())
        claims = {"iss": fake_op.issuer, "sub": "a", "aud": fake_op.client_id, "exp": now + 60, "iat": now}
        token = fake_op.sign({**claims, "scope": "crm.contacts.read", "typ_case": str(typ)}, {"typ": typ})
        assert get(client, token=token).status_code == 200, typ


def test_configured_audiences_replace_the_client_id(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    jwt_mode.access_token_audiences = "urn:crm"
    jwt_mode.save()
    assert get(client, token=issue(fake_op, aud="urn:crm")).status_code == 200
    assert get(client, token=issue(fake_op)).status_code == 401  # aud = client id is no longer accepted


# No credentials, other schemes, malformed requests ------------------------------------------------


def test_no_credentials_is_a_bare_challenge(client: Client, provider: Provider) -> None:
    response = get(client)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == BARE  # RFC 6750 section 3: no error code
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {"error_description": "This resource needs a bearer access token."}


@pytest.mark.parametrize("header", ["Basic YWxpY2U6c2VjcmV0", "Token abc", "Digest x=1", "Bearerabc"])
def test_another_scheme_is_left_alone_and_refused_as_no_credentials(
    client: Client, provider: Provider, header: str
) -> None:
    response = client.get(API, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == BARE


def test_a_session_does_not_open_a_bearer_view(client: Client, provider: Provider) -> None:
    client.force_login(get_user_model().objects.create_user("alice"))
    assert get(client).status_code == 401


def test_a_token_does_not_open_a_view_that_did_not_ask_for_one(
    client: Client, fake_op: FakeOP, jwt_mode: Provider
) -> None:
    link(jwt_mode)
    assert client.get("/me/", HTTP_AUTHORIZATION=f"Bearer {issue(fake_op)}").json() == {"authenticated": False}


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b", 'Bearer "quoted"', "Bearer tok\u00e9n", "Bearer a=b"],
)
def test_a_malformed_bearer_header_is_invalid_request(client: Client, provider: Provider, header: str) -> None:
    response = client.get(API, HTTP_AUTHORIZATION=header)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response["WWW-Authenticate"].startswith(BARE + ', error="invalid_request", error_description="')


def test_a_huge_header_is_invalid_request(client: Client, provider: Provider) -> None:
    response = client.get(API, HTTP_AUTHORIZATION="Bearer " + "a" * 20_000)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The Authorization header is too large.",
    }


def test_a_token_in_the_query_or_the_body_is_refused(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    token = issue(fake_op)
    for response in (
        client.get(API, {"access_token": token}),
        client.get(API + "?access_token=" + token, HTTP_AUTHORIZATION=f"Bearer {token}"),
        client.post("/t/bearer/mixin/", f"access_token={token}", content_type="application/x-www-form-urlencoded"),
    ):
        assert response.status_code == 400
        assert response.json() == {
            "error": "invalid_request",
            "error_description": "Access tokens are accepted in the Authorization header only.",
        }


def test_whatever_the_header_holds_there_is_never_a_500(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    rng = random.Random(6750)
    alphabet = string.printable + "\u00e9\u2603\x00"
    token = issue(fake_op)
    headers = [
        "Bearer " + token[:-3],
        "Bearer " + token.replace(".", "..", 1),
        "Bearer " + token + ".x",
        "Bearer e30.e30.",
        "Bearer W10.W10.AA",
        "Bearer eyJhbGciOiJSUzI1NiJ9.bnVsbA.AA",
        "Bearer " + "A" * 16_385,
    ]
    headers += ["Bearer " + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(150)]
    headers += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(50)]
    for header in headers:
        response = client.get(API, HTTP_AUTHORIZATION=header)
        assert response.status_code in (400, 401), (header, response.status_code)
        assert "WWW-Authenticate" in response


# Invalid tokens (RFC 6750 invalid_token, 401) -----------------------------------------------------


def _refused(client: Client, token: str, expected: str = INVALID) -> None:
    response = get(client, token=token)
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == expected
    assert response.json()["error"] == "invalid_token"


def test_forged_signature(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    fake_op.sign_with = "other-key"
    _refused(client, issue(fake_op))


def test_alg_none(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    fake_op.sign_with = "none"
    _refused(client, issue(fake_op))


def test_hmac_keyed_with_the_client_secret(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    fake_op.sign_with = "hs256-client-secret"
    _refused(client, issue(fake_op))


def test_hmac_keyed_with_the_public_key(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    fake_op.sign_with = "hs256-public-key"
    _refused(client, issue(fake_op))


def test_unknown_kid(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    token = fake_op.sign(
        {"iss": fake_op.issuer, "sub": "a", "aud": fake_op.client_id, "exp": int(time.time()) + 60,
         "iat": int(time.time()), "scope": "crm.contacts.read"},
        {"kid": "not-published"},
    )  # fmt: skip
    _refused(client, token)


def test_expired(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    _refused(client, issue(fake_op, ttl=-120), EXPIRED)


def test_expires_while_remembered(client: Client, fake_op: FakeOP, jwt_mode: Provider, monkeypatch: Any) -> None:
    token = issue(fake_op, ttl=30)
    assert get(client, token=token).status_code == 200
    later = time.time() + 30 + 61  # past exp and the leeway
    monkeypatch.setattr(time, "time", lambda: later)
    _refused(client, token, EXPIRED)


def test_wrong_audience(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    _refused(client, issue(fake_op, aud="someone-else"))


def test_wrong_issuer(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    now = int(time.time())
    claims = {"iss": "https://evil.example/", "sub": "a", "aud": fake_op.client_id, "exp": now + 60, "iat": now}
    _refused(client, fake_op.sign({**claims, "scope": "crm.contacts.read"}))


def test_an_id_token_is_not_an_access_token(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    grant = {"sub": "alice-sub", "nonce": "n", "auth_time": int(time.time()), "claims": {}}
    id_token = fake_op.id_token(grant, "at")
    _refused(client, id_token)


def test_an_opaque_token_in_jwt_mode(client: Client, jwt_mode: Provider) -> None:
    _refused(client, "opaque-token-value")


def test_a_provider_set_to_off_accepts_no_tokens(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider.access_token_validation = Provider.AccessTokenValidation.OFF
    provider.save()
    _refused(client, issue(fake_op))


def test_a_disabled_provider_stops_a_remembered_token(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    token = issue(fake_op)
    assert get(client, token=token).status_code == 200
    jwt_mode.enabled = False
    jwt_mode.save()
    registry._registry.expires = 0  # the per-process provider list is re-read (every 5 s in production)
    _refused(client, token)


def test_a_provider_enabled_after_a_refusal_is_trusted_at_the_next_provider_list_read(
    client: Client, fake_op: FakeOP, jwt_mode: Provider
) -> None:
    jwt_mode.enabled = False
    jwt_mode.save()
    registry._registry.expires = 0
    token = issue(fake_op)
    _refused(client, token)  # no enabled provider has its issuer
    jwt_mode.enabled = True
    jwt_mode.save()
    registry._registry.expires = 0  # the per-process provider list is re-read (every 5 s in production)
    assert get(client, token=token).status_code == 200  # the refusal was not remembered


def test_an_opaque_token_is_accepted_once_a_provider_introspects(
    client: Client, fake_op: FakeOP, jwt_mode: Provider
) -> None:
    fake_op.access_token_format = "opaque"
    token = issue(fake_op)
    _refused(client, token)  # jwt mode: nobody introspects opaque tokens
    jwt_mode.access_token_validation = Provider.AccessTokenValidation.INTROSPECTION
    jwt_mode.save()
    registry._registry.expires = 0
    assert get(client, token=token).status_code == 200


# Scope (RFC 6750 insufficient_scope, 403) and step-up (RFC 9470) ----------------------------------


def test_missing_scope_is_insufficient_scope_naming_the_scope(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    response = get(client, token=issue(fake_op, scope="openid email"))
    assert response.status_code == 403
    assert response["WWW-Authenticate"] == (
        BARE + ', error="insufficient_scope", '
        'error_description="The access token does not carry the scope this resource requires.", '
        'scope="crm.contacts.read"'
    )
    assert response.json()["error"] == "insufficient_scope"


def test_a_too_old_authentication_asks_for_a_new_one(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    old = issue(fake_op, auth_time=int(time.time()) - 3600)
    response = get(client, "/t/bearer/recent/", old)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].endswith(
        'error="insufficient_user_authentication", '
        'error_description="A more recent authentication is required.", max_age="300"'
    )
    assert get(client, "/t/bearer/recent/", issue(fake_op, auth_time=int(time.time()) - 10)).status_code == 200


# Introspection: authoritative, once per window, shared by workers ---------------------------------


def test_revoked_per_introspection(client: Client, fake_op: FakeOP, provider: Provider, settings: Any) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0}
    token = issue(fake_op)
    assert get(client, token=token).status_code == 200
    fake_op.revoke_token(token)
    _refused(client, token)


def test_scope_narrowed_by_introspection(client: Client, fake_op: FakeOP, provider: Provider, settings: Any) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0}
    token = issue(fake_op, scope="crm.contacts.read email")
    assert get(client, token=token).status_code == 200
    fake_op.narrow("alice-sub", "email")
    assert get(client, token=token).status_code == 403


def test_introspection_cannot_widen_a_jwt(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    token = issue(fake_op, scope="email")
    fake_op.tokens[token]["scope"] = "email crm.contacts.read"
    assert get(client, token=token).status_code == 200  # introspection's scope is the one that counts
    # ...but an answer about another subject is a lie by one of the two.
    other = issue(fake_op)
    fake_op.tokens[other]["sub"] = "mallory"
    _refused(client, other)


def test_a_refresh_token_per_introspection_is_refused(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    token = issue(fake_op)
    fake_op.tokens[token]["introspection"] = {"token_type": "refresh_token"}
    _refused(client, token)


def test_an_opaque_token_is_introspected(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    # Issue 10 item 9: only a provider set to "introspection" asks about opaque tokens (auto no longer does).
    provider.access_token_validation = Provider.AccessTokenValidation.INTROSPECTION
    provider.save()
    fake_op.access_token_format = "opaque"
    token = issue(fake_op)
    assert get(client, token=token).status_code == 200
    assert fake_op.count("token_introspection") == 1


def test_a_token_is_introspected_once_per_window_for_all_workers(
    client: Client, fake_op: FakeOP, provider: Provider, still_clock: StillClock
) -> None:
    token = issue(fake_op)
    for _ in range(5):
        assert get(client, token=token).status_code == 200
    assert fake_op.count("token_introspection") == 1
    resource.reset()  # another worker process, sharing the cache
    assert get(client, token=token).status_code == 200
    assert fake_op.count("token_introspection") == 1
    still_clock.advance(61)  # the window (REVALIDATE_SECONDS, 60) has passed...
    # ...and the shared answer with it (Redis expires keys on its own clock, which cannot be moved).
    cache.delete(f"duo_oidc:bearer:introspection:{hashlib.sha256(token.encode()).hexdigest()}:result")
    assert get(client, token=token).status_code == 200
    assert fake_op.count("token_introspection") == 2


def test_jwt_mode_makes_no_provider_call_per_request(
    client: Client, fake_op: FakeOP, jwt_mode: Provider, still_clock: StillClock
) -> None:
    tokens = [issue(fake_op, sub=f"user-{i}") for i in range(20)]
    for token in tokens:
        assert get(client, token=token).status_code == 200
    calls = len(fake_op.calls)
    for token in tokens * 5:
        assert get(client, token=token).status_code == 200
    assert len(fake_op.calls) == calls
    assert fake_op.count("token_introspection") == 0
    assert fake_op.count("jwks") == 1


def test_a_flood_of_unknown_kids_refetches_the_jwks_once(
    client: Client, fake_op: FakeOP, jwt_mode: Provider, settings: Any
) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "JWKS_REFETCH_INTERVAL": 3600}  # a cache timeout: Redis keeps time
    now = int(time.time())
    claims = {"iss": fake_op.issuer, "sub": "a", "aud": fake_op.client_id, "exp": now + 60, "iat": now}
    assert get(client, token=issue(fake_op)).status_code == 200
    for i in range(50):
        _refused(client, fake_op.sign(claims, {"kid": f"forged-{i}"}))
    assert fake_op.count("jwks") == 2  # the first fetch and one refetch, not fifty


def test_a_rotated_key_is_picked_up(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    assert get(client, token=issue(fake_op)).status_code == 200
    fake_op.key, fake_op.kid = rsa_key("rotated"), "rotated"
    assert get(client, token=issue(fake_op)).status_code == 200
    assert public_jwk(fake_op.key, "rotated")["kid"] == "rotated"


@pytest.mark.parametrize("fault", ["down", "timeout", 500, "garbage"])
def test_provider_down_at_first_sight_is_503_never_trust(
    client: Client, fake_op: FakeOP, provider: Provider, fault: Any
) -> None:
    fake_op.faults["token_introspection"] = fault
    response = get(client, token=issue(fake_op))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response["Retry-After"]) >= 1


def test_provider_down_at_revalidation(client: Client, fake_op: FakeOP, provider: Provider, settings: Any) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0}
    token = issue(fake_op)
    assert get(client, token=token).status_code == 200
    fake_op.faults["token_introspection"] = "down"
    assert get(client, token=token).status_code == 503  # ON_PROVIDER_DOWN "deny" (default)
    settings.DUO_OIDC = {**settings.DUO_OIDC, "ON_PROVIDER_DOWN": "allow", "PROVIDER_DOWN_BACKOFF": 0}
    assert get(client, token=token).status_code == 200  # the last confirmed grant


# DRF ----------------------------------------------------------------------------------------------


def test_drf_bearer_authentication(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    link(provider)
    ok = get(client, "/t/bearer/drf/", issue(fake_op))
    assert ok.status_code == 200
    assert ok.json()["user"] == "alice"
    assert ok.json()["auth"] == "BearerContext"

    none = get(client, "/t/bearer/drf/")
    assert none.status_code == 401
    assert none["WWW-Authenticate"] == BARE

    bad = get(client, "/t/bearer/drf/", issue(fake_op, register=False))
    assert bad.status_code == 401
    assert bad["WWW-Authenticate"] == INVALID
    assert bad.json() == {"error": "invalid_token", "error_description": "The access token is not valid."}

    malformed = client.get("/t/bearer/drf/", HTTP_AUTHORIZATION="Bearer a b")
    assert malformed.status_code == 400
    assert 'error="invalid_request"' in malformed["WWW-Authenticate"]

    narrow = get(client, "/t/bearer/drf/", issue(fake_op, scope="email"))
    assert narrow.status_code == 403
    assert narrow["WWW-Authenticate"].endswith('scope="crm.contacts.read"')
    assert narrow.json()["error"] == "insufficient_scope"


def test_drf_client_token_is_not_a_user(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    _status, payload, _ = fake_op.client_credentials_grant({"scope": "crm.contacts.read"})
    body = get(client, "/t/bearer/drf/", payload["access_token"]).json()
    assert body["is_client"] is True
    assert body["user"] is None


# Metadata (RFC 9728) and logs ---------------------------------------------------------------------


def test_protected_resource_metadata(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    response = client.get("/.well-known/oauth-protected-resource")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    document = response.json()
    assert document["resource"] == "http://testserver"
    assert document["authorization_servers"] == [fake_op.issuer]
    assert document["bearer_methods_supported"] == ["header"]
    assert document["scopes_supported"] == ["crm.contacts.read", "crm.contacts.write"]


def test_protected_resource_metadata_settings(client: Client, provider: Provider, settings: Any) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "RESOURCE_METADATA": {"resource_name": "CRM", "scopes_supported": ["x"]}}
    document = client.get("/.well-known/oauth-protected-resource").json()
    assert document["resource_name"] == "CRM"
    assert document["scopes_supported"] == ["x"]


def test_realm_setting(client: Client, provider: Provider, settings: Any) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "BEARER_REALM": "crm"}
    assert get(client)["WWW-Authenticate"].startswith('Bearer realm="crm", ')


def test_refusals_are_logged_with_a_reason_and_never_the_token(
    client: Client, fake_op: FakeOP, jwt_mode: Provider, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="django_duo_oidc")
    good = issue(fake_op, scope="email")
    bad = issue(fake_op, aud="elsewhere")
    get(client, token=good)
    get(client, token=bad)
    messages = [r.getMessage() for r in caplog.records]
    assert any("InvalidClaim" in m and "claim aud" in m for m in messages)
    assert any("Scope denied: bearer sub alice-sub" in m for m in messages)
    for token in (good, bad):
        assert all(token not in m and token.split(".")[2] not in m for m in messages)


def test_the_example_api_body(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    _status, payload, _ = fake_op.client_credentials_grant({"scope": "crm.contacts.read"})
    body = json.loads(get(client, token=payload["access_token"]).content)
    assert body["caller"] == {"client_id": fake_op.client_id}
    assert [c["name"] for c in body["contacts"]] == ["Ada Lovelace", "Grace Hopper"]
