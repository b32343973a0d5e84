"""A fake Duo Admin API server process: read-only, HTTPS, and strict about request signatures.

Run it as ``python -m tests.fakeduo.admin_api --port P --cert C --key K [--state FILE] [--seed-example]``
with the credentials in the environment (``FAKE_DUO_IKEY``, ``FAKE_DUO_SKEY``). It prints
``READY https://127.0.0.1:P`` (flushed) once it listens (``--port 0`` picks a free port and prints it) and
stops on SIGTERM. ``tests/fakeduo/admin_fixtures.py`` starts it for the tests.

What it checks, as Duo does (``../shared/DUO.md`` 4.2), written from that description and not from
``duo_client`` (the tests drive it with ``duo_client`` to prove the two agree):

- every ``/admin/`` request carries one ``Date`` (RFC 2822 with a zone, at most 300 s from the server's clock)
  and one ``Authorization: Basic base64(ikey:hex HMAC)`` keyed with the secret key;
- the HMAC is over the v5 canonical string (date, METHOD, host, path, canonical parameters,
  sha512 hex of the body, sha512 hex of the ``X-Duo-*`` headers) with HMAC-SHA512, or over the v2 one (the
  first five lines) with HMAC-SHA512 or HMAC-SHA1; compared in constant time;
- the host line is the ``Host`` header, lower-cased, as sent (``127.0.0.1:PORT``) or without its port:
  ``duo_client`` signs the ``host=`` it was given (``127.0.0.1``) while ``http.client`` puts the port in the
  ``Host`` header, and a real tenant on port 443 sees no port at all, so both spellings name the host the
  client connected to;
- anything else is HTTP 401 ``{"stat":"FAIL","code":40103,"message":"Invalid signature in request
  credentials"}`` and counts as a bad signature.

It serves the read endpoints a directory sync uses (users, one user, a user's groups, phones, tokens and
WebAuthn credentials, groups, one group (v1 and v2), the account summary) in Duo's envelope with offset
paging (``limit`` default 100, at most 300 for users and groups (a larger limit is cut to 300), 500 for a
user's sub-lists; ``metadata.next_offset`` null on the last page, ``total_objects``). The integration is
read-only: a POST, PUT, PATCH or DELETE under ``/admin/`` is answered 403 (code 40301) once its signature
checks out, and every such attempt, signed or not, counts as a write in the statistics.

Test control (JSON, no signature, loopback only), under ``/__test__/``:

- ``POST /__test__/state`` ``{"users": [...], "groups": [...]}`` replaces everything (groups a user embeds
  are added to the group list); ``GET /__test__/state`` returns it;
- ``PATCH /__test__/users/<user_id>`` merges top-level fields into a user; ``DELETE`` removes the user;
- ``POST /__test__/faults`` sets faults (merged into the current ones): ``rate_limit`` N (the next N signed
  requests answer HTTP 429 code 42901 with no Retry-After), ``fail_at_offset`` K (the users page whose offset
  is at least K fails: ``fail_mode`` ``"status"`` (HTTP 500, the default) or ``"body"`` (HTTP 200 with a
  truncated body); once, or on every such page with ``"sticky": true``), ``down`` (close every ``/admin/``
  connection without an answer), ``delay`` (seconds to wait before answering), ``page_limit`` N (cap the
  page size), ``delete_during_listing`` ``{"offset": K, "user_ids": [...]}`` (once, just before the users page
  whose offset is at least K, delete those users: later pages shift and a user who was never deleted is
  skipped, as offset paging does when Duo changes under a listing; ``total_objects`` shrinks),
  ``next_offset_loop`` (every users page says ``next_offset: 0``: a listing that never ends);
- ``GET /__test__/stats``: ``requests`` (to ``/admin/``), ``by_path``, ``bad_signatures`` (and
  ``last_bad_signature``, the reason), ``writes``, ``rate_limited``, ``failed_pages``, ``dropped``,
  ``by_signature`` (v5, v2-sha512, v2-sha1);
- ``POST /__test__/reset``: back to the starting state (``--state FILE`` or ``--seed-example``, else empty),
  no faults, zero statistics.

Ids are derived from names (``duo_id``) so tests can predict them. Long on purpose: one process, one file.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import datetime
import email.utils
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_plus, urlsplit

MAX_SKEW_SECONDS = 300
MAX_ADMIN_BODY = 1 << 20
MAX_CONTROL_BODY = 256 << 20
CREATED = 1_700_000_000  # a fixed "created" time keeps the objects deterministic

BAD_SIGNATURE = (401, 40103, "Invalid signature in request credentials")
FORBIDDEN = (403, 40301, "Access forbidden")
RATE_LIMITED = (429, 42901, "Too Many Requests")
NOT_FOUND = (404, 40401, "Resource not found")
BAD_PARAMS = (400, 40002, "Invalid request parameters")
SERVER_ERROR = (500, 50000, "Internal server error")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ZONE = re.compile(r"(?:[+-]\d{4}|GMT|UTC?)$")


# --- ids and objects (shared with admin_fixtures, which builds the same shapes) -------------------------


def duo_id(prefix: str, *parts: str) -> str:
    """A Duo-looking id (``prefix`` + 18 upper-case characters) derived from ``parts``: stable across runs."""
    digest = hashlib.sha256("\x00".join((prefix, *parts)).encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:18]


def group_object(name: str, group_id: str | None = None) -> dict[str, Any]:
    """A group as ``GET /admin/v1/groups`` lists it."""
    return {
        "group_id": group_id or duo_id("DG", name),
        "name": name,
        "desc": "",
        "status": "Active",
        "push_enabled": True,
        "sms_enabled": True,
        "voice_enabled": True,
        "mobile_otp_enabled": True,
    }


def phone_objects(username: str, count: int) -> list[dict[str, Any]]:
    """``count`` activated smartphones (fictional 555 numbers; nothing secret in a phone object)."""
    phones = []
    for i in range(count):
        phone_id = duo_id("DP", username, str(i))
        phones.append(
            {
                "phone_id": phone_id,
                "number": f"+1555010{int(hashlib.sha256(phone_id.encode()).hexdigest(), 16) % 10000:04d}",
                "extension": "",
                "name": f"Phone {i + 1}",
                "postdelay": None,
                "predelay": None,
                "type": "Mobile",
                "platform": "Google Android" if i % 2 else "Apple iOS",
                "model": "Google Pixel 8" if i % 2 else "Apple iPhone 15",
                "activated": True,
                "sms_passcodes_sent": False,
                "capabilities": ["auto", "push", "sms", "phone", "mobile_otp"],
                "last_seen": "2026-11-30T09:00:00",
                "encrypted": "Encrypted",
                "fingerprint": "Configured",
                "screenlock": "Locked",
                "tampered": "Not tampered",
            }
        )
    return phones


def token_objects(username: str, count: int) -> list[dict[str, Any]]:
    """``count`` hardware OTP tokens (id, type, serial: Duo never returns the seed)."""
    return [
        {"token_id": duo_id("DH", username, str(i)), "type": "d1", "serial": f"{100000 + i}", "totp_step": None}
        for i in range(count)
    ]


def webauthn_objects(username: str, count: int) -> list[dict[str, Any]]:
    """``count`` WebAuthn credentials (a registration id and labels, no key material)."""
    return [
        {
            "webauthnkey": duo_id("WA", username, str(i)),
            "credential_name": f"Security key {i + 1}",
            "label": "Security Key",
            "date_added": CREATED + i,
        }
        for i in range(count)
    ]


def desktop_objects(username: str, count: int) -> list[dict[str, Any]]:
    """``count`` Duo Desktop authenticators."""
    return [
        {
            "desktoptoken_id": duo_id("DD", username, str(i)),
            "name": f"Workstation {i + 1}",
            "platform": "macOS" if i % 2 else "Windows",
            "type": "duo_desktop",
        }
        for i in range(count)
    ]


def user_object(
    username: str,
    *,
    email: str | None = None,
    status: str = "active",
    groups: list[dict[str, Any]] | tuple[()] = (),
    phones: int = 1,
    tokens: int = 0,
    webauthn: int = 0,
    desktop: int = 0,
    is_enrolled: bool = True,
    last_login: int | None = None,
    user_id: str | None = None,
    realname: str | None = None,
) -> dict[str, Any]:
    """A user as ``GET /admin/v1/users`` returns it, devices and groups embedded.

    ``email=None`` means ``<username>@example.test``; pass ``""`` for a user with no email (Duo allows it).
    """
    first = username.split("@")[0].split(".")[0].capitalize()
    return {
        "user_id": user_id or duo_id("DU", username),
        "username": username,
        "realname": realname if realname is not None else f"{first} Example",
        "firstname": first,
        "lastname": "Example",
        "email": f"{username}@example.test" if email is None else email,
        "status": status,
        "is_enrolled": is_enrolled,
        "last_login": last_login,
        "last_directory_sync": None,
        "created": CREATED,
        "notes": "",
        "alias1": None,
        "alias2": None,
        "alias3": None,
        "alias4": None,
        "aliases": {},
        "enable_auto_prompt": True,
        "groups": list(groups),
        "phones": phone_objects(username, phones),
        "tokens": token_objects(username, tokens),
        "u2ftokens": [],
        "webauthncredentials": webauthn_objects(username, webauthn),
        "desktoptokens": desktop_objects(username, desktop),
    }


def example_state() -> dict[str, list[dict[str, Any]]]:
    """alice, bob and carol, as the real provider's accounts (tests/provider/provider.mjs)."""
    crm, admins = group_object("crm-users"), group_object("admins")
    return {
        "users": [
            user_object("alice", groups=[crm], last_login=CREATED + 86400),
            user_object("bob", phones=1, tokens=1),
            user_object("carol", groups=[crm, admins], phones=2, webauthn=1, desktop=1),
        ],
        "groups": [crm, admins],
    }


