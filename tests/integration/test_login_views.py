"""The login flow through the example project's contract URLs, against the in-process fake provider.

Each bad input is its own test and fails when the check it names is removed.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from django_duo_oidc import signals
from django_duo_oidc.login import session as stored_session
from django_duo_oidc.models import Identity, Provider
from tests.conftest import captured, query
from tests.fakeop import FakeOP

pytestmark = pytest.mark.django_db
User = get_user_model()


def start(client: Client, url: str = "/oidc/login/?provider=duo&next=/me/") -> str:
    response = client.get(url)
    assert response.status_code == 302, response.content
    return response["Location"]


def login(client: Client, op: FakeOP, url: str = "/oidc/login/?provider=duo&next=/me/", **kwargs: Any) -> Any:
    return client.get("/oidc/callback/?" + op.authorize(start(client, url), **kwargs))


def me(client: Client) -> dict[str, Any]:
    return client.get("/me/").json()


def token_calls(op: FakeOP) -> int:
    return sum(1 for _m, name in op.calls if name == "token")


@pytest.fixture
def failures() -> Any:
    with captured(signals.login_failed) as seen:
        yield seen


# The happy path -----------------------------------------------------------------------------------


def test_login_creates_linked_user_and_lands_on_next(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    response = login(client, fake_op)
    assert response.status_code == 302
    assert response["Location"] == "/me/"
    assert me(client) == {
        "authenticated": True,
        "username": "alice@example.test",
        "email": "alice@example.test",
        "groups": [],
        "scopes": ["email", "groups", "openid", "profile"],
    }
    identity = Identity.objects.get(provider=provider, sub="alice")
    assert identity.user.first_name == "Alice"
    assert identity.user.last_name == "Example"
    assert not identity.user.has_usable_password()


def test_authorization_request_has_pkce_state_nonce_and_exact_redirect(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    params = query(start(client, "/oidc/login/?provider=duo&login_hint=ann@example.com&prompt=login&max_age=120"))
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32
    assert params["redirect_uri"] == "http://testserver/oidc/callback/"
    assert params["scope"].split() == ["email", "groups", "openid", "profile"]
    assert (params["login_hint"], params["prompt"], params["max_age"]) == ("ann@example.com", "login", "120")
    assert "code_verifier" not in params


def test_bare_login_uses_the_default_provider(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    assert start(client, "/oidc/login/").startswith(f"{fake_op.issuer}/authorize?")
    response = client.get("/oidc/callback/?" + fake_op.authorize(start(client, "/oidc/login/")))
    assert response["Location"] == "/me/"  # LOGIN_REDIRECT_URL


def test_session_key_is_rotated_at_login(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    location = start(client)
    before = client.cookies["sessionid"].value
    client.get("/oidc/callback/?" + fake_op.authorize(location))
    assert client.cookies["sessionid"].value != before


def test_two_tabs_can_log_in_at_once(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    first, second = start(client), start(client)
    assert client.get("/oidc/callback/?" + fake_op.authorize(second)).status_code == 302
    assert client.get("/oidc/callback/?" + fake_op.authorize(first)).status_code == 302
    assert me(client)["authenticated"] is True


def test_tokens_stay_server_side(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    response = login(client, fake_op)
    access = fake_op.last_access_token
    for cookie in client.cookies.values():
        assert access not in cookie.value
    assert access not in response["Location"]
    assert stored_session.access_token(client.session["duo_oidc"]) == access  # sealed at rest (item 22)


def test_client_secret_post_provider(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    provider.token_auth_method = "client_secret_post"
    provider.save()
    assert login(client, fake_op).status_code == 302
    assert me(client)["authenticated"] is True


# Granted scopes come from what the provider granted ------------------------------------------------


def test_scopes_come_from_the_token_response_not_the_request(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope="openid email")  # the provider down-scoped silently
    assert me(client)["scopes"] == ["email", "openid"]


def test_scopes_fall_back_to_the_access_token_claim(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.token_scope = ""  # Duo's documented token response has no scope field
    login(client, fake_op, scope="openid profile")
    assert me(client)["scopes"] == ["openid", "profile"]


def test_missing_scope_everywhere_means_only_openid(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.token_scope = ""
    fake_op.access_token_format = "opaque"
    login(client, fake_op)
    assert me(client)["scopes"] == ["openid"]


# Bad state, replay, expiry -----------------------------------------------------------------------


def test_replayed_callback_is_refused(client: Client, fake_op: FakeOP, provider: Provider, failures: list) -> None:
    callback = "/oidc/callback/?" + fake_op.authorize(start(client))
    assert client.get(callback).status_code == 302
    client.post("/oidc/logout/")
    response = client.get(callback)
    assert response.status_code == 400
    assert b"already used" in response.content
    assert me(client) == {"authenticated": False}
    assert failures[-1]["reason"] == "invalid_request"
    assert token_calls(fake_op) == 1


def test_a_state_claimed_by_a_concurrent_request_is_refused(
    client: Client, fake_op: FakeOP, provider: Provider, failures: list
) -> None:
    """Two requests with the same state that both loaded the session before either saved it (a double-
    submitted callback on two workers): the second finds the entry in its copy, and must still be refused
    before it redeems the code."""
    callback = "/oidc/callback/?" + fake_op.authorize(start(client))
    loaded_by_the_other_request = dict(client.session.items())
    assert client.get(callback).status_code == 302
    copy = import_module(settings.SESSION_ENGINE).SessionStore()
    copy.update(loaded_by_the_other_request)
    copy.save()
    other = Client()
    other.cookies[settings.SESSION_COOKIE_NAME] = copy.session_key
    response = other.get(callback)
    assert response.status_code == 400
    assert b"already being completed" in response.content
    assert me(other) == {"authenticated": False}
    assert me(client)["authenticated"] is True  # the first login stands
    assert token_calls(fake_op) == 1
    assert failures[-1]["reason"] == "invalid_request"


@pytest.mark.parametrize("suffix", ["?code=abc&state=forged", "?code=abc", "?state=&code=abc", ""])
def test_unknown_or_missing_state_is_refused(client: Client, fake_op: FakeOP, provider: Provider, suffix: str) -> None:
    start(client)
    response = client.get("/oidc/callback/" + suffix)
    assert response.status_code == 400
    assert me(client) == {"authenticated": False}
    assert token_calls(fake_op) == 0


def test_state_from_another_browser_is_refused(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    callback = "/oidc/callback/?" + fake_op.authorize(start(client))
    other = Client()
    assert other.get(callback).status_code == 400
    assert token_calls(fake_op) == 0


def test_expired_state_is_refused(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    location = start(client)
    session = client.session
    state = query(location)["state"]
    session["oidc_states"][state]["added_on"] -= 3600
    session.save()
    response = client.get("/oidc/callback/?" + fake_op.authorize(location))
    assert response.status_code == 400
    assert b"expired" in response.content
    assert token_calls(fake_op) == 0


def test_tampered_code_verifier_fails_at_the_provider(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    location = start(client)
    session = client.session
    session["oidc_states"][query(location)["state"]]["code_verifier"] = "x" * 64
    session.save()
    response = client.get("/oidc/callback/?" + fake_op.authorize(location))
    assert response.status_code == 400
    assert me(client) == {"authenticated": False}


# Provider errors and RFC 9207 ------------------------------------------------------------------------


def test_provider_error_ends_cleanly_without_redeeming(
    client: Client, fake_op: FakeOP, provider: Provider, failures: list
) -> None:
    response = login(client, fake_op, error="access_denied")
    assert response.status_code == 403
    assert token_calls(fake_op) == 0
    assert me(client) == {"authenticated": False}
    assert failures[-1]["reason"] == "access_denied"


def test_callback_without_code_is_refused(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    state = query(start(client))["state"]
    assert client.get(f"/oidc/callback/?state={state}").status_code == 400


def test_iss_mismatch_never_redeems_the_code(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    response = login(client, fake_op, iss="https://evil.example/oidc/x")
    assert response.status_code == 400
    assert token_calls(fake_op) == 0
    assert me(client) == {"authenticated": False}


def test_iss_required_when_the_provider_announces_it(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.discovery_overrides["authorization_response_iss_parameter_supported"] = True
    assert login(client, fake_op, iss=None).status_code == 400
    assert token_calls(fake_op) == 0
    assert login(client, fake_op).status_code == 302


def test_iss_optional_when_not_announced(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    assert login(client, fake_op, iss=None).status_code == 302


# Bad ID tokens ------------------------------------------------------------------------------------

BAD_ID_TOKENS = {
    "alg none": {"sign_with": "none"},
    "HMAC keyed with the client secret": {"sign_with": "hs256-client-secret"},
    "HMAC keyed with the public key": {"sign_with": "hs256-public-key"},
    "forged signature": {"sign_with": "other-key"},
    "unknown kid": {"id_token_header": {"kid": "unknown"}},
    "access token type": {"id_token_header": {"typ": "at+jwt"}},
    "wrong issuer": {"id_token_claims": {"iss": "https://evil.example/oidc/x"}},
    "wrong audience": {"id_token_claims": {"aud": "another-client"}},
    "untrusted extra audience": {"id_token_claims": {"aud": [FakeOP().client_id, "x"], "azp": FakeOP().client_id}},
    "wrong azp": {"id_token_claims": {"azp": "another-client"}},
    "wrong nonce": {"id_token_claims": {"nonce": "replayed"}},
    "no nonce": {"id_token_drop": {"nonce"}},
    "expired": {"id_token_claims": {"exp": 1_000_000_000}},
    "issued in the future": {"id_token_claims": {"iat": 4_000_000_000, "exp": 4_000_000_300}},
    "no sub": {"id_token_drop": {"sub"}},
    "wrong at_hash": {"id_token_claims": {"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}},
}


@pytest.mark.parametrize("knobs", BAD_ID_TOKENS.values(), ids=BAD_ID_TOKENS.keys())
def test_bad_id_token_creates_no_session(
    client: Client, fake_op: FakeOP, provider: Provider, failures: list, knobs: dict[str, Any]
) -> None:
    for name, value in knobs.items():
        setattr(fake_op, name, value)
    response = login(client, fake_op)
    assert response.status_code == 502
    assert b"could not log you in" in response.content
    assert me(client) == {"authenticated": False}
    assert not User.objects.exists()
    assert failures and failures[-1]["provider"] == provider


def test_rotated_key_is_picked_up(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    assert login(client, fake_op).status_code == 302
    client.post("/oidc/logout/")
    fake_op.kid = "b" * 64  # the provider rotated its key: the old JWKS is cached
    assert login(client, fake_op).status_code == 302
    assert sum(1 for _m, name in fake_op.calls if name == "jwks") == 2


def test_max_age_requested_needs_recent_auth_time(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.id_token_claims = {"auth_time": 1_000_000_000}
    assert login(client, fake_op, "/oidc/login/?provider=duo&max_age=300").status_code == 502
    assert me(client) == {"authenticated": False}


# Provider faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "fault", "status"),
    [
        ("token", "down", 503),
        ("token", "timeout", 503),
        ("token", 500, 503),
        ("token", "garbage", 502),
        ("userinfo", "down", 503),
        ("userinfo", "garbage", 502),
        ("jwks", "timeout", 503),
        ("jwks", "garbage", 502),
    ],
)
def test_provider_fault_during_callback(
    client: Client, fake_op: FakeOP, provider: Provider, endpoint: str, fault: Any, status: int
) -> None:
    location = start(client)
    fake_op.faults[endpoint] = fault
    response = client.get("/oidc/callback/?" + fake_op.authorize(location))
    assert response.status_code == status
    assert me(client) == {"authenticated": False}


@pytest.mark.parametrize("fault", ["down", "timeout", 500, "garbage"])
def test_provider_fault_at_login_start(client: Client, fake_op: FakeOP, provider: Provider, fault: Any) -> None:
    fake_op.faults[".well-known/openid-configuration"] = fault
    response = client.get("/oidc/login/?provider=duo")
    assert response.status_code in (502, 503)
    assert b"could not log you in" in response.content
    assert "oidc_states" not in client.session


def test_refused_code_is_a_clear_400(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    location = start(client)
    callback = "/oidc/callback/?" + fake_op.authorize(location)
    fake_op.codes.clear()  # the provider already considers the code used
    response = client.get(callback)
    assert response.status_code == 400
    assert b"invalid_grant" in response.content


@pytest.mark.parametrize(
    ("drop", "override"),
    [({"id_token"}, {}), ({"access_token"}, {}), (set(), {"token_type": "mac"}), (set(), {"expires_in": "soon"})],
)
def test_incomplete_token_response(
    client: Client, fake_op: FakeOP, provider: Provider, drop: set[str], override: dict[str, Any]
) -> None:
    fake_op.token_drop = drop
    fake_op.token_overrides = override
    assert login(client, fake_op).status_code == 502
    assert me(client) == {"authenticated": False}


def test_userinfo_about_another_user_is_refused(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.userinfo_overrides = {"sub": "mallory"}
    assert login(client, fake_op).status_code == 502
    assert not User.objects.exists()


def test_userinfo_cannot_override_id_token_claims(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.userinfo_overrides = {"iss": "https://evil.example", "given_name": "Fresh"}
    assert login(client, fake_op).status_code == 302
    assert User.objects.get().first_name == "Fresh"


def test_missing_secret_is_a_clear_error(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = start(client)
    monkeypatch.delenv("DUO_FAKE_OP_SECRET")
    response = client.get("/oidc/callback/?" + fake_op.authorize(location))
    assert response.status_code == 503  # the kind page, without the variable's name (test_papercuts_15)
    assert me(client) == {"authenticated": False}


# next ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/", "http://testserver.evil.example/", "javascript:alert(1)"]
)
def test_offsite_next_is_refused(client: Client, fake_op: FakeOP, provider: Provider, next_url: str) -> None:
    from urllib.parse import quote

    response = client.get(f"/oidc/login/?provider=duo&next={quote(next_url)}")
    assert response.status_code == 400
    assert b"not on this site" in response.content
    assert not fake_op.calls


def test_same_site_next_with_query_is_kept(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    response = login(client, fake_op, "/oidc/login/?provider=duo&next=/me/%3Fa%3D1")
    assert response["Location"] == "/me/?a=1"


# Providers ---------------------------------------------------------------------------------------------


def test_unknown_or_disabled_provider_is_404(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    assert client.get("/oidc/login/?provider=nope").status_code == 404
    provider.enabled = False
    provider.save()
    assert client.get("/oidc/login/?provider=duo").status_code == 404


def test_provider_disabled_mid_login_is_refused(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    location = start(client)
    Provider.objects.filter(pk=provider.pk).update(enabled=False)
    assert client.get("/oidc/callback/?" + fake_op.authorize(location)).status_code == 400
    assert token_calls(fake_op) == 0


# Logging and signals -------------------------------------------------------------------------------


def test_logs_and_signals_carry_no_token_code_or_secret(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    with captured(signals.login_succeeded) as sent, caplog.at_level(logging.DEBUG):
        location = start(client)
        callback = fake_op.authorize(location)
        client.get("/oidc/callback/?" + callback)
        client.get("/oidc/callback/?" + callback)  # a replay, logged as a failure
    # Everything the app adds besides the caller's own request object.
    seen = [{k: v for k, v in kwargs.items() if k != "request"} for kwargs in sent]
    code = query("?" + callback)["code"]
    text = caplog.text
    assert "Login of user" in text and "Login failed" in text
    for secret in (fake_op.last_access_token, code, fake_op.client_secret, query(location)["state"]):
        assert secret not in text
        assert secret not in repr(seen)
    assert seen[0]["scopes"] == frozenset({"openid", "profile", "email", "groups"})
