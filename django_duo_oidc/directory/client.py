"""Duo's own Admin API client (``duo_client.Admin``) built from a :class:`DirectoryConnection` row.

Nothing here signs, pages or backs off by hand: ``duo_client`` signs every request (v5 canonicalisation,
HMAC-SHA512, DUO.md 4.2), pages by ``metadata.next_offset`` (its iterators) and retries HTTP 429 with
its own back-off (1, 2, 4 ... 32 s, DUO.md 4.4). This module only

- builds the client from the row: ``api_host`` "host[:port]" split into ``host=`` and ``port=``, the CA
  bundle when one is set (never ``duo_client``'s special values ``"HTTP"``/``"DISABLE"``, and never an
  empty string, which would turn certificate checks off), the secret key from the row, a timeout and
  the maximum page size (300 users, DUO.md 4.3);
- turns whatever ``duo_client`` raises (``RuntimeError`` with ``.status``/``.data``, socket, TLS and
  ``http.client`` errors) into one :class:`DirectoryError` whose message is safe to print and log: it
  names the API host and the integration key (not secret), never the secret key, and never echoes
  what the server answered (only Duo's numeric error code);
- :func:`check_connection`: one read of one user, in an administrator's words.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duo_client
from django.views.decorators.debug import sensitive_variables

from ..conf import conf
from ..core.errors import ConfigurationError
from ..models import DirectoryConnection

__all__ = [
    "MAX_BACKOFF_SECONDS",
    "PAGE_SIZE",
    "CheckReport",
    "DirectoryError",
    "admin_client",
    "ca_certs_refusal",
    "check_connection",
    "guarded_call",
    "parse_api_host",
]

logger = logging.getLogger("django_duo_oidc")

#: Users per page: the Admin API's maximum (DUO.md 4.3), so 10,000 users cost 34 requests.
PAGE_SIZE = 300
#: ``duo_client`` retries a 429 after 1, 2, 4 ... seconds while the wait is at most this (its own
#: default, 32: about a minute in all). Kept as a module value so tests can shorten it.
MAX_BACKOFF_SECONDS = 32

# A DNS name (labels of letters, digits, hyphens) or a dotted IPv4 address, then an optional port.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# duo_client.Client's ca_certs values that turn TLS or its verification off.
_UNSAFE_CA_VALUES = frozenset({"HTTP", "DISABLE"})


class DirectoryError(Exception):
    """The Admin API could not be used; ``str()`` is safe to print and log (never the secret key).

    ``kind`` is a stable short code: ``config``, ``signature``, ``permission``, ``rate_limited``,
    ``tls``, ``unreachable``, ``server``, ``refused``, ``bad_answer``, ``not_found``, ``internal``.
    """

    def __init__(self, kind: str, message: str, *, status: int | None = None, code: int | None = None) -> None:
        self.kind = kind
        self.message = message
        self.status = status
        self.code = code
        super().__init__(message)


def parse_api_host(api_host: str) -> tuple[str, int | None]:
    """Split ``"host"`` or ``"host:port"`` into ``(host, port)``; raise ``ValueError`` when malformed.

    No scheme, path, user information or IPv6 literal: Duo's hosts are ``api-xxxxxxxx.duosecurity.com``.
    """
    text = api_host.strip()
    host, sep, port_text = text.partition(":")
    if len(host) > 253 or not _HOST.fullmatch(host):
        raise ValueError("The API hostname must be a host name like api-xxxxxxxx.duosecurity.com (host:port allowed).")
    if not sep:
        return host.lower(), None
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("The port after the API hostname must be a number from 1 to 65535.")
    return host.lower(), int(port_text)


def ca_certs_refusal(path: str) -> str | None:
    """Why ``path`` may not be a connection's ``ca_certs``, or None when it may ("" = Duo's pinned CAs)."""
    path = path.strip()
    if not path:
        return None
    if path.upper() in _UNSAFE_CA_VALUES:
        # duo_client reads "HTTP" as plain HTTP and "DISABLE" as no certificate check.
        return "ca_certs must be the path of a CA bundle file; TLS and its checks cannot be turned off."
    if not os.path.isabs(path) or not os.path.isfile(path):
        return "ca_certs must be the absolute path of an existing CA bundle file."
    return None


def _ca_certs(connection: DirectoryConnection) -> str | None:
    refusal = ca_certs_refusal(connection.ca_certs)
    if refusal:
        raise DirectoryError("config", refusal)
    return connection.ca_certs.strip() or None  # None: duo_client's pinned Duo CAs, never ""


@sensitive_variables("secret")  # never in an error report
def admin_client(connection: DirectoryConnection, *, timeout: float | None = None) -> duo_client.Admin:
    """Return a ``duo_client.Admin`` for ``connection``; raise :class:`DirectoryError` (kind ``config``)
    when the row cannot make one (bad host, missing secret, unsafe CA setting)."""
    try:
        host, port = parse_api_host(connection.api_host)
    except ValueError as exc:
        raise DirectoryError("config", str(exc)) from None
    if not connection.integration_key.strip():
        raise DirectoryError("config", "The connection has no integration key.")
    try:
        secret = connection.get_secret_key()
    except ConfigurationError as exc:
        raise DirectoryError("config", exc.description) from None
    kwargs: dict[str, Any] = {}
    ca_certs = _ca_certs(connection)
    if ca_certs:
        kwargs["ca_certs"] = ca_certs
    try:
        client = duo_client.Admin(
            ikey=connection.integration_key.strip(),
            skey=secret,
            host=host,
            port=port,
            timeout=conf.http_timeout if timeout is None else timeout,
            paging_limit=PAGE_SIZE,
            **kwargs,
        )
    except Exception as exc:  # its frame holds the secret key: the original never travels on
        raise DirectoryError("config", f"duo_client refused the settings ({type(exc).__name__}).") from None
    # duo_client keeps its back-off ceiling on the instance (set in __init__); honour ours.
    client._MAX_BACKOFF_WAIT_SECS = MAX_BACKOFF_SECONDS
    return client


def _duo_code(data: Any) -> int | None:
    """Duo's numeric error code from a FAIL envelope (``{"stat": "FAIL", "code": 40103, ...}``), if any."""
    try:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes | bytearray) else data
        code = json.loads(text).get("code") if isinstance(text, str) and len(text) < 100_000 else None
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def describe_error(exc: BaseException, connection: DirectoryConnection) -> DirectoryError:
    """Turn an exception raised by ``duo_client`` into a :class:`DirectoryError` with a safe message."""
    where = connection.api_host.strip()
    if isinstance(exc, DirectoryError):
        return exc
    if isinstance(exc, RuntimeError) and hasattr(exc, "status"):
        status = getattr(exc, "status", None)
        code = _duo_code(getattr(exc, "data", None))
        if code == 40102:
            return DirectoryError(
                "signature",
                f"Duo does not know the integration key {connection.integration_key.strip()} (40102).",
                status=status,
                code=code,
            )
        if code == 40105:
            return DirectoryError(
                "signature",
                "Duo refused the request date (40105): check this server's clock.",
                status=status,
                code=code,
            )
        if status == 401 or code == 40103:
            return DirectoryError(
                "signature",
                f"Duo refused the request signature (40103): check the integration key "
                f"{connection.integration_key.strip()} and the secret key ({connection.secret_status}).",
                status=status,
                code=code,
            )
        if status == 403 or (code is not None and 40300 <= code < 40400):
            return DirectoryError(
                "permission",
                f"Permission missing (HTTP 403{f', code {code}' if code else ''}): grant the Admin API "
                'application "Grant resource - Read" in the Duo Admin Panel.',
                status=status,
                code=code,
            )
        if status == 429 or code == 42901:
            return DirectoryError(
                "rate_limited",
                "Duo's rate limit (429, code 42901) persisted after duo_client's back-off; try again later.",
                status=status,
                code=code,
            )
        if status == 404:
            return DirectoryError("not_found", "Duo answered 404 (not found).", status=status, code=code)
        if isinstance(status, int) and status >= 500:
            return DirectoryError("server", f"Duo answered HTTP {status} (a server error).", status=status, code=code)
        if status == 200:
            return DirectoryError(
                "bad_answer", "Duo answered with something that is not an Admin API answer.", status=status
            )
        return DirectoryError(
            "refused",
            f"Duo refused the request (HTTP {status}{f', code {code}' if code else ''}).",
            status=status,
            code=code,
        )
    if isinstance(exc, ssl.SSLError | ssl.CertificateError) or type(exc).__name__ == "InvalidCertificateException":
        return DirectoryError(
            "tls",
            f"TLS failure talking to {where}: its certificate is not trusted (check the API hostname, and "
            "ca_certs if you use a test server).",
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return DirectoryError("unreachable", f"{where} did not answer in time.")
    if isinstance(exc, OSError):
        return DirectoryError("unreachable", f"{where} could not be reached ({type(exc).__name__}).")
    if isinstance(exc, http.client.HTTPException):
        return DirectoryError("unreachable", f"The connection to {where} broke ({type(exc).__name__}).")
    if isinstance(exc, ValueError | TypeError | KeyError | UnicodeError):
        return DirectoryError("bad_answer", "Duo answered with something that is not an Admin API answer.")
    # Anything else is a surprise inside duo_client: its frames hold the secret key (signing), so the
    # original never travels on (not even as __context__, which error reports would render).
    logger.error("duo_client failed unexpectedly talking to %s: %s", where, type(exc).__name__)
    return DirectoryError("internal", f"duo_client failed unexpectedly ({type(exc).__name__}).")


def guarded_call(connection: DirectoryConnection, call: Any, *args: Any) -> Any:
    """Run ``call(*args)``; any failure becomes a :class:`DirectoryError` (``__cause__`` dropped: the
    original's message may quote the server's answer)."""
    try:
        return call(*args)
    except Exception as exc:
        raise describe_error(exc, connection) from None


def iterate(connection: DirectoryConnection, iterator: Iterator[Any]) -> Iterator[Any]:
    """Yield from one of ``duo_client``'s paging iterators, its failures as :class:`DirectoryError`."""
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise describe_error(exc, connection) from None
        yield item


@dataclass
class CheckReport:
    """What "Check connection" found: ``ok`` and lines for the admin page or the terminal."""

    connection: DirectoryConnection
    ok: bool = True
    kind: str = ""
    lines: list[str] = field(default_factory=list)

    def fail(self, kind: str, message: str) -> None:
        self.ok = False
        self.kind = self.kind or kind
        self.lines.append(message)


def check_connection(connection: DirectoryConnection) -> CheckReport:
    """Read one page of one user (``GET /admin/v1/users?limit=1``) and report what is right or wrong."""
    report = CheckReport(connection)
    try:
        client = admin_client(connection)
        answer = guarded_call(connection, client.get_users, 1, 0)
    except DirectoryError as exc:
        report.fail(exc.kind, exc.message)
        logger.warning("Directory %s: connection check failed: %s", connection.slug, exc.message)
        return report
    if not isinstance(answer, list):
        report.fail("bad_answer", "Duo answered with something that is not a list of users.")
        return report
    report.lines.append(
        f"Admin API OK: {connection.api_host.strip()} accepted integration key "
        f"{connection.integration_key.strip()} and listed users."
    )
    report.lines.append(f"Secret key: {connection.secret_status}.")
    return report
