"""Outbound calls under attack (issue 10 item 15): a client-credentials token never follows a redirect
to another origin, and no 401 after a redirect makes it be sent again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command
from requests.adapters import BaseAdapter

from django_duo_oidc.models import Provider
from django_duo_oidc.outbound.client_credentials import ClientCredentialsAuth
from tests.fakeop import FakeOP

pytestmark = pytest.mark.django_db


class Origin(BaseAdapter):
    """One origin of a fake web: answers by path from ``routes`` (status, headers); records what it saw."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str]]]) -> None:
        super().__init__()
        self.routes = routes
        self.seen: list[tuple[str, str]] = []  # (url, Authorization header)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.seen.append((request.url or "", str(request.headers.get("Authorization", ""))))
        path = requests.utils.urlparse(request.url).path
        status, headers = self.routes.get(path, (404, {}))
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers)
        response._content = b"{}"
        response._content_consumed = True
        response.request = request
        response.connection = self  # type: ignore[attr-defined]
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass

    def tokens(self) -> list[str]:
        return [auth for _url, auth in self.seen if auth]


def test_a_401_after_a_cross_origin_redirect_never_sends_the_token_there(fake_op: FakeOP, provider: Provider) -> None:
    api = Origin({"/contacts": (302, {"Location": "https://evil.test/collect"})})
    evil = Origin({"/collect": (401, {"WWW-Authenticate": "Bearer"})})
    session = requests.Session()
    session.mount("https://api.test/", api)
    session.mount("https://evil.test/", evil)
    response = session.get("https://api.test/contacts", auth=ClientCredentialsAuth("crm.contacts.read"))
    assert response.status_code == 401
    assert api.tokens(), "the original origin gets the token"
    # Before the fix the 401 hook put a fresh token back and retried against evil.test.
    assert evil.tokens() == []
    assert len(evil.seen) == 1  # no retry


def test_a_401_after_a_same_origin_redirect_is_not_retried(fake_op: FakeOP, provider: Provider) -> None:
    api = Origin({"/old": (301, {"Location": "https://api.test/new"}), "/new": (401, {})})
    session = requests.Session()
    session.mount("https://api.test/", api)
    response = session.get("https://api.test/old", auth=ClientCredentialsAuth("x"))
    assert response.status_code == 401
    assert [url for url, _auth in api.seen] == ["https://api.test/old", "https://api.test/new"]


def test_a_same_origin_401_still_retries_once(fake_op: FakeOP, provider: Provider) -> None:
    api = Origin({"/contacts": (401, {})})
    session = requests.Session()
    session.mount("https://api.test/", api)
    response = session.get("https://api.test/contacts", auth=ClientCredentialsAuth("x"))
    assert response.status_code == 401
    assert len(api.seen) == 2
    first, second = api.tokens()
    assert first != second  # the refused token was dropped and a new one fetched


# The command, against two real local servers (two origins: two ports) -------------------------------


class _Recorder(BaseHTTPRequestHandler):
    status = 200
    location = ""
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        self.send_response(self.status)
        if self.location:
            self.send_header("Location", self.location)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def two_origins() -> Iterator[tuple[str, list[str], list[str]]]:
    seen_a: list[str] = []
    seen_b: list[str] = []
    b_handler = type("B", (_Recorder,), {"status": 401, "seen": seen_b})
    server_b = ThreadingHTTPServer(("127.0.0.1", 0), b_handler)
    url_b = f"http://127.0.0.1:{server_b.server_address[1]}/collect"
    a_handler = type("A", (_Recorder,), {"status": 302, "location": url_b, "seen": seen_a})
    server_a = ThreadingHTTPServer(("127.0.0.1", 0), a_handler)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (server_a, server_b)]
    for t in threads:
        t.start()
    try:
        yield f"http://127.0.0.1:{server_a.server_address[1]}/contacts", seen_a, seen_b
    finally:
        for s in (server_a, server_b):
            s.shutdown()
            s.server_close()


def test_the_call_command_never_sends_the_token_to_a_redirect_target(
    fake_op: FakeOP, provider: Provider, two_origins: tuple[str, list[str], list[str]]
) -> None:
    url, seen_a, seen_b = two_origins
    with pytest.raises(CommandError, match="HTTP 401"):
        call_command("duo_oidc_call", url, "--scope", "x", stdout=StringIO(), stderr=StringIO())
    assert seen_a and seen_a[0].startswith("Bearer ")
    assert seen_b == [""]  # one call, without the token
