"""The HTTP client under attack (issue 10 item 19): a huge answer is refused while it streams in,
and a provider that trickles its answer cannot hold a worker past the call's deadline."""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from django_duo_oidc.core.errors import ProviderResponseError, ProviderUnavailable
from django_duo_oidc.core.http import MAX_BODY_BYTES, HttpClient

CHUNK = 64 * 1024


class GeneratedBody:
    """A file-like raw body produced by a generator: nothing exists until it is read."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.read_bytes = 0
        self.closed = False
        self.pending = b""

    def read(self, amt: int | None = None, **kwargs: Any) -> bytes:
        if not self.pending:
            self.pending = next(self.chunks, b"")
        size = len(self.pending) if amt is None else amt
        data, self.pending = self.pending[:size], self.pending[size:]
        self.read_bytes += len(data)
        return data

    read1 = read

    def stream(self, amt: int = CHUNK, decode_content: bool | None = None) -> Iterator[bytes]:
        while data := self.read(amt):
            yield data

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


class Streaming(BaseAdapter):
    def __init__(self, body: GeneratedBody, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.body = body
        self.headers = headers or {}

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = 200
        response.headers.update({"Content-Type": "application/json", **self.headers})
        response.raw = self.body
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


def client_for(adapter: BaseAdapter, timeout: float = 5.0) -> HttpClient:
    session = requests.Session()
    session.mount("https://op.test/", adapter)
    return HttpClient(session, timeout=timeout)


def endless(total: int) -> Iterator[bytes]:
    yield b'{"a": "'
    sent = 0
    while sent < total:
        yield b"x" * CHUNK
        sent += CHUNK
    yield b'"}'


def test_a_50_mb_streamed_answer_is_refused_while_holding_little_memory() -> None:
    body = GeneratedBody(endless(50_000_000))
    http = client_for(Streaming(body))
    tracemalloc.start()
    try:
        with pytest.raises(ProviderResponseError, match="too large"):
            http.get("https://op.test/jwks")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"held {peak} bytes"
    assert body.read_bytes <= MAX_BODY_BYTES + CHUNK  # stopped at the cap, not at the end
    assert body.closed


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    body = GeneratedBody(endless(300_000_000))
    http = client_for(Streaming(body, {"Content-Length": "300000000"}))
    with pytest.raises(ProviderResponseError, match="too large"):
        http.get("https://op.test/jwks")
    assert body.read_bytes == 0
    assert body.closed


def test_a_streamed_answer_under_the_cap_is_read_whole() -> None:
    body = GeneratedBody(iter([b'{"keys": ', b"[", b"]}"]))
    assert client_for(Streaming(body)).get("https://op.test/jwks").data == {"keys": []}


@pytest.fixture
def trickling_server() -> Iterator[str]:
    """A server on 127.0.0.1 that sends its headers at once, then one body byte every 0.1 s.

    Bounded: it stops by itself after 4 s (or when the client goes away).
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
            stop = time.monotonic() + 4
            try:
                while time.monotonic() < stop:
                    conn.sendall(b" ")
                    time.sleep(0.1)
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/jwks"
    finally:
        listener.close()
        thread.join(6)


def test_a_trickling_provider_cannot_hold_a_worker_past_the_deadline(trickling_server: str) -> None:
    http = HttpClient(requests.Session(), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="in time"):
        http.get(trickling_server)
    assert time.monotonic() - started < 2.0


# Item 20: the log filter on the "django_duo_oidc" logger ------------------------------------------


def test_the_filter_sits_on_the_apps_logger_and_escapes_every_line_breaking_character() -> None:
    import logging

    from django_duo_oidc.logsafe import MAX_VALUE_CHARS, SanitisingFilter

    logger = logging.getLogger("django_duo_oidc")
    assert sum(isinstance(f, SanitisingFilter) for f in logger.filters) == 1
    hostile = "a\rb\nc\x1bd\x85e\u2028f\u2029g\u202eh\x00i"
    record = logger.makeRecord(
        "django_duo_oidc", logging.WARNING, __file__, 1, "seen %s %d %r", (hostile, 7, hostile), None
    )
    assert logger.filters[0].filter(record)
    message = record.getMessage()
    assert message.startswith("seen a\\rb\\nc\\x1bd\\x85e\\u2028f\\u2029g\\u202eh\\x00i 7 ")
    assert not any(c in message for c in "\r\n\x1b\x85\u2028\u2029\u202e\x00")
    long = logger.makeRecord("django_duo_oidc", logging.INFO, __file__, 1, "%s", ("x" * 100_000,), None)
    logger.filters[0].filter(long)
    assert len(long.getMessage()) < MAX_VALUE_CHARS + 50
    mapping = logger.makeRecord("django_duo_oidc", logging.INFO, __file__, 1, "%(p)s", ({"p": "a\nb"},), None)
    logger.filters[0].filter(mapping)
    assert mapping.getMessage() == "a\\nb"
