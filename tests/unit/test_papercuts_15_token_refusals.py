"""A token endpoint's refusal says whether the code in it is the endpoint's own (issue 15: Check connection
tells ``invalid_client`` from ``invalid_grant``, and must not take this library's ``invalid_request``
for a bare 401 as the provider's word), and an empty client secret is a ``SecretUnavailable``."""

from __future__ import annotations

import pytest

from django_duo_oidc.core.errors import ConfigurationError, SecretUnavailable, TokenEndpointError
from django_duo_oidc.core.flow import ClientCredentials, exchange_code

from .test_resource_indicators import CLIENT, Recorder, client_for


def refusal(status: int, body: bytes, content_type: str = "application/json") -> TokenEndpointError:
    http = client_for(Recorder(status, body, content_type))
    with pytest.raises(TokenEndpointError) as caught:
        exchange_code(
            http, "https://op.example/token", CLIENT, code="c", redirect_uri="https://rp/cb", code_verifier="v"
        )
    return caught.value


@pytest.mark.parametrize(("status", "code"), [(400, "invalid_grant"), (401, "invalid_client")])
def test_an_oauth_error_body_is_the_endpoints_own_code(status: int, code: str) -> None:
    error = refusal(status, b'{"error": "%s"}' % code.encode())
    assert (error.error, error.stated, error.http_status) == (code, True, status)


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (401, b"", "text/plain"),
        (401, b"<html>no</html>", "text/html"),
        (403, b'{"error": "invalid_client"}', "application/json"),
    ],
)
def test_a_bare_4xx_is_a_refusal_whose_code_the_library_chose(status: int, body: bytes, content_type: str) -> None:
    error = refusal(status, body, content_type)
    assert (error.error, error.stated, error.http_status) == ("invalid_request", False, status)


def test_an_empty_client_secret_is_a_secret_unavailable() -> None:
    with pytest.raises(SecretUnavailable) as caught:
        ClientCredentials("client", "").apply({"grant_type": "authorization_code"})
    assert isinstance(caught.value, ConfigurationError)  # callers catching ConfigurationError still do