# --- signature check (DUO.md 4.2) -----------------------------------------------------------------------


def canon_params(pairs: list[tuple[str, str]]) -> str:
    """Percent-encode keys and values (only unreserved characters and ``~`` kept), sort, join ``k=v`` by ``&``."""
    encoded = sorted((quote(key, safe="~"), quote(value, safe="~")) for key, value in pairs)
    return "&".join(f"{key}={value}" for key, value in encoded)


def x_duo_digest(headers: list[tuple[str, str]]) -> str | None:
    """sha512 hex of the ``X-Duo-*`` headers (lower-cased names, sorted, NUL-joined); None on a duplicate."""
    found: dict[str, str] = {}
    for name, value in headers:
        low = name.lower()
        if low.startswith("x-duo-"):
            if low in found:
                return None
            found[low] = value
    canon = "\x00".join(part for name in sorted(found) for part in (name, found[name]))
    return hashlib.sha512(canon.encode("utf-8")).hexdigest()


def host_spellings(host_header: str) -> list[str]:
    """The host line candidates: the Host header as sent and, when it carries a port, without it."""
    host = host_header.strip().lower()
    if not host:
        return []  # HTTP/1.1 requires Host; without one there is nothing the client can have signed
    spellings = [host]
    if host.startswith("["):  # [v6]:port
        end = host.find("]")
        if end != -1 and host[end + 1 : end + 2] == ":" and host[end + 2 :].isdigit():
            spellings.append(host[: end + 1])
    elif host.count(":") == 1:
        name, port = host.split(":")
        if name and port.isdigit():
            spellings.append(name)
    return spellings


