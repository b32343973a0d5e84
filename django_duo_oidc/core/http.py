"""The one place that talks HTTP to the provider.

The ``requests.Session`` is injected, so tests mount an in-process fake provider on it instead of
patching module paths. Every call has a timeout; every transport failure, 5xx, 429 or non-JSON
answer becomes a :mod:`~django_duo_oidc.core.errors` exception, never a ``requests`` one.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import requests

from .errors import ProviderResponseError, ProviderUnavailable

__all__ = ["HttpClient", "HttpResponse", "basic_auth_header"]

# A provider document larger than this is refused: no legitimate discovery, JWKS, token or
# userinfo answer comes near it, and it bounds what a hostile endpoint can make us parse.
MAX_BODY_BYTES = 1_000_000


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

    def post_form(self, url: str, data: dict[str, str], *, headers: dict[str, str] | None = None) -> HttpResponse:
        return self._send("POST", url, data=data, headers=headers)

    def _send(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        headers = {"Accept": "application/json", **(kwargs.pop("headers", None) or {})}
        try:
            response = self.session.request(
                method, url, headers=headers, timeout=self.timeout, allow_redirects=False, **kwargs
            )
        except requests.Timeout as exc:
            raise ProviderUnavailable(f"The identity provider did not answer in time ({method} {_path(url)}).") from exc
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"The identity provider could not be reached ({method} {_path(url)}).") from exc
        status = response.status_code
        if status >= 500 or status == 429:
            raise ProviderUnavailable(f"The identity provider answered HTTP {status} ({method} {_path(url)}).")
        body = response.content
        if len(body) > MAX_BODY_BYTES:
            raise ProviderResponseError(f"The identity provider's answer is too large ({_path(url)}).")
        try:
            data = json.loads(body) if body else {}
        except ValueError as exc:
            raise ProviderResponseError(
                f"The identity provider answered HTTP {status} with something that is not JSON ({method} {_path(url)})."
            ) from exc
        if not isinstance(data, dict):
            raise ProviderResponseError(
                f"The identity provider answered with JSON that is not an object ({_path(url)})."
            )
        return HttpResponse(status=status, data=data, headers=dict(response.headers))


def _path(url: str) -> str:
    """Return the URL without its query string (which could hold a code), for messages."""
    return url.split("?", 1)[0]
