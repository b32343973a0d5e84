"""The fake Duo Web SDK v4 server (tests/fakeduo/universal.py) driven by Duo's own ``duo_universal`` SDK.

What the app's MFA tests rely on: the fake accepts exactly what the real SDK sends, answers what the SDK
accepts, and refuses (as Duo does) the forged, replayed and foreign requests an attacker or a careless
integrator would send. Hand-made JWTs appear only where the SDK cannot be made to send the bad input.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from duo_universal import Client, DuoException

from tests.fakeduo.universal_fixtures import UniversalController

# Duo's client secrets are 40 characters (DUO.md 3): below PyJWT's advice for HS512, but that is the protocol.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

REDIRECT_URI = "https://app.example.test/duo/callback/"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def sdk(duo: UniversalController, **overrides: Any) -> Client:
    args = {
        "client_id": duo.client_id,
        "client_secret": duo.client_secret,
        "host": duo.api_host,
        "redirect_uri": REDIRECT_URI,
        "duo_certs": duo.ca_path,
        **overrides,
    }
    return Client(**args)


def callback_params(url: str) -> dict[str, str]:
    assert url.startswith(REDIRECT_URI), url
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def get(duo: UniversalController, url: str) -> requests.Response:
    return duo.http.get(url, allow_redirects=False, timeout=10)


def assertion(
    duo: UniversalController, endpoint: str, *, key: str | None = None, expires_in: float = 300, **claims: Any
) -> str:
    """A client assertion as the SDK makes one, with ``claims`` changed (None drops a claim)."""
    body: dict[str, Any] = {
        "iss": duo.client_id,
        "sub": duo.client_id,
        "aud": f"{duo.base_url}{endpoint}",
        "exp": time.time() + expires_in,
        "jti": "j" * 36,
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key or duo.client_secret, algorithm="HS512")


def approved(duo: UniversalController, username: str = "alice", nonce: str | None = None) -> tuple[Client, str]:
    """An approved prompt: the SDK client and the duo_code the callback carries."""
    client = sdk(duo)
    state = client.generate_state()
    params = callback_params(duo.approve(client.create_auth_url(username, state, nonce=nonce)))
    assert params["state"] == state
    assert "code" not in params  # duo_code, not code (use_duo_code_attribute)
    return client, params["duo_code"]


# --- health check -------------------------------------------------------------------------------------


def test_health_check_ok(fake_duo_universal: UniversalController) -> None:
    answer = sdk(fake_duo_universal).health_check()
    assert answer["stat"] == "OK"
    assert abs(answer["response"]["timestamp"] - time.time()) < 5
    assert fake_duo_universal.stats()["health_checks"] == 1


def test_health_check_with_a_wrong_secret_raises_40002(fake_duo_universal: UniversalController) -> None:
    with pytest.raises(DuoException) as raised:
        sdk(fake_duo_universal, client_secret="x" * 40).health_check()
    detail = raised.value.args[0]
    assert "40002" in str(detail) and "invalid_client" in str(detail)
    assert fake_duo_universal.stats()["bad_assertions"] == 1


def test_health_check_fail_and_down_and_slow(fake_duo_universal: UniversalController) -> None:
    client = sdk(fake_duo_universal)
    fake_duo_universal.faults(health="fail")
    with pytest.raises(DuoException, match="FAIL"):
        client.health_check()
    fake_duo_universal.faults(health="ok", down=True)
    with pytest.raises(DuoException, match="Connection"):
        client.health_check()
    fake_duo_universal.faults(down=False, delay=0.4)
    started = time.monotonic()
    assert client.health_check()["stat"] == "OK"
    assert time.monotonic() - started >= 0.4


@pytest.mark.parametrize(
    "change",
    [
        {"aud": "https://api-other.duosecurity.com/oauth/v1/health_check"},
        {"iss": "DIOTHERCLIENTID00000"},
        {"sub": "DIOTHERCLIENTID00000"},
        {"expires_in": -120},
        {"expires_in": 3600},
        {"jti": None},
        {"key": "y" * 40},
    ],
    ids=["aud", "iss", "sub", "expired", "too-long", "no-jti", "other-key"],
)
def test_health_check_refuses_a_bad_assertion(fake_duo_universal: UniversalController, change: dict[str, Any]) -> None:
    duo = fake_duo_universal
    token = assertion(duo, "/oauth/v1/health_check", **change)
    answer = duo.http.post(duo.base_url + "/oauth/v1/health_check", data={"client_id": duo.client_id,
                           "client_assertion": token}, timeout=10)  # fmt: skip
    assert answer.status_code == 400
    body = answer.json()
    assert (body["stat"], body["code"], body["message"]) == ("FAIL", 40002, "invalid_client")
    assert body["message_detail"] == "The provided client_assertion was invalid."


def test_an_assertion_is_single_use(fake_duo_universal: UniversalController) -> None:
    duo = fake_duo_universal
    form = {"client_id": duo.client_id, "client_assertion": assertion(duo, "/oauth/v1/health_check")}
    first = duo.http.post(duo.base_url + "/oauth/v1/health_check", data=form, timeout=10)
    again = duo.http.post(duo.base_url + "/oauth/v1/health_check", data=form, timeout=10)
    assert first.json()["stat"] == "OK"
    assert again.status_code == 400 and again.json()["code"] == 40002


def test_credentials_of_another_app_type_are_unauthorized(fake_duo_universal: UniversalController) -> None:
    duo = fake_duo_universal
    other = sdk(duo, client_id=duo.other_app_client_id, client_secret=duo.other_app_client_secret)
    with pytest.raises(DuoException):
        other.health_check()  # the body has no "stat": the SDK fails on it
    answer = get(duo, other.create_auth_url("alice", other.generate_state()))
    assert answer.status_code == 400
    assert answer.json() == {"error": "unauthorized_request", "error_description": "Unauthorized OIDC request"}
    assert duo.stats()["unauthorized"] == 2


# --- the prompt and the code exchange ------------------------------------------------------------------


def test_approve_then_exchange_gives_allow_for_that_user(fake_duo_universal: UniversalController) -> None:
    nonce = "n" * 30
    client, code = approved(fake_duo_universal, "alice", nonce=nonce)
    result = client.exchange_authorization_code_for_2fa_result(code, "alice", nonce=nonce)
    assert result["preferred_username"] == "alice"
    assert result["auth_result"] == {"result": "allow", "status": "allow", "status_msg": "Login Successful"}
    assert result["auth_context"]["factor"] == "Duo Push"
    assert result["auth_context"]["result"] == "allow"
    assert result["nonce"] == nonce
    assert result["iss"] == f"{fake_duo_universal.base_url}/oauth/v1/token"
    assert result["aud"] == fake_duo_universal.client_id
    assert result["exp"] > result["iat"] >= result["auth_time"] - 1
    stats = fake_duo_universal.stats()
    assert (stats["authorizes"], stats["prompts"], stats["decisions"], stats["tokens"]) == (1, 1, 1, 1)


def test_the_token_answer_has_every_field_the_go_sdk_requires(fake_duo_universal: UniversalController) -> None:
    duo = fake_duo_universal
    _client, code = approved(duo)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": duo.client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(duo, "/oauth/v1/token"),
    }
    answer = duo.http.post(duo.base_url + "/oauth/v1/token", data=form, timeout=10)  # a form body, as Go sends
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"id_token", "access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    header = jwt.get_unverified_header(body["id_token"])
    assert header["alg"] == "HS512"


def test_deny_is_a_result_not_an_exception(fake_duo_universal: UniversalController) -> None:
    client = sdk(fake_duo_universal)
    state = client.generate_state()
    params = callback_params(fake_duo_universal.deny(client.create_auth_url("bob", state)))
    assert params["state"] == state
    # The SDK returns a "deny" without raising: the app must read auth_result itself (REAL.md).
    result = client.exchange_authorization_code_for_2fa_result(params["duo_code"], "bob")
    assert result["auth_result"]["result"] == "deny"
    assert result["auth_context"]["result"] == "deny"
    assert result["preferred_username"] == "bob"


def test_a_replayed_code_is_refused(fake_duo_universal: UniversalController) -> None:
    client, code = approved(fake_duo_universal)
    client.exchange_authorization_code_for_2fa_result(code, "alice")
    with pytest.raises(DuoException, match="invalid_grant"):
        client.exchange_authorization_code_for_2fa_result(code, "alice")
    assert fake_duo_universal.stats()["replays"] == 1


def test_an_unknown_code_and_another_redirect_uri_are_refused(fake_duo_universal: UniversalController) -> None:
    client, code = approved(fake_duo_universal)
    with pytest.raises(DuoException, match="invalid_grant"):
        client.exchange_authorization_code_for_2fa_result("not-a-code", "alice")
    elsewhere = sdk(fake_duo_universal, redirect_uri="https://evil.example.test/cb")
    with pytest.raises(DuoException, match="invalid_grant"):
        elsewhere.exchange_authorization_code_for_2fa_result(code, "alice")
    # RFC 6749 4.1.2: the code was presented once (with the wrong redirect_uri), so it is gone.
    with pytest.raises(DuoException, match="invalid_grant"):
        client.exchange_authorization_code_for_2fa_result(code, "alice")


def test_a_bad_client_assertion_does_not_burn_the_code(fake_duo_universal: UniversalController) -> None:
    duo = fake_duo_universal
    client, code = approved(duo)
    with pytest.raises(DuoException, match="invalid_client"):
        sdk(duo, client_secret="z" * 40).exchange_authorization_code_for_2fa_result(code, "alice")
    bad_iss = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": duo.client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(duo, "/oauth/v1/token", iss="DIOTHERCLIENTID00000"),
    }
    answer = duo.http.post(duo.base_url + "/oauth/v1/token", params=bad_iss, timeout=10)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_client",
        "error_description": "Invalid Client assertion: The `iss` claim must match the supplied client_id",
    }
    wrong_aud = {**bad_iss, "client_assertion": assertion(duo, "/oauth/v1/health_check", jti="k" * 36)}
    assert duo.http.post(duo.base_url + "/oauth/v1/token", params=wrong_aud, timeout=10).status_code == 400
    assert duo.stats()["bad_assertions"] == 3
    assert client.exchange_authorization_code_for_2fa_result(code, "alice")["auth_result"]["result"] == "allow"


def test_a_parameter_given_twice_with_two_values_is_refused(fake_duo_universal: UniversalController) -> None:
    duo = fake_duo_universal
    _client, code = approved(duo)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": duo.client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(duo, "/oauth/v1/token"),
    }
    answer = duo.http.post(duo.base_url + "/oauth/v1/token", params={"code": "other"}, data=form, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"


def test_a_wrong_username_in_the_answer_is_refused_by_the_sdk(fake_duo_universal: UniversalController) -> None:
    fake_duo_universal.faults(wrong_username=True)
    client, code = approved(fake_duo_universal, "alice")
    with pytest.raises(DuoException, match="username"):
        client.exchange_authorization_code_for_2fa_result(code, "alice")


def test_decision_and_factor_faults(fake_duo_universal: UniversalController) -> None:
    duo = fake_duo_universal
    duo.faults(decision="allow", factor="Bypass Code")
    client = sdk(duo)
    state = client.generate_state()
    first = get(duo, client.create_auth_url("carol", state))  # no prompt page: straight back
    assert first.status_code == 302
    params = callback_params(first.headers["Location"])
    result = client.exchange_authorization_code_for_2fa_result(params["duo_code"], "carol")
    assert result["auth_context"]["factor"] == "Bypass Code"
    assert duo.stats()["prompts"] == 0
    duo.faults(decision="deny")
    params = callback_params(duo.approve(client.create_auth_url("carol", client.generate_state())))
    assert client.exchange_authorization_code_for_2fa_result(params["duo_code"], "carol")["auth_result"]["result"] == (
        "deny"
    )


def test_a_lying_duo_is_caught_by_the_sdk_where_the_sdk_checks(fake_duo_universal: UniversalController) -> None:
    duo = fake_duo_universal
    for claims in ({"aud": "DIOTHERCLIENTID00000"}, {"iss": "https://api-other.duosecurity.com/oauth/v1/token"},
                   {"exp": int(time.time()) - 120}, {"iat": None}):  # fmt: skip
        duo.faults(claims=claims)
        client, code = approved(duo)
        with pytest.raises(DuoException):
            client.exchange_authorization_code_for_2fa_result(code, "alice")
    duo.faults(claims={}, bad_signature=True)
    client, code = approved(duo)
    with pytest.raises(DuoException, match="Signature"):
        client.exchange_authorization_code_for_2fa_result(code, "alice")


def test_what_the_sdk_leaves_to_the_app(fake_duo_universal: UniversalController) -> None:
    """The SDK passes an answer with no auth_result, or with a nonce when none was asked: the app checks."""
    duo = fake_duo_universal
    duo.faults(claims={"auth_result": None, "auth_time": None, "nonce": "x" * 20})
    client, code = approved(duo)
    result = client.exchange_authorization_code_for_2fa_result(code, "alice")
    assert "auth_result" not in result and "auth_time" not in result
    assert result["nonce"] == "x" * 20


def test_a_broken_duo_answers_html_and_the_sdk_raises_a_bare_json_error(
    fake_duo_universal: UniversalController,
) -> None:
    duo = fake_duo_universal
    client, code = approved(duo)
    duo.faults(broken=True)
    with pytest.raises(DuoException):
        client.health_check()
    # The exchange's error path parses the body outside its try: a non-JSON error page escapes the SDK as
    # a JSONDecodeError, not a DuoException (duo_universal 2.3.1); callers must catch more than DuoException.
    with pytest.raises(json.JSONDecodeError):
        client.exchange_authorization_code_for_2fa_result(code, "alice")


def test_down_during_the_exchange_raises(fake_duo_universal: UniversalController) -> None:
    client, code = approved(fake_duo_universal)
    fake_duo_universal.faults(down=True)
    with pytest.raises(DuoException):
        client.exchange_authorization_code_for_2fa_result(code, "alice")
    fake_duo_universal.faults(down=False)
    assert client.exchange_authorization_code_for_2fa_result(code, "alice")["preferred_username"] == "alice"


def test_the_prompt_is_single_use_and_escapes_the_username(fake_duo_universal: UniversalController) -> None:
    duo = fake_duo_universal
    client = sdk(duo)
    page = duo.prompt(client.create_auth_url("<b>mallory</b>", client.generate_state()))
    assert page.status_code == 200
    assert "&lt;b&gt;mallory&lt;/b&gt;" in page.text and "<b>mallory" not in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert duo.http.post(page.url, data={"decision": "allow"}, allow_redirects=False, timeout=10).status_code == 302
    again = duo.http.post(page.url, data={"decision": "allow"}, allow_redirects=False, timeout=10)
    assert again.status_code == 400 and "Location" not in again.headers


# --- the authorize request: forged or malformed --------------------------------------------------------


def request_jwt(duo: UniversalController, **changes: Any) -> str:
    claims: dict[str, Any] = {
        "scope": "openid",
        "redirect_uri": REDIRECT_URI,
        "client_id": duo.client_id,
        "iss": duo.client_id,
        "aud": duo.base_url,
        "exp": time.time() + 300,
        "state": "s" * 36,
        "response_type": "code",
        "duo_uname": "alice",
        "use_duo_code_attribute": True,
    }
    key = changes.pop("_key", duo.client_secret)
    algorithm = changes.pop("_alg", "HS512")
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=algorithm)


def authorize_url(duo: UniversalController, request: str, **extra: str) -> str:
    query = {"response_type": "code", "client_id": duo.client_id, "request": request, **extra}
    return f"{duo.base_url}/oauth/v1/authorize?{urlencode(query)}"


def test_a_tampered_request_jwt_is_refused_without_a_redirect(fake_duo_universal: UniversalController) -> None:
    duo = fake_duo_universal
    good = sdk(duo).create_auth_url("alice", "s" * 36)
    request = parse_qs(urlsplit(good).query)["request"][0]
    header, payload, signature = request.split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"alice"', b'"admin"')
    ).decode()
    forged = ".".join([header, forged_payload, signature])
    answer = get(duo, authorize_url(duo, forged))
    assert answer.status_code == 400 and "Location" not in answer.headers
    assert answer.json()["error"] == "invalid_request"
    assert get(duo, good).status_code == 302  # the untouched one still works
    assert duo.stats()["bad_requests"] == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"_key": "w" * 40},
        {"_alg": "HS256"},
        {"_alg": "none", "_key": None},
        {"aud": "https://api-other.duosecurity.com"},
        {"iss": "DIOTHERCLIENTID00000"},
        {"client_id": "DIOTHERCLIENTID00000"},
        {"exp": -120},
        {"exp": 3600},
        {"exp": None},
        {"scope": "openid profile"},
        {"response_type": "token"},
        {"use_duo_code_attribute": None},
        {"redirect_uri": None},
        {"redirect_uri": "javascript:alert(1)"},
        {"redirect_uri": "/relative"},
        {"state": "s" * 15},
        {"state": "s" * 1025},
        {"state": None},
        {"duo_uname": ""},
        {"duo_uname": None},
    ],
    ids=lambda c: "-".join(f"{k}={str(v)[:12]}" for k, v in c.items()),
)
def test_a_malformed_request_is_refused_without_a_redirect(
    fake_duo_universal: UniversalController, changes: dict[str, Any]
) -> None:
    duo = fake_duo_universal
    if changes.get("exp") is not None:
        changes = {"exp": time.time() + changes["exp"]}
    answer = get(duo, authorize_url(duo, request_jwt(duo, **changes)))
    assert answer.status_code == 400, answer.text
    assert "Location" not in answer.headers
    assert answer.json()["error"] == "invalid_request"


def test_the_authorize_query_itself_is_checked(fake_duo_universal: UniversalController) -> None:
    duo = fake_duo_universal
    request = request_jwt(duo)
    assert get(duo, authorize_url(duo, request)).status_code == 302  # the baseline is good
    endpoint = f"{duo.base_url}/oauth/v1/authorize?"
    bad_type = {"response_type": "token", "client_id": duo.client_id, "request": request}
    assert get(duo, endpoint + urlencode(bad_type)).status_code == 400
    no_request = {"response_type": "code", "client_id": duo.client_id}
    assert get(duo, endpoint + urlencode(no_request)).status_code == 400
    assert get(duo, authorize_url(duo, request, nonce="short")).status_code == 400
    inside = request_jwt(duo, nonce="m" * 20)
    assert get(duo, authorize_url(duo, inside, nonce="q" * 20)).status_code == 400  # two different nonces


def test_the_fake_serves_only_tls(fake_duo_universal: UniversalController) -> None:
    plain = fake_duo_universal.base_url.replace("https://", "http://")
    with pytest.raises(requests.ConnectionError):
        requests.post(plain + "/oauth/v1/health_check", timeout=5)
