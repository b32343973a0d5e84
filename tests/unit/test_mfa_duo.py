"""django_duo_oidc.mfa.duo: the SDK's failures sorted into unreachable (fail mode applies), refused
credentials (always closed), a refused code, and an answer that did not verify. No network."""

from __future__ import annotations

import json
import ssl

import duo_universal
import duo_universal.client as sdk
import pytest
import requests
import urllib3

from django_duo_oidc.core.errors import ConfigurationError, InvalidClaim, ProviderUnavailable, TokenEndpointError
from django_duo_oidc.mfa import duo
from django_duo_oidc.mfa.duo import DuoAnswer, classify


def wrapped(inner: BaseException) -> duo_universal.DuoException:
    """As the SDK raises: DuoException(e), raised inside the except block that caught e."""
    try:
        try:
            raise inner
        except Exception as exc:
            raise duo_universal.DuoException(exc) from None
    except duo_universal.DuoException as outer:
        return outer


def test_the_sdk_module_posts_through_the_bounded_transport() -> None:
    assert isinstance(sdk.requests, duo._DuoTransport)
    assert sdk.requests.Session is requests.Session  # everything else is the real module
    duo.install_transport()
    assert isinstance(sdk.requests, duo._DuoTransport)


def test_no_answer_is_unreachable() -> None:
    error = classify(wrapped(requests.exceptions.ConnectionError("refused")), None, during="health check")
    assert isinstance(error, ProviderUnavailable) and error.error == "duo_unavailable"


def test_a_timeout_is_unreachable() -> None:
    error = classify(wrapped(requests.exceptions.ReadTimeout("slow")), None, during="token exchange")
    assert isinstance(error, ProviderUnavailable)


def test_a_refused_certificate_is_a_misconfiguration_not_an_outage() -> None:
    reason = ssl.SSLCertVerificationError(1, "certificate verify failed")
    retry = urllib3.exceptions.MaxRetryError(None, "https://api-x.duosecurity.com/oauth/v1/health_check", reason)
    error = classify(wrapped(requests.exceptions.SSLError(retry)), None, during="health check")
    assert isinstance(error, ConfigurationError) and error.error == "duo_misconfigured"


def test_a_handshake_cut_short_is_unreachable() -> None:
    reason = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    retry = urllib3.exceptions.MaxRetryError(None, "https://api-x.duosecurity.com/", reason)
    error = classify(wrapped(requests.exceptions.SSLError(retry)), None, during="health check")
    assert isinstance(error, ProviderUnavailable)


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_a_server_error_or_rate_limit_is_unreachable(status: int) -> None:
    answer = DuoAnswer(status, {"stat": "FAIL"} if status != 502 else None)
    assert isinstance(classify(wrapped(KeyError("stat")), answer, during="health check"), ProviderUnavailable)


def test_40002_is_a_misconfiguration() -> None:
    answer = DuoAnswer(400, {"stat": "FAIL", "code": 40002, "message": "invalid_client"})
    error = classify(wrapped(duo_universal.DuoException(answer.body)), answer, during="health check")
    assert isinstance(error, ConfigurationError) and "40002" in error.description


def test_unauthorized_request_names_the_application_type() -> None:
    answer = DuoAnswer(400, {"error": "unauthorized_request"})
    error = classify(wrapped(KeyError("stat")), answer, during="health check")
    assert isinstance(error, ConfigurationError) and "Web SDK" in error.description


def test_a_fail_body_with_status_200_is_not_taken_for_success() -> None:
    answer = DuoAnswer(200, {"stat": "FAIL", "code": 40002, "message": "invalid_client"})
    assert isinstance(classify(wrapped(KeyError("x")), answer, during="health check"), ConfigurationError)


def test_invalid_grant_at_the_token_endpoint_is_a_refused_code() -> None:
    answer = DuoAnswer(400, {"error": "invalid_grant"})
    error = classify(wrapped(duo_universal.DuoException(answer.body)), answer, during="token exchange")
    assert isinstance(error, TokenEndpointError) and error.error == "invalid_grant"


def test_a_non_json_error_body_is_still_classified() -> None:
    # duo_universal lets json.loads' error escape bare on a non-200 answer that is not JSON.
    error = classify(json.JSONDecodeError("x", "<html>", 0), DuoAnswer(400, None), during="token exchange")
    assert isinstance(error, ConfigurationError)


def test_a_username_mismatch_is_named() -> None:
    error = classify(duo_universal.DuoException(sdk.ERR_USERNAME), DuoAnswer(200, None), during="token exchange")
    assert isinstance(error, InvalidClaim) and error.claim == "preferred_username"


def test_a_nonce_mismatch_is_named() -> None:
    error = classify(duo_universal.DuoException(sdk.ERR_NONCE), DuoAnswer(200, None), during="token exchange")
    assert isinstance(error, InvalidClaim) and error.claim == "nonce"


def test_a_bad_signature_is_an_unverified_answer() -> None:
    import jwt

    error = classify(wrapped(jwt.InvalidSignatureError("bad")), DuoAnswer(200, None), during="token exchange")
    assert isinstance(error, InvalidClaim) and error.claim == "id_token"


def test_no_description_carries_what_the_exception_said() -> None:
    """requests' messages carry the token URL with its query (the duo_code, the client assertion)."""
    url = "/oauth/v1/token?grant_type=authorization_code&code=SECRETCODE&client_assertion=eyJSECRET"
    for error in (
        classify(wrapped(requests.exceptions.ConnectionError(url)), None, during="token exchange"),
        classify(wrapped(requests.exceptions.ReadTimeout(url)), None, during="token exchange"),
        classify(wrapped(ValueError(url)), DuoAnswer(200, None), during="token exchange"),
        classify(wrapped(ValueError(url)), DuoAnswer(400, {"error": url}), during="token exchange"),
    ):
        assert "SECRET" not in error.description


def test_the_transport_keeps_only_error_fields_of_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    class Response:
        status_code = 200

        @staticmethod
        def json() -> dict[str, str]:
            return {"id_token": "eyJ.secret", "access_token": "at", "stat": "OK"}

    seen: dict[str, object] = {}

    def post(url: str, **kwargs: object) -> Response:
        seen.update(kwargs)
        return Response()

    monkeypatch.setattr(requests, "post", post)
    sdk.requests.post("https://x/oauth/v1/token")
    assert seen["timeout"] == 10.0  # DUO_OIDC["HTTP_TIMEOUT"]'s default
    assert duo.last_answer() == DuoAnswer(200, {"stat": "OK"})


def test_a_rate_limit_is_unavailable_but_never_fails_open() -> None:
    error = classify(wrapped(KeyError("stat")), DuoAnswer(429, {"stat": "FAIL", "code": 42901}), during="health check")
    assert isinstance(error, ProviderUnavailable) and error.error == "duo_rate_limited"
    assert not duo.may_fail_open(error)


def test_only_an_unreachable_duo_may_fail_open() -> None:
    assert duo.may_fail_open(classify(wrapped(requests.exceptions.ConnectTimeout("x")), None, during="health check"))
    assert duo.may_fail_open(classify(wrapped(KeyError("stat")), DuoAnswer(503, None), during="health check"))
    refused = classify(wrapped(KeyError("stat")), DuoAnswer(400, {"error": "unauthorized_request"}), during="x")
    assert not duo.may_fail_open(refused)
    assert not duo.may_fail_open(ConfigurationError())