class Verifier:
    """Checks a request's Date and Authorization headers against one integration key and secret key."""

    def __init__(self, ikey: str, skey: str, *, max_skew: int = MAX_SKEW_SECONDS) -> None:
        self.ikey = ikey.encode()
        self.skey = skey.encode()
        self.max_skew = max_skew

    def verify(
        self,
        *,
        method: str,
        host_header: str,
        path: str,
        query_pairs: list[tuple[str, str]],
        body: bytes,
        headers: list[tuple[str, str]],
        now: float,
    ) -> tuple[str | None, str]:
        """Return ``(variant, "")`` for a good signature, ``(None, reason)`` otherwise."""
        dates = [v for k, v in headers if k.lower() == "date"]
        auths = [v for k, v in headers if k.lower() == "authorization"]
        hosts = [v for k, v in headers if k.lower() == "host"]
        if len(dates) != 1 or len(auths) != 1 or len(hosts) != 1:
            return None, "missing or repeated Date/Authorization/Host"
        date = dates[0]
        if not _ZONE.search(date.strip()):
            return None, "Date without a zone"
        try:
            when = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            return None, "unparseable Date"
        # parsedate_to_datetime gives a naive datetime for "-0000" (duo_client's formatdate()): that is UTC.
        stamp = (when if when.tzinfo else when.replace(tzinfo=datetime.UTC)).timestamp()
        if abs(now - stamp) > self.max_skew:
            return None, "stale Date"
        scheme, _, credentials = auths[0].partition(" ")
        if scheme != "Basic":
            return None, "not Basic"
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None, "bad Basic credentials"
        ikey, sep, signature = decoded.partition(":")
        if not sep:
            return None, "bad Basic credentials"
        ikey_ok = hmac.compare_digest(ikey.encode(), self.ikey)
        canons = self._canonical_strings(method, host_header, path, query_pairs, body, headers, date)
        for variant, digestmod, canonical in canons:
            expected = hmac.new(self.skey, canonical.encode("utf-8"), digestmod).hexdigest()
            if hmac.compare_digest(expected.encode(), signature.encode()) and ikey_ok:
                return variant, ""
        return None, "wrong ikey" if not ikey_ok else "signature mismatch"

    @staticmethod
    def _canonical_strings(
        method: str,
        host_header: str,
        path: str,
        query_pairs: list[tuple[str, str]],
        body: bytes,
        headers: list[tuple[str, str]],
        date: str,
    ) -> list[tuple[str, Any, str]]:
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        header_digest = x_duo_digest(headers)
        body_digest = hashlib.sha512(body).hexdigest()
        # v2 signs the parameters wherever they travel: the query string, or a form body on POST/PUT.
        v2_pairs = list(query_pairs)
        if body and content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            try:
                v2_pairs += parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
            except (UnicodeDecodeError, ValueError):
                v2_pairs = list(query_pairs)
        out: list[tuple[str, Any, str]] = []
        for host in host_spellings(host_header):
            head = [date, method.upper(), host, path]
            if header_digest is not None:
                v5 = [*head, canon_params(query_pairs), body_digest, header_digest]
                out.append(("v5", hashlib.sha512, "\n".join(v5)))
            v2 = "\n".join([*head, canon_params(v2_pairs)])
            out.append(("v2-sha512", hashlib.sha512, v2))
            out.append(("v2-sha1", hashlib.sha1, v2))
        return out


