"""Issue 14: UserTokenAuth (requests) and HttpxUserTokenAuth (httpx, sync and async) attach the user's
token, retry once after a forced renewal on a 401 from the same origin, never follow a redirect with
the token to another origin, and never log it.

The APIs are real HTTP servers on loopback (http.server in a thread, this helper's ports 18420-18439);
httpx's own MockTransport covers the async client and the http -> https upgrade."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import requests
from asgiref.sync import async_to_sync
from django.test import Client
from requests.adapters import BaseAdapter

from django_duo_oidc.core.errors import ProviderUnavailable, ReauthenticationRequired
from django_duo_oidc.outbound import HttpxUserTokenAuth, UserTokenAuth
from tests.fakeop import FakeOP

from .test_act_for_user import _session_request, due, stored_tokens
from .test_login_views import login, token_calls
from .test_policy import CRM

PORTS = (18421, 18422)


class FakeSource:
    """Stands in for ``request.oidc``: hands out token-1, then token-2 ... on each forced renewal."""

    def __init__(self, *, renew_to_same: bool = False, refuse: BaseException | None = None) -> None:
        self.current = "token-1"
        self.forced = 0
        self.renew_to_same = renew_to_same
        self.refuse = refuse

    def access_token(self, *, force: bool = False) -> str:
        if force:
            self.forced += 1
            if self.refuse is not None:
                raise self.refuse
            if not self.renew_to_same:
                self.current = f"token-{self.forced + 1}"
        return self.current

    async def aaccess_token(self, *, force: bool = False) -> str:
        return self.access_token(force=force)


class API:
    """A small HTTP API: accepts the tokens in ``accepted``, records what it was sent."""

    def __init__(self, port: int) -> None:
        self.accepted: set[str] = {"token-1"}
        self.seen: list[dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                auth = self.headers.get("Authorization")
                api.seen.append({"path": self.path, "authorization": auth, "body": body, "method": self.command})
                parts = urlsplit(self.path)
                if parts.path == "/redirect":
                    target = parse_qs(parts.query)["to"][0]
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if auth is None or not auth.startswith("Bearer ") or auth[7:] not in api.accepted:
                    self._answer(401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
                    return
                self._answer(200, {"ok": True, "body": body})

            do_GET = _handle
            do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def tokens_sent(self) -> list[str | None]:
        return [entry["authorization"] for entry in self.seen]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def apis() -> Iterator[tuple[API, API]]:
    first, second = API(PORTS[0]), API(PORTS[1])
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture
def api(apis: tuple[API, API]) -> API:
    return apis[0]


# requests ---------------------------------------------------------------------------------------


def test_the_token_is_attached(api: API) -> None:
    source = FakeSource()
    response = requests.get(f"{api.url}/contacts", auth=UserTokenAuth(source), timeout=5)
    assert response.status_code == 200
    assert api.tokens_sent() == ["Bearer token-1"] and source.forced == 0


def test_a_401_renews_once_and_retries_once(api: API, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api.accepted = {"token-2"}
    source = FakeSource()
    response = requests.get(f"{api.url}/contacts?q=secret-query", auth=UserTokenAuth(source), timeout=5)
    assert response.status_code == 200
    assert api.tokens_sent() == ["Bearer token-1", "Bearer token-2"]
    assert source.forced == 1
    assert [r.status_code for r in response.history] == [401]
    assert "token-1" not in caplog.text and "token-2" not in caplog.text
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name == "django_duo_oidc")
    assert "secret-query" not in ours  # no query string in our log line either (urllib3's debug has it)
    assert "Retrying GET http://127.0.0.1:18421/contacts once" in ours


def test_an_api_that_always_refuses_gets_two_requests_not_a_loop(api: API) -> None:
    api.accepted = set()
    source = FakeSource()
    response = requests.get(f"{api.url}/contacts", auth=UserTokenAuth(source), timeout=5)
    assert response.status_code == 401
    assert len(api.seen) == 2 and source.forced == 1


def test_no_retry_when_the_renewal_gives_the_same_token(api: API) -> None:
    api.accepted = set()
    source = FakeSource(renew_to_same=True)  # a token issued seconds ago is not renewed again
    response = requests.get(f"{api.url}/contacts", auth=UserTokenAuth(source), timeout=5)
    assert response.status_code == 401 and len(api.seen) == 1


def test_a_refused_renewal_raises_for_the_view_to_answer(api: API) -> None:
    api.accepted = set()
    source = FakeSource(refuse=ReauthenticationRequired(provider="duo"))
    with pytest.raises(ReauthenticationRequired):
        requests.get(f"{api.url}/contacts", auth=UserTokenAuth(source), timeout=5)
    assert len(api.seen) == 1


def test_the_provider_down_during_renewal_raises_provider_unavailable(api: API) -> None:
    api.accepted = set()
    source = FakeSource(refuse=ProviderUnavailable())
    with pytest.raises(ProviderUnavailable):
        requests.get(f"{api.url}/contacts", auth=UserTokenAuth(source), timeout=5)


def test_a_post_body_is_sent_again_on_the_retry(api: API) -> None:
    api.accepted = {"token-2"}
    response = requests.post(f"{api.url}/contacts", data={"name": "Ada"}, auth=UserTokenAuth(FakeSource()), timeout=5)
    assert response.status_code == 200 and response.json()["body"] == "name=Ada"
    assert [entry["body"] for entry in api.seen] == ["name=Ada", "name=Ada"]


def test_a_generator_body_is_not_retried(api: API) -> None:
    api.accepted = {"token-2"}
    body = (chunk for chunk in [b"a=1"])
    response = requests.post(f"{api.url}/contacts", data=body, auth=UserTokenAuth(FakeSource()), timeout=5)
    assert response.status_code == 401 and len(api.seen) == 1


def test_a_redirect_to_another_origin_never_carries_the_token(apis: tuple[API, API]) -> None:
    first, second = apis
    second.accepted = set()
    source = FakeSource()
    response = requests.get(f"{first.url}/redirect?to={second.url}/steal", auth=UserTokenAuth(source), timeout=5)
    assert response.status_code == 401  # the other origin answers 401 ...
    assert second.tokens_sent() == [None]  # ... to a request without the token
    assert source.forced == 0 and len(first.seen) == 1  # and that 401 is not retried anywhere


def test_a_same_origin_redirect_keeps_the_token_but_is_not_retried(api: API) -> None:
    api.accepted = {"token-1"}
    response = requests.get(f"{api.url}/redirect?to=/contacts", auth=UserTokenAuth(FakeSource()), timeout=5)
    assert response.status_code == 200
    assert api.tokens_sent() == ["Bearer token-1", "Bearer token-1"]


def test_an_http_to_https_upgrade_drops_the_token_too() -> None:
    """requests keeps Authorization on an http -> https redirect of the same host (default ports): not
    the origin the token was sent to (RFC 6454), so it is dropped."""
    seen: list[tuple[str, str | None]] = []

    class Adapter(BaseAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            seen.append((request.url or "", request.headers.get("Authorization")))
            response = requests.Response()
            response.request = request
            response.url = request.url or ""
            response.connection = self  # type: ignore[attr-defined]
            if request.url and request.url.startswith("http://"):
                response.status_code = 301
                response.headers["Location"] = request.url.replace("http://", "https://", 1)
            else:
                response.status_code = 401
            response._content = b""
            return response

        def close(self) -> None:
            pass

    http = requests.Session()
    http.mount("http://api.example.test/", Adapter())
    http.mount("https://api.example.test/", Adapter())
    source = FakeSource()
    response = http.get("http://api.example.test/contacts", auth=UserTokenAuth(source), timeout=5)
    assert response.status_code == 401
    assert seen == [("http://api.example.test/contacts", "Bearer token-1"), ("https://api.example.test/contacts", None)]
    assert source.forced == 0


def test_the_source_must_be_a_request_or_its_context() -> None:
    with pytest.raises(TypeError, match=r"request\.oidc"):
        UserTokenAuth(object())


# With a real session ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_with_a_session_the_retry_renews_the_grant_at_the_provider(
    client: Client, fake_op: FakeOP, provider: Any, api: API
) -> None:
    fake_op.access_token_format = "opaque"
    login(client, fake_op, scope=CRM)
    due(client, expires_at=time.time() + 3000)  # valid, issued an hour ago
    request = _session_request(client)
    old = stored_tokens(client)[0]
    api.accepted = set()

    def accept_renewed(*_: Any) -> None:
        api.accepted = {t for t, state in fake_op.tokens.items() if state["active"] and t != old}

    fake_op.revoke_token(old)  # the API refuses the old token; the provider renews the grant
    original = fake_op.refresh_grant

    def refresh_then_accept(form: dict[str, str]) -> Any:
        answer = original(form)
        accept_renewed()
        return answer

    fake_op.refresh_grant = refresh_then_accept  # type: ignore[method-assign]
    response = requests.get(f"{api.url}/contacts", auth=UserTokenAuth(request), timeout=5)
    assert response.status_code == 200
    assert token_calls(fake_op) == 2
    renewed = api.tokens_sent()[1]
    assert renewed is not None and renewed != f"Bearer {old}"
    assert stored_tokens_of(request) == renewed[7:]


def stored_tokens_of(request: Any) -> str:
    from django_duo_oidc.login import session as stored

    return stored.access_token(request.session["duo_oidc"])


# httpx --------------------------------------------------------------------------------------------


def test_httpx_sync_against_a_real_server(api: API, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api.accepted = {"token-2"}
    source = FakeSource()
    with httpx.Client(auth=HttpxUserTokenAuth(source)) as http:
        response = http.post(f"{api.url}/contacts", content=b"a=1")
    assert response.status_code == 200
    assert api.tokens_sent() == ["Bearer token-1", "Bearer token-2"]
    assert [entry["body"] for entry in api.seen] == ["a=1", "a=1"]
    assert "token-" not in caplog.text


def test_httpx_sync_always_refused_is_two_requests(api: API) -> None:
    api.accepted = set()
    response = httpx.get(f"{api.url}/contacts", auth=HttpxUserTokenAuth(FakeSource()))
    assert response.status_code == 401 and len(api.seen) == 2


def test_httpx_cross_origin_redirect_never_carries_the_token(apis: tuple[API, API]) -> None:
    first, second = apis
    source = FakeSource()
    with httpx.Client(auth=HttpxUserTokenAuth(source), follow_redirects=True) as http:
        response = http.get(f"{first.url}/redirect?to={second.url}/steal")
    assert response.status_code == 401
    assert second.tokens_sent() == [None]
    assert source.forced == 0 and len(first.seen) == 1


def _mock(handler: Any) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def test_httpx_async_renews_once(api: API) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        ok = request.headers.get("Authorization") == "Bearer token-2"
        return httpx.Response(200 if ok else 401, json={"ok": ok})

    source = FakeSource()

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(auth=HttpxUserTokenAuth(source), transport=_mock(handler)) as http:
            return await http.get("https://api.example.test/contacts")

    response = async_to_sync(call)()
    assert response.status_code == 200
    assert seen == ["Bearer token-1", "Bearer token-2"] and source.forced == 1


def test_httpx_async_always_refused_is_two_requests() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(401)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(auth=HttpxUserTokenAuth(FakeSource()), transport=_mock(handler)) as http:
            return await http.get("https://api.example.test/contacts")

    assert async_to_sync(call)().status_code == 401
    assert len(seen) == 2


def test_httpx_a_401_after_leaving_the_origin_is_not_retried() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers.get("Authorization")))
        if request.url.host == "api.example.test":
            return httpx.Response(302, headers={"Location": "https://elsewhere.example.test/x"})
        return httpx.Response(401)

    source = FakeSource()
    with httpx.Client(auth=HttpxUserTokenAuth(source), transport=_mock(handler), follow_redirects=True) as http:
        response = http.get("https://api.example.test/contacts")
    assert response.status_code == 401
    assert seen == [
        ("https://api.example.test/contacts", "Bearer token-1"),
        ("https://elsewhere.example.test/x", None),
    ]
    assert source.forced == 0


def test_httpx_with_a_django_request(client: Client, fake_op: FakeOP, provider: Any, db: Any) -> None:
    login(client, fake_op, scope=CRM)
    request = _session_request(client)
    token = stored_tokens(client)[0]
    seen: list[str | None] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers.get("Authorization"))
        return httpx.Response(200)

    with httpx.Client(auth=HttpxUserTokenAuth(request), transport=_mock(handler)) as http:
        assert http.get("https://api.example.test/contacts").status_code == 200
    assert seen == [f"Bearer {token}"]


def test_an_error_report_of_a_failed_retry_shows_no_token() -> None:
    """A network error during the retry becomes a 500 with Django's error report (and its email to the
    admins): no frame of the auth class shows a token."""
    import sys

    from django.views.debug import ExceptionReporter

    class Flaky(BaseAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            if getattr(request, "_duo_oidc_retried", False):
                raise requests.ConnectionError("the API went away")
            response = requests.Response()
            response.status_code = 401
            response._content = b""
            response.url = request.url or ""
            response.request = request
            response.connection = self  # type: ignore[attr-defined]
            return response

        def close(self) -> None:
            pass

    http = requests.Session()
    http.mount("https://api.example.test/", Flaky())
    source = FakeSource()
    try:
        http.get("https://api.example.test/contacts", auth=UserTokenAuth(source), timeout=5)
    except requests.ConnectionError:
        report = ExceptionReporter(None, *sys.exc_info()).get_traceback_text()
    else:
        raise AssertionError("the retry should have failed")
    assert source.forced == 1 and "_on_response" in report
    assert "token-1" not in report and "token-2" not in report


def test_origins_pin_where_the_token_may_go(api: API) -> None:
    auth = UserTokenAuth(FakeSource(), origins=[api.url])
    assert requests.get(f"{api.url}/contacts", auth=auth, timeout=5).status_code == 200
    with pytest.raises(ValueError, match="not one of the allowed origins"):
        requests.get("http://127.0.0.1:18422/contacts", auth=auth, timeout=5)
    with pytest.raises(ValueError):
        requests.get(f"{api.url.replace('http:', 'https:')}/contacts", auth=auth, timeout=5)
    assert len(api.seen) == 1


def test_httpx_origins_pin_where_the_token_may_go() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200)

    auth = HttpxUserTokenAuth(FakeSource(), origins="https://api.example.test")
    with httpx.Client(auth=auth, transport=_mock(handler)) as http:
        assert http.get("https://api.example.test/x").status_code == 200
        with pytest.raises(ValueError):
            http.get("https://elsewhere.example.test/x")

    async def call() -> None:
        async with httpx.AsyncClient(auth=auth, transport=_mock(handler)) as client:
            await client.get("https://api.example.test:8443/x")

    with pytest.raises(ValueError):
        async_to_sync(call)()
    assert seen == ["https://api.example.test/x"]


@pytest.mark.parametrize("origin", ["api.example.test", "ftp://api.example.test", "https://"])
def test_origins_must_be_origins(origin: str) -> None:
    with pytest.raises(ValueError):
        UserTokenAuth(FakeSource(), origins=[origin])
