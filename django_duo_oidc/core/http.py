"""The one place that talks HTTP to the provider.

The ``requests.Session`` is injected, so tests mount an in-process fake provider on it instead of
patching module paths. Every transport failure, 5xx, 429 or non-JSON answer becomes a
:mod:`~django_duo_oidc.core.errors` exception, never a ``requests`` one.

A hostile or broken endpoint cannot hold a worker or its memory: the answer is streamed, refused
as soon as its declared ``Content-Length`` or the bytes read pass :data:`MAX_BODY_BYTES`, and the
whole call (connect, headers, every read of the body) has one deadline, the client's ``timeout``:
a body trickled a byte at a time ends in :class:`ProviderUnavailable` when the deadline passes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote_plus

import requests
import urllib3

from .errors import ProviderResponseError, ProviderUnavailable

__all__ = ["HttpClient", "HttpResponse", "basic_auth_header"]

# A provider document larger than this is refused: no legitimate discovery, JWKS, token or
# userinfo answer comes near it, and it bounds what a hostile endpoint can make us parse.
MAX_BODY_BYTES = 1_000_000
# Bytes asked for per read of a streamed body: small, so a read returns soon and the deadline is
# checked often, and a compressed answer is inflated a little at a time.
_READ_SIZE = 16 * 1024


def basic_auth_header(client_id: str, client_secret: str) -> str:
    """Return an HTTP Basic header value for client authentication.

    RFC 6749 section 2.3.1: the client id and secret are encoded with the
    application/x-www-form-urlencoded algorithm *before* being used as the Basic user and password,
    so a secret holding ``:``, ``+``, ``%`` or ``/`` survives the trip.
    """
    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class HttpResponse:
    """A decoded JSON answer with the status it came with."""

    status: int
    data: dict[str, Any]
    headers: dict[str, str]


class HttpClient:
    """A thin, safe wrapper over an injected ``requests.Session``."""

    def __init__(self, session: requests.Session, timeout: float = 10.0) -> None:
        self.session = session
        self.timeout = timeout

    def get(self, url: str, *, headers: dict[str, str] | None = None) -> HttpResponse:
        return self._send("GET", url, headers=headers)

    def post_form(
        self, url: str, data: Mapping[str, str | Sequence[str]], *, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        """POST a form; a sequence value is sent as a repeated field (RFC 8707 ``resource``)."""
        return self._send("POST", url, data=data, headers=headers)

    def _send(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        headers = {"Accept": "application/json", **(kwargs.pop("headers", None) or {})}
        deadline = time.monotonic() + self.timeout
        try:
            response = self.session.request(
                method, url, headers=headers, timeout=self.timeout, allow_redirects=False, stream=True, **kwargs
            )
        except requests.Timeout as exc:
            raise ProviderUnavailable(f"The identity provider did not answer in time ({method} {_path(url)}).") from exc
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"The identity provider could not be reached ({method} {_path(url)}).") from exc
        try:
            status = response.status_code
            if status >= 500 or status == 429:
                raise ProviderUnavailable(f"The identity provider answered HTTP {status} ({method} {_path(url)}).")
            body = _read_body(response, deadline, f"{method} {_path(url)}")
        finally:
            _close(response)
        try:
            data = json.loads(body) if body else {}
        except ValueError as exc:
            error = ProviderResponseError(
                f"The identity provider answered HTTP {status} with something that is not JSON ({method} {_path(url)})."
            )
            error.http_status = status  # a 4xx with an HTML or empty body may still be a refusal (flow)
            raise error from exc
        if not isinstance(data, dict):
            raise ProviderResponseError(
                f"The identity provider answered with JSON that is not an object ({_path(url)})."
            )
        return HttpResponse(status=status, data=data, headers=dict(response.headers))


def _read_body(response: requests.Response, deadline: float, what: str) -> bytes:
    """Read a streamed body up to :data:`MAX_BODY_BYTES` and before ``deadline``, else raise."""
    too_large = ProviderResponseError(f"The identity provider's answer is too large ({what}).")
    declared = response.headers.get("Content-Length", "").strip()
    # isascii: str.isdigit() is also True for superscripts, which int() refuses.
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large  # refused before a byte of it is read
    # requests keeps False in _content until the body is read (types-requests says bytes | None).
    already: bytes | Literal[False] | None = response._content
    if already is not False:  # an adapter that did not stream (already read)
        content = already or b""
        if len(content) > MAX_BODY_BYTES:
            raise too_large
        return content
    raw = response.raw
    if isinstance(raw, urllib3.HTTPResponse):
        # read1: return what has arrived instead of waiting to fill the buffer, so the deadline is
        # checked between reads; decoded a bounded piece at a time (no inflation bomb).
        def read() -> bytes:
            return raw.read1(_READ_SIZE, decode_content=True)
    else:  # another transport's file-like body

        def read() -> bytes:
            chunk: bytes = raw.read(_READ_SIZE)  # a binary file-like object (requests' Response.raw)
            return chunk

    body = bytearray()
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProviderUnavailable(f"The identity provider did not answer in time ({what}).")
            _limit_wait(raw, remaining)
            chunk = read()
            if not chunk:
                break
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise too_large
    except (TimeoutError, urllib3.exceptions.TimeoutError, requests.Timeout) as exc:
        raise ProviderUnavailable(f"The identity provider did not answer in time ({what}).") from exc
    except (OSError, urllib3.exceptions.HTTPError, requests.RequestException) as exc:
        raise ProviderUnavailable(f"The identity provider's answer was cut short ({what}).") from exc
    if time.monotonic() > deadline:
        raise ProviderUnavailable(f"The identity provider did not answer in time ({what}).")
    # Hand the body to requests as read, so close() releases the connection instead of dropping it.
    content = bytes(body)
    response._content = content
    response._content_consumed = True  # type: ignore[attr-defined]  # requests' own flag; types-requests omits it
    return content


def _close(response: requests.Response) -> None:
    """Release the connection: to the pool when the body was read whole, else it is dropped."""
    if response.raw is not None:  # None: an in-process adapter that handed over the content itself
        response.close()


def _limit_wait(raw: Any, remaining: float) -> None:
    """Let the next read of a real socket wait no longer than the time left (best effort)."""
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.settimeout(max(remaining, 0.001))


def _path(url: str) -> str:
    """Return the URL without its query string (which could hold a code), for messages."""
    return url.split("?", 1)[0]