# --- state ----------------------------------------------------------------------------------------------


class State:
    """Users, groups, faults and statistics, behind one lock (the server is threaded)."""

    FAULT_DEFAULTS: dict[str, Any] = {
        "rate_limit": 0,
        "fail_at_offset": None,
        "fail_mode": "status",
        "sticky": False,
        "down": False,
        "delay": 0,
        "page_limit": None,
        "delete_during_listing": None,
        "next_offset_loop": False,
    }

    def __init__(self, initial: dict[str, Any]) -> None:
        self.lock = threading.Lock()
        self.initial = initial
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.user_list: list[dict[str, Any]] = []
        self.faults: dict[str, Any] = {}
        self.stats: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self._replace(self.initial)
            self.faults = dict(self.FAULT_DEFAULTS)
            self.stats = {
                "requests": 0,
                "by_path": Counter(),
                "bad_signatures": 0,
                "last_bad_signature": None,
                "writes": 0,
                "rate_limited": 0,
                "failed_pages": 0,
                "dropped": 0,
                "by_signature": Counter(),
            }

    def replace(self, data: dict[str, Any]) -> None:
        with self.lock:
            self._replace(data)

    def _replace(self, data: dict[str, Any]) -> None:
        users = data.get("users") or []
        groups = data.get("groups") or []
        if not isinstance(users, list) or not isinstance(groups, list):
            raise ValueError("users and groups must be lists")
        self.groups = {}
        for group in groups:
            self._add_group(group)
        self.users = {}
        for user in users:
            self._put_user(user)
        self._relist()

    def _add_group(self, group: Any) -> None:
        if not isinstance(group, dict) or not isinstance(group.get("group_id"), str) or "name" not in group:
            raise ValueError("a group needs group_id and name")
        self.groups.setdefault(group["group_id"], dict(group))

    def _put_user(self, user: Any) -> None:
        if not isinstance(user, dict) or not isinstance(user.get("user_id"), str) or "username" not in user:
            raise ValueError("a user needs user_id and username")
        full = user_object(str(user["username"]), user_id=user["user_id"], phones=0)
        full.update(user)
        for group in full["groups"]:
            self._add_group(group)
        self.users[full["user_id"]] = full

    def _relist(self) -> None:
        self.user_list = list(self.users.values())

    def patch_user(self, user_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        with self.lock:
            if user_id not in self.users:
                return None
            fields = {k: v for k, v in fields.items() if k != "user_id"}
            self._put_user({**self.users[user_id], **fields})
            self._relist()
            return self.users[user_id]

    def delete_user(self, user_id: str) -> bool:
        with self.lock:
            if self.users.pop(user_id, None) is None:
                return False
            self._relist()
            return True

    def set_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        checks = {
            "rate_limit": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "fail_at_offset": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0),
            "fail_mode": lambda v: v in ("status", "body"),
            "sticky": lambda v: isinstance(v, bool),
            "down": lambda v: isinstance(v, bool),
            "delay": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 120,
            "page_limit": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
            "delete_during_listing": lambda v: (
                v is None
                or (
                    isinstance(v, dict)
                    and set(v) == {"offset", "user_ids"}
                    and isinstance(v["offset"], int)
                    and isinstance(v["user_ids"], list)
                    and all(isinstance(u, str) for u in v["user_ids"])
                )
            ),
            "next_offset_loop": lambda v: isinstance(v, bool),
        }
        for key, value in changes.items():
            if key not in checks or not checks[key](value):
                raise ValueError(f"bad fault {key}={value!r}")
        with self.lock:
            self.faults.update(changes)
            return dict(self.faults)

    def count(self, key: str, amount: int = 1) -> None:
        with self.lock:
            self.stats[key] += amount

    def snapshot_stats(self) -> dict[str, Any]:
        with self.lock:
            out = dict(self.stats)
            out["by_path"] = dict(self.stats["by_path"])
            out["by_signature"] = dict(self.stats["by_signature"])
            return out


