"""RFC 8707 resource indicators in the pure core: which values are indicators (section 2), and that
they are sent as repeated ``resource`` parameters in the authorization request (section 2.1) and the
token requests of the code and refresh grants (section 2.2); RFC 7009 revocation requests."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter

from django_duo_oidc.core.errors import ProviderResponseError, ProviderUnavailable, TokenEndpointError
from django_duo_oidc.core.flow import (
    ClientCredentials,
    authorization_url,
    exchange_code,
    refresh_tokens,
    revoke_token,
)
from django_duo_oidc.core.http import HttpClient
from django_duo_oidc.core.resources import parse_resource_indicators, resource_indicator_problem


@pytest.mark.parametrize(
    "value",
    [
        "urn:crm",
        "https://api.example.com",
        "https://api.example.com/contacts",
        "https://api.example.com:8443/v1/",
        "https://api.example.com/v1?tenant=a",  # a query: only a SHOULD NOT
        "urn:ietf:params:oauth:token-type:jwt",
        "http://127.0.0.1:8000/api/contacts/",
    ],
)
def test_absolute_uris_without_fragment_are_indicators(value: str) -> None:
    assert resource_indicator_problem(value) is None


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("crm", "absolute"),
        ("/api/contacts", "absolute"),
        ("//api.example.com/x", "absolute"),
        ("https://api.example.com/#top", "fragment"),
        ("urn:crm#", "fragment"),
        ("https://", "host"),
        ("http:///path", "host"),
        ("https://[::1", "host"),
        ("urn:", "absolute"),
        ("1https://x", "absolute"),
        ("https://api.example.com/a b", "not a URI"),
        ("https://bücher.example/", "not a URI"),
        ('urn:"crm"', "not a URI"),
        ("", "not a URI"),
    ],
)
def test_what_is_not_an_indicator_says_why(value: str, why: str) -> None:
    problem = resource_indicator_problem(value)
    assert problem is not None and why in problem


def test_parsing_keeps_order_and_drops_repeats() -> None:
    assert parse_resource_indicators(" urn:b  urn:a urn:b ") == ("urn:b", "urn:a")
    assert parse_resource_indicators(None) == () == parse_resource_indicators("")


def test_the_authorization_request_repeats_resource() -> None:
    url = authorization_url(
        "https://op.example/authorize?x=1", {"client_id": "c", "resource": ["urn:a", "https://api/x"]}
    )
    query = parse_qs(urlsplit(url).query)
    assert query == {"x": ["1"], "client_id": ["c"], "resource": ["urn:a", "https://api/x"]}


class Recorder(BaseAdapter):
    """Answers every POST with ``answer`` and keeps the forms it was sent."""

    def __init__(self, status: int = 200, body: bytes | None = None, content_type: str = "application/json") -> None:
        super().__init__()
        self.forms: list[dict[str, list[str]]] = []
        self.headers: list[dict[str, str]] = []
        self.status = status
        self.body = body
        self.content_type = content_type

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        body = request.body or ""
        self.forms.append(parse_qs(body.decode() if isinstance(body, bytes) else body))
        self.headers.append(dict(request.headers))
        response = requests.Response()
        response.status_code = self.status
        response._content = (
            self.body
            if self.body is not None
            else b'{"access_token": "at", "token_type": "Bearer", "expires_in": 60, "id_token": "x.y.z"}'
        )
        response.headers["Content-Type"] = self.content_type
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def client_for(adapter: Recorder) -> HttpClient:
    session = requests.Session()
    session.mount("https://op.example/", adapter)
    return HttpClient(session, timeout=5)


CLIENT = ClientCredentials("client", "secret")


def test_the_code_and_refresh_grants_send_every_resource() -> None:
    adapter = Recorder()
    http = client_for(adapter)
    exchange_code(
        http,
        "https://op.example/token",
        CLIENT,
        code="c",
        redirect_uri="https://rp/cb",
        code_verifier="v",
        resource=("urn:a", "urn:b"),
    )
    refresh_tokens(http, "https://op.example/token", CLIENT, "rt", resource=("urn:a", "urn:b"))
    refresh_tokens(http, "https://op.example/token", CLIENT, "rt")
    assert [form.get("resource") for form in adapter.forms] == [["urn:a", "urn:b"], ["urn:a", "urn:b"], None]
    assert adapter.forms[1]["grant_type"] == ["refresh_token"]


def test_revocation_sends_the_token_its_hint_and_client_authentication() -> None:
    adapter = Recorder(body=b"")
    revoke_token(client_for(adapter), "https://op.example/revoke", CLIENT, "rt", token_type_hint="refresh_token")
    assert adapter.forms == [{"token": ["rt"], "token_type_hint": ["refresh_token"]}]
    assert adapter.headers[0]["Authorization"].startswith("Basic ")


def test_revocation_with_client_secret_post() -> None:
    adapter = Recorder(body=b"")
    post = ClientCredentials("client", "secret", "client_secret_post")
    revoke_token(client_for(adapter), "https://op.example/revoke", post, "at", token_type_hint="access_token")
    assert adapter.forms[0]["client_secret"] == ["secret"] and "Authorization" not in adapter.headers[0]


def test_a_200_with_any_body_is_a_revocation() -> None:
    adapter = Recorder(body=b"<html>ok</html>", content_type="text/html")
    revoke_token(client_for(adapter), "https://op.example/revoke", CLIENT, "rt", token_type_hint="refresh_token")


@pytest.mark.parametrize(
    ("status", "body", "raised"),
    [
        (400, b'{"error": "unsupported_token_type"}', TokenEndpointError),
        (401, b'{"error": "invalid_client"}', TokenEndpointError),
        (503, b"", ProviderUnavailable),
        (404, b"<html>", ProviderResponseError),
    ],
)
def test_revocation_refusals_and_outages(status: int, body: bytes, raised: type[Exception]) -> None:
    adapter = Recorder(status=status, body=body)
    with pytest.raises(raised):
        revoke_token(client_for(adapter), "https://op.example/revoke", CLIENT, "rt", token_type_hint="refresh_token")