# --- HTTP -----------------------------------------------------------------------------------------------


class Failure(Exception):
    """An error answer in Duo's shape."""

    def __init__(self, answer: tuple[int, int, str], detail: str | None = None) -> None:
        super().__init__(answer[2])
        self.status, self.code, self.message = answer
        self.detail = detail


def _int_param(params: dict[str, list[str]], name: str, default: int) -> int:
    values = params.get(name)
    if not values:
        return default
    if len(values) != 1 or not values[0].isdigit():
        raise Failure(BAD_PARAMS, name)
    return int(values[0])


def _list_param(params: dict[str, list[str]], name: str) -> list[str] | None:
    """``name`` as a JSON list (duo_client sends one) or repeated parameters."""
    values = params.get(name)
    if not values:
        return None
    if len(values) == 1 and values[0].startswith("["):
        try:
            parsed = json.loads(values[0])
        except ValueError:
            raise Failure(BAD_PARAMS, name) from None
        if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
            raise Failure(BAD_PARAMS, name)
        return parsed
    return values


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeDuoAdmin/1"
    sys_version = ""
    timeout = 30
    server: Server

    # One entry point per method; routing is by path below.
    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"fake-duo-admin: {self.address_string()} {format % args}\n")

    # --- plumbing

    def _send(self, status: int, payload: Any = None, *, raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fail(self, failure: Failure) -> None:
        payload: dict[str, Any] = {"stat": "FAIL", "code": failure.code, "message": failure.message}
        if failure.detail:
            payload["message_detail"] = failure.detail
        self._send(failure.status, payload)

    def _read_body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise Failure((400, 40000, "Bad request"), "chunked bodies are not accepted")
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > limit:
            self.close_connection = True
            raise Failure((400, 40000, "Bad request"), "Content-Length")
        return self.rfile.read(int(length)) if int(length) else b""

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        try:
            if split.path.startswith("/__test__/"):
                self._control(split.path, self._read_body(MAX_CONTROL_BODY))
            elif split.path.startswith("/admin/"):
                self._admin(split.path, split.query)
            else:
                raise Failure(NOT_FOUND)
        except Failure as failure:
            self._fail(failure)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True
        except Exception as exc:  # a bug here must not kill the thread silently: answer 500 and say why
            sys.stderr.write(f"fake-duo-admin: error on {self.command} {split.path}: {exc!r}\n")
            self.close_connection = True
            self._fail(Failure(SERVER_ERROR))

    # --- /admin/

    def _admin(self, path: str, query: str) -> None:
        state = self.server.state
        method = self.command
        state.count("requests")
        with state.lock:
            state.stats["by_path"][path] += 1
            if method in WRITE_METHODS:
                state.stats["writes"] += 1
            down, delay = state.faults["down"], state.faults["delay"]
        if down:
            state.count("dropped")
            self.close_connection = True
            return  # no status line at all: the client sees the connection closed
        if delay:
            time.sleep(delay)
        body = self._read_body(MAX_ADMIN_BODY)
        try:
            query_pairs = parse_qsl(query, keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            query_pairs = None
        variant, reason = (None, "undecodable query string")
        if query_pairs is not None:
            variant, reason = self.server.verifier.verify(
                method=method,
                host_header=self.headers.get("Host", ""),
                path=path,
                query_pairs=query_pairs,
                body=body,
                headers=list(self.headers.items()),
                now=time.time(),
            )
        if variant is None:
            with state.lock:
                state.stats["bad_signatures"] += 1
                state.stats["last_bad_signature"] = reason
            sys.stderr.write(f"fake-duo-admin: 40103 on {method} {path}: {reason}\n")
            raise Failure(BAD_SIGNATURE)
        with state.lock:
            state.stats["by_signature"][variant] += 1
            limited = state.faults["rate_limit"] > 0
            if limited:
                state.faults["rate_limit"] -= 1
                state.stats["rate_limited"] += 1
        if limited:
            raise Failure(RATE_LIMITED)
        if method in WRITE_METHODS:
            raise Failure(FORBIDDEN)
        if method != "GET":
            raise Failure((405, 40500, "Method not allowed"))
        params: dict[str, list[str]] = {}
        for key, value in query_pairs or ():
            params.setdefault(key, []).append(value)
        self._route(path, params)

    def _route(self, path: str, params: dict[str, list[str]]) -> None:
        state = self.server.state
        parts = path.strip("/").split("/")
        if parts == ["admin", "v1", "users"]:
            return self._list_users(params)
        if parts == ["admin", "v1", "groups"]:
            wanted = _list_param(params, "group_id_list")
            with state.lock:
                groups = list(state.groups.values())
            if wanted is not None:
                groups = [g for g in groups if g["group_id"] in set(wanted)]
            return self._page(groups, params, maximum=300)
        if len(parts) == 4 and parts[:3] in (["admin", "v1", "groups"], ["admin", "v2", "groups"]):
            group = state.groups.get(unquote_plus(parts[3]))
            if group is None:
                raise Failure(NOT_FOUND, "Group not found")
            return self._send(200, {"stat": "OK", "response": group})
        if parts == ["admin", "v1", "info", "summary"]:
            with state.lock:
                count = len(state.users)
            summary = {"admin_count": 1, "integration_count": 1, "telephony_credits_remaining": 0, "user_count": count}
            return self._send(200, {"stat": "OK", "response": summary})
        if len(parts) in (4, 5) and parts[:3] == ["admin", "v1", "users"]:
            user = state.users.get(unquote_plus(parts[3]))
            if user is None:
                raise Failure(NOT_FOUND, "User not found")
            if len(parts) == 4:
                return self._send(200, {"stat": "OK", "response": user})
            if parts[4] in ("groups", "phones", "tokens", "webauthncredentials"):
                return self._page(list(user[parts[4]]), params, maximum=500)
        raise Failure(NOT_FOUND)

    def _list_users(self, params: dict[str, list[str]]) -> None:
        state = self.server.state
        offset = _int_param(params, "offset", 0)
        with state.lock:
            change = state.faults["delete_during_listing"]
            if change and offset >= change["offset"]:
                # Users vanish between two pages (deleted in Duo mid-listing): offsets shift under the client.
                state.faults["delete_during_listing"] = None
                for user_id in change["user_ids"]:
                    state.users.pop(user_id, None)
                state._relist()
            users = state.user_list
        filtered = False
        for name in ("username", "email"):
            if name in params:
                wanted = {v.lower() for v in params[name]}
                users = [u for u in users if _user_matches(u, name, wanted)]
                filtered = True
        for name, field in (("user_id_list", "user_id"), ("username_list", "username")):
            values = _list_param(params, name)
            if values is not None:
                wanted = {v if field == "user_id" else v.lower() for v in values}
                users = [u for u in users if _user_matches(u, field, wanted)]
                filtered = True
        with state.lock:
            at = state.faults["fail_at_offset"]
            failing = not filtered and at is not None and offset >= at
            mode = state.faults["fail_mode"]
            if failing:
                state.stats["failed_pages"] += 1
                if not state.faults["sticky"]:
                    state.faults["fail_at_offset"] = None
        if failing:
            if mode == "body":
                self.close_connection = True
                return self._send(200, raw=b'{"stat":"OK","response":[{"user_id":"DU')
            raise Failure(SERVER_ERROR)
        self._page(users, params, maximum=300, loop=not filtered and state.faults["next_offset_loop"])

    def _page(self, items: list[Any], params: dict[str, list[str]], *, maximum: int, loop: bool = False) -> None:
        limit = _int_param(params, "limit", 100)
        offset = _int_param(params, "offset", 0)
        if limit < 1:
            raise Failure(BAD_PARAMS, "limit")
        limit = min(limit, maximum)
        cap = self.server.state.faults["page_limit"]
        if cap:
            limit = min(limit, cap)
        page = items[offset : offset + limit]
        end = offset + len(page)
        metadata: dict[str, Any] = {
            "total_objects": len(items),
            "next_offset": end if end < len(items) else None,
        }
        if loop:
            metadata["next_offset"] = 0  # a lying server: the listing never ends
        if offset:
            metadata["prev_offset"] = max(0, offset - limit)
        self._send(200, {"stat": "OK", "response": page, "metadata": metadata})

    # --- /__test__/

    def _control(self, path: str, body: bytes) -> None:
        state = self.server.state
        method = self.command
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            raise Failure((400, 40000, "Bad request"), "body is not JSON") from None
        if not isinstance(data, dict):
            raise Failure((400, 40000, "Bad request"), "body is not a JSON object")
        try:
            if path == "/__test__/state" and method == "POST":
                state.replace(data)
                return self._send(200, {"users": len(state.users), "groups": len(state.groups)})
            if path == "/__test__/state" and method == "GET":
                with state.lock:
                    snapshot = {"users": list(state.users.values()), "groups": list(state.groups.values())}
                return self._send(200, snapshot)
            if path.startswith("/__test__/users/") and method in ("PATCH", "DELETE"):
                user_id = unquote_plus(path[len("/__test__/users/") :])
                if method == "DELETE":
                    if not state.delete_user(user_id):
                        raise Failure(NOT_FOUND, "User not found")
                    return self._send(200, {"deleted": user_id})
                user = state.patch_user(user_id, data)
                if user is None:
                    raise Failure(NOT_FOUND, "User not found")
                return self._send(200, user)
            if path == "/__test__/faults" and method == "POST":
                return self._send(200, state.set_faults(data))
            if path == "/__test__/stats" and method == "GET":
                return self._send(200, state.snapshot_stats())
            if path == "/__test__/reset" and method == "POST":
                state.reset()
                return self._send(200, {"reset": True})
        except ValueError as exc:
            raise Failure((400, 40000, "Bad request"), str(exc)) from None
        raise Failure(NOT_FOUND)


def _user_matches(user: dict[str, Any], field: str, wanted: set[str]) -> bool:
    if field == "user_id":
        return user["user_id"] in wanted
    names = [user.get(field)]
    if field == "username":  # Duo matches a username filter on aliases too
        names += [user.get(f"alias{i}") for i in range(1, 5)] + list((user.get("aliases") or {}).values())
    return any(isinstance(n, str) and n.lower() in wanted for n in names)


class Server(ThreadingHTTPServer):
    """A threaded HTTPS server; the TLS handshake runs in the request's thread, not in accept()."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(
        self, port: int, context: ssl.SSLContext, state: State, verifier: Verifier, *, verbose: bool = False
    ) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.context = context
        self.state = state
        self.verifier = verifier
        self.verbose = verbose

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        # Headers and body go out in two writes: without TCP_NODELAY the second waits ~40 ms for a delayed ACK.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a client that does not trust our CA, or a port scan
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(OSError):
                tls.close()


def _load_initial(args: argparse.Namespace) -> dict[str, Any]:
    if args.state:
        with open(args.state, encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, dict):
            raise SystemExit("--state: the file must hold a JSON object with users and groups")
        return data
    return example_state() if args.seed_example else {"users": [], "groups": []}


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakeduo.admin_api", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1 (0: pick a free one)")
    parser.add_argument("--cert", required=True, help="server certificate (PEM)")
    parser.add_argument("--key", required=True, help="server key (PEM)")
    parser.add_argument("--state", help="JSON file with the starting users and groups")
    parser.add_argument("--seed-example", action="store_true", help="start with alice, bob and carol")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    ikey, skey = os.environ.get("FAKE_DUO_IKEY", ""), os.environ.get("FAKE_DUO_SKEY", "")
    if not ikey or not skey:
        sys.stderr.write("fake-duo-admin: set FAKE_DUO_IKEY and FAKE_DUO_SKEY\n")
        return 2
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key)
    state = State(_load_initial(args))
    server = Server(args.port, context, state, Verifier(ikey, skey), verbose=args.verbose)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"READY https://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
