"""A fake Duo Web SDK v4 (Universal Prompt) server: a standalone HTTPS process that checks what Duo checks.

    FAKE_DUO_CLIENT_ID=<20 chars> FAKE_DUO_CLIENT_SECRET=<40 chars> \\
        python -m tests.fakeduo.universal --port P --cert server.pem --key server-key.pem

(or ``--pki-dir DIR`` instead of ``--cert``/``--key``: a throwaway CA, ``DIR/ca.pem``, for the SDK's
``duo_certs``, and a certificate for 127.0.0.1 made at start). It prints ``READY https://127.0.0.1:P``
(flushed) once it listens (``--port 0`` picks a free port and prints it) and stops on SIGTERM. The checks
are written from ``../shared/DUO.md`` section 3 (not from the SDK), so that ``duo_universal`` talking to
this server proves the app drives the SDK the way Duo expects.

Endpoints (``<host>`` is the ``Host`` header as the client sent it, e.g. ``127.0.0.1:P``):

- ``POST /oauth/v1/health_check``: form ``client_id`` + ``client_assertion``. OK:
  ``{"stat": "OK", "response": {"timestamp": T}}``; a bad assertion: HTTP 400
  ``{"stat": "FAIL", "code": 40002, "message": "invalid_client", "message_detail": "The provided
  client_assertion was invalid.", "timestamp": T}``.
- ``GET /oauth/v1/authorize?response_type=code&client_id=..&request=<JWT>[&nonce=..]``: a valid request
  redirects to the prompt page ``/frame/v4/prompt/<txn>`` ("Approve" / "Deny" buttons, POST forms back to
  the fake); a decision redirects to ``redirect_uri?state=<state>&duo_code=<code>`` (``duo_code``, not
  ``code``: the request asks for it with ``use_duo_code_attribute``).
- ``POST /oauth/v1/token``: parameters in the query string (as ``duo_universal`` sends them) and/or a form
  body; answers ``{id_token, access_token, expires_in, token_type}``, the ID token HS512-signed with the
  client secret (Duo has no JWKS for this).

Client assertions (health check and token; RFC 7523 section 3, as Duo applies it): HS512 signed with the
client secret; ``iss`` = ``sub`` = ``client_id``; ``aud`` = the URL of the endpoint called; ``exp`` not
past and at most 300 s ahead; ``jti`` present and never seen before (single use).

Decisions about what Duo does not document (``../shared/DUO.md`` section 5 spirit: decide and say):

- A ``client_id`` other than the configured one is treated as the credentials of another Duo application
  type (Auth API, Admin API, ...): every endpoint answers HTTP 400
  ``{"error": "unauthorized_request", "error_description": "Unauthorized OIDC request"}`` (the body Duo
  gives, DUO.md 3). ``duo_universal.health_check()`` raises on it (the body has no ``stat``).
- A bad authorize request NEVER redirects: the only thing vouching for its ``redirect_uri`` is the request
  JWT, and a request that fails its checks vouches for nothing (RFC 6749 section 4.1.2.1: do not redirect
  to an unverified URI). The browser gets an HTTP 400 page with
  ``{"error": "invalid_request", "error_description": "..."}``.
- Codes live 60 s and are single use; a second use is HTTP 400 ``invalid_grant`` with Duo's text
  (RFC 6749 section 4.1.2: "If an authorization code is used more than once, the authorization server MUST
  deny the request"). The client is authenticated before the code is looked at, so a request with a bad
  assertion does not burn the code.
- The prompt page's transaction is single use and lives 300 s.

Test control (no authentication; JSON), never under ``/oauth/``:

- ``POST /__test__/faults`` ``{"down": bool, "delay": seconds, "decision": "allow"|"deny"|null,
  "wrong_username": bool, "factor": "Duo Push", "health": "ok"|"fail"}`` (keys given are changed, the
  others kept). ``down``: connections to the Duo endpoints are reset; ``delay``: each Duo endpoint answers
  that late; ``decision``: decide at authorize time and redirect at once (for tests without a browser),
  ``null`` shows the prompt page; ``wrong_username``: the ID token names another user; ``factor``: the
  ``auth_context.factor`` of the next results; ``health="fail"``: the health check answers HTTP 503 with a
  ``FAIL`` body; ``health="garbled"``: it answers 200 with something that is not Duo's answer. Also (a
  lying or sick Duo): ``"broken": true``: every Duo endpoint answers HTTP 502 with an
  HTML page (a load balancer's); ``"claims": {"aud": "x", "auth_result": null}``: the ID token's claims
  changed (``null`` removes one); ``"bad_signature": true``: the ID token is signed with another key.
- ``GET /__test__/stats``: ``{"health_checks", "authorizes", "prompts", "decisions", "tokens", "replays",
  "bad_assertions", "bad_requests", "unauthorized"}`` (counts since the last reset).
- ``POST /__test__/reset``: faults, counts, transactions, codes and seen ``jti`` values cleared.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import secrets
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
import jwt.warnings

CLIENT_ID_LENGTH = 20
CLIENT_SECRET_LENGTH = 40
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300  # DUO.md 3: exp <= now + 300
CLOCK_SKEW = 5  # both ends share this machine's clock; a little slack for the time the request takes
STATE_MIN, STATE_MAX = 16, 1024  # DUO.md 3 (Python SDK bounds; the Go SDK's minimum is 22)
CODE_TTL = 60
TXN_TTL = 300
ID_TOKEN_TTL = 300
MAX_BODY = 64 * 1024
MAX_DELAY = 60.0

INVALID_GRANT = (
    "The provided authorization grant or refresh token is invalid, expired, revoked, "
    "does not match the redirection URI."
)
BAD_ASSERTION = "The provided client_assertion was invalid."
UNAUTHORIZED = {"error": "unauthorized_request", "error_description": "Unauthorized OIDC request"}
DENY_RESULT = {"result": "deny", "status": "deny", "status_msg": "Login request denied."}
ALLOW_RESULT = {"result": "allow", "status": "allow", "status_msg": "Login Successful"}


class Refused(Exception):
    """A request the fake turns down: ``status`` and the JSON ``body`` Duo would send."""

    def __init__(self, status: int, body: dict[str, Any], counter: str | None = None) -> None:
        super().__init__(body)
        self.status = status
        self.body = body
        self.counter = counter


def _assertion_refused(detail: str = BAD_ASSERTION) -> Refused:
    return Refused(400, {"error": "invalid_client", "error_description": detail}, "bad_assertions")


def _health_refused() -> Refused:
    body = {
        "stat": "FAIL",
        "code": 40002,
        "message": "invalid_client",
        "message_detail": BAD_ASSERTION,
        "timestamp": int(time.time()),
    }
    return Refused(400, body, "bad_assertions")


def _bad_request(detail: str) -> Refused:
    return Refused(400, {"error": "invalid_request", "error_description": detail}, "bad_requests")


@dataclass
class Transaction:
    """One authorize request waiting for a decision on the prompt page."""

    client_id: str
    username: str
    redirect_uri: str
    state: str
    nonce: str | None
    expires_at: float


@dataclass
class Grant:
    """A decision, reachable once through its code."""

    client_id: str
    username: str
    redirect_uri: str
    nonce: str | None
    result: dict[str, str]
    factor: str
    auth_time: int
    expires_at: float


@dataclass
class Faults:
    down: bool = False
    delay: float = 0.0
    decision: str | None = None
    wrong_username: bool = False
    factor: str = "Duo Push"
    health: str = "ok"
    broken: bool = False
    claims: dict[str, Any] = field(default_factory=dict)
    bad_signature: bool = False


STAT_NAMES = (
    "health_checks",
    "authorizes",
    "prompts",
    "decisions",
    "tokens",
    "replays",
    "bad_assertions",
    "bad_requests",
    "unauthorized",
)


@dataclass
class FakeDuo:
    """The fake's whole state, guarded by one lock (the server is threaded)."""

    client_id: str
    client_secret: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: Faults = field(default_factory=Faults)
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAT_NAMES, 0))
    transactions: dict[str, Transaction] = field(default_factory=dict)
    grants: dict[str, Grant | None] = field(default_factory=dict)  # None: already redeemed
    seen_jti: dict[str, float] = field(default_factory=dict)

    def count(self, name: str) -> None:
        with self.lock:
            self.stats[name] = self.stats.get(name, 0) + 1

    def reset(self) -> None:
        with self.lock:
            self.faults = Faults()
            self.stats = dict.fromkeys(STAT_NAMES, 0)
            self.transactions.clear()
            self.grants.clear()
            self.seen_jti.clear()

    def set_faults(self, changes: dict[str, Any]) -> None:
        unknown = set(changes) - set(Faults.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        if changes.get("decision") not in (None, "allow", "deny"):
            raise ValueError("decision must be 'allow', 'deny' or null")
        if "health" in changes and changes["health"] not in ("ok", "fail", "garbled"):
            raise ValueError("health must be 'ok', 'fail' or 'garbled'")
        if not isinstance(changes.get("claims", {}), dict):
            raise ValueError("claims must be an object (a null value removes that claim)")
        if "delay" in changes:
            changes["delay"] = min(max(float(changes["delay"] or 0), 0.0), MAX_DELAY)
        with self.lock:
            for key, value in changes.items():
                setattr(self.faults, key, value)

    # --- client authentication -------------------------------------------------------------------------

    def check_client_id(self, client_id: str | None) -> None:
        if not client_id:
            raise _bad_request("client_id is required")
        if not secrets.compare_digest(client_id.encode(), self.client_id.encode()):
            # Credentials of another Duo application type (DUO.md 3): not an OIDC client at all.
            raise Refused(400, UNAUTHORIZED, "unauthorized")

    def check_assertion(self, assertion: str | None, client_id: str, audience: str, health: bool) -> None:
        """A client assertion (RFC 7523 section 3): signature, iss, sub, aud, exp, single-use jti."""
        refuse = _health_refused if health else _assertion_refused
        if not assertion:
            raise refuse()
        try:
            claims = jwt.decode(
                assertion,
                self.client_secret,
                algorithms=["HS512"],
                audience=audience,
                options={"require": ["iss", "sub", "aud", "exp", "jti"], "verify_signature": True},
                leeway=CLOCK_SKEW,
            )
        except jwt.PyJWTError:
            raise refuse() from None
        if claims["iss"] != client_id:
            if health:
                raise refuse()
            raise _assertion_refused("Invalid Client assertion: The `iss` claim must match the supplied client_id")
        now = time.time()
        if claims["sub"] != client_id or not isinstance(claims["jti"], str) or not claims["jti"]:
            raise refuse()
        if float(claims["exp"]) > now + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
            raise refuse()  # RFC 7523 3 (4): the server may refuse a too distant expiry; Duo's limit is 300 s
        with self.lock:
            for jti, until in list(self.seen_jti.items()):
                if until < now:
                    del self.seen_jti[jti]
            if claims["jti"] in self.seen_jti:
                raise refuse()  # RFC 7523 3 (7): a jti seen before is a replayed assertion
            self.seen_jti[claims["jti"]] = float(claims["exp"]) + CLOCK_SKEW

    # --- endpoints ---------------------------------------------------------------------------------------

    def health_check(self, form: dict[str, str], host: str) -> tuple[int, dict[str, Any]]:
        self.count("health_checks")
        client_id = form.get("client_id")
        self.check_client_id(client_id)
        assert client_id is not None
        self.check_assertion(form.get("client_assertion"), client_id, f"https://{host}/oauth/v1/health_check", True)
        if self.faults.health == "fail":
            body = {
                "stat": "FAIL",
                "code": 50301,
                "message": "Service Unavailable",
                "message_detail": "Duo is temporarily unavailable.",
                "timestamp": int(time.time()),
            }
            return 503, body
        if self.faults.health == "garbled":
            return 200, {"message": "Blocked by the web filter"}  # a 200 that is not Duo's (a proxy's block page)
        return 200, {"stat": "OK", "response": {"timestamp": int(time.time())}}

    def authorize(self, query: dict[str, str], host: str) -> Transaction:
        """Verify an authorize request (DUO.md 3); return the transaction it opens."""
        self.count("authorizes")
        if query.get("response_type") != "code":
            raise _bad_request("response_type must be code")
        client_id = query.get("client_id")
        self.check_client_id(client_id)
        request = query.get("request")
        if not request:
            raise _bad_request("the request parameter (a signed JWT) is required")
        try:
            claims = jwt.decode(
                request,
                self.client_secret,
                algorithms=["HS512"],
                audience=f"https://{host}",
                issuer=client_id,
                options={"require": ["iss", "aud", "exp"]},
                leeway=CLOCK_SKEW,
            )
        except jwt.PyJWTError as exc:
            raise _bad_request(f"the request JWT is invalid: {type(exc).__name__}") from None
        if float(claims["exp"]) > time.time() + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
            raise _bad_request("the request JWT expires too far ahead")
        expected = {"scope": "openid", "response_type": "code", "client_id": client_id}
        for name, value in expected.items():
            if claims.get(name) != value:
                raise _bad_request(f"the request JWT's {name} must be {value}")
        if claims.get("use_duo_code_attribute") is not True:
            raise _bad_request("the request JWT's use_duo_code_attribute must be true")
        redirect_uri = claims.get("redirect_uri")
        parts = urlsplit(redirect_uri) if isinstance(redirect_uri, str) else None
        if parts is None or parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
            raise _bad_request("the request JWT's redirect_uri must be an absolute http(s) URL without a fragment")
        state = claims.get("state")
        if not isinstance(state, str) or not STATE_MIN <= len(state) <= STATE_MAX:
            raise _bad_request(f"state must be {STATE_MIN} to {STATE_MAX} characters")
        username = claims.get("duo_uname")
        if not isinstance(username, str) or not username:
            raise _bad_request("duo_uname is required")
        # duo_universal sends the nonce next to the request JWT; another client may put it inside.
        nonce = query.get("nonce")
        inner = claims.get("nonce")
        if inner is not None and nonce is not None and inner != nonce:
            raise _bad_request("the nonce differs inside and outside the request JWT")
        nonce = nonce if nonce is not None else inner
        if nonce is not None and (not isinstance(nonce, str) or not STATE_MIN <= len(nonce) <= STATE_MAX):
            raise _bad_request(f"nonce must be {STATE_MIN} to {STATE_MAX} characters")
        txn = Transaction(client_id, username, redirect_uri, state, nonce, time.time() + TXN_TTL)  # type: ignore[arg-type]
        return txn

    def open_transaction(self, txn: Transaction) -> str:
        txn_id = secrets.token_urlsafe(24)
        with self.lock:
            now = time.time()
            for key, old in list(self.transactions.items()):
                if old.expires_at < now:
                    del self.transactions[key]
            self.transactions[txn_id] = txn
        return txn_id

    def peek_transaction(self, txn_id: str) -> Transaction | None:
        with self.lock:
            txn = self.transactions.get(txn_id)
        return txn if txn is not None and txn.expires_at >= time.time() else None

    def decide(self, txn: Transaction, decision: str) -> str:
        """Record a decision; return the callback URL (redirect_uri + state + duo_code)."""
        self.count("decisions")
        with self.lock:
            factor = self.faults.factor
        grant = Grant(
            client_id=txn.client_id,
            username=txn.username,
            redirect_uri=txn.redirect_uri,
            nonce=txn.nonce,
            result=dict(ALLOW_RESULT if decision == "allow" else DENY_RESULT),
            factor=factor,
            auth_time=int(time.time()),
            expires_at=time.time() + CODE_TTL,
        )
        code = secrets.token_urlsafe(32)
        with self.lock:
            self.grants[code] = grant
        parts = urlsplit(txn.redirect_uri)
        params = [*parse_qsl(parts.query, keep_blank_values=True), ("state", txn.state), ("duo_code", code)]
        return urlunsplit(parts._replace(query=urlencode(params)))

    def decide_transaction(self, txn_id: str, decision: str) -> str | None:
        with self.lock:
            txn = self.transactions.pop(txn_id, None)  # single use
        if txn is None or txn.expires_at < time.time():
            return None
        return self.decide(txn, decision)

    def token(self, params: dict[str, str], host: str) -> dict[str, Any]:
        self.count("tokens")
        token_url = f"https://{host}/oauth/v1/token"
        client_id = params.get("client_id")
        self.check_client_id(client_id)
        assert client_id is not None
        if params.get("client_assertion_type") != ASSERTION_TYPE:
            raise _assertion_refused()
        self.check_assertion(params.get("client_assertion"), client_id, token_url, False)
        if params.get("grant_type") != "authorization_code":
            raise Refused(400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"})
        code = params.get("code") or ""
        with self.lock:
            known = code in self.grants
            grant = self.grants.get(code)
            if grant is not None:
                self.grants[code] = None  # single use, whatever follows
        invalid = Refused(400, {"error": "invalid_grant", "error_description": INVALID_GRANT})
        if known and grant is None:
            self.count("replays")
            raise invalid
        if grant is None or grant.expires_at < time.time() or grant.client_id != client_id:
            raise invalid
        if params.get("redirect_uri") != grant.redirect_uri:
            raise invalid  # RFC 6749 4.1.3: identical to the authorization request's redirect_uri
        with self.lock:
            faults = Faults(**vars(self.faults))
        return self.tokens_for(grant, host, faults)

    def tokens_for(self, grant: Grant, host: str, faults: Faults) -> dict[str, Any]:
        wrong_username = faults.wrong_username
        now = int(time.time())
        username = grant.username + "-other" if wrong_username else grant.username
        result = grant.result["result"]
        claims: dict[str, Any] = {
            "aud": grant.client_id,
            "iss": f"https://{host}/oauth/v1/token",
            "iat": now,
            "exp": now + ID_TOKEN_TTL,
            "sub": username,
            "jti": secrets.token_urlsafe(24),
            "preferred_username": username,
            "auth_time": grant.auth_time,
            "auth_result": grant.result,
            "auth_context": {
                "txid": secrets.token_hex(16),
                "timestamp": grant.auth_time,
                "isotimestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(grant.auth_time)),
                "event_type": "authentication",
                "result": result,
                "reason": "user_approved" if result == "allow" else "user_cancelled",
                "factor": grant.factor,
                "auth_device": {"name": "iOS (XXX-XXX-1234)", "ip": "192.0.2.10", "location": {}},
                "access_device": {
                    "browser": "Chrome",
                    "browser_version": "131.0",
                    "ip": "192.0.2.20",
                    "os": "Linux",
                    "location": {"city": "", "state": "", "country": ""},
                },
                "application": {"key": grant.client_id, "name": "Fake Web SDK app"},
                "user": {"name": username, "key": "DU" + secrets.token_hex(9).upper(), "groups": []},
                "email": "",
                "alias": "",
            },
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        for name, value in faults.claims.items():  # a lying Duo: claims changed (None removes one)
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        key = secrets.token_urlsafe(30) if faults.bad_signature else self.client_secret
        return {
            "id_token": jwt.encode(claims, key, algorithm="HS512"),
            "access_token": secrets.token_urlsafe(32),
            "expires_in": 3600,
            "token_type": "Bearer",
        }


BROKEN_PAGE = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
PROMPT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Duo Security (fake)</title>
<style>body{{font-family:sans-serif;max-width:28rem;margin:4rem auto}}button{{font-size:1.1rem;margin:.5rem}}</style>
</head><body>
<h1>Duo Security (fake Universal Prompt)</h1>
<p>Verify it's you, <strong id="username">{username}</strong>.</p>
<form method="post" action="/frame/v4/prompt/{txn}"><input type="hidden" name="decision" value="allow">
<button type="submit" id="approve">Approve</button></form>
<form method="post" action="/frame/v4/prompt/{txn}"><input type="hidden" name="decision" value="deny">
<button type="submit" id="deny">Deny</button></form>
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        # TLS in this thread, not in the accept loop: a client that connects and stalls (a browser's
        # speculative connection) must not hold up everybody else.
        self.request.settimeout(30)
        self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def handle(self) -> None:
        # A client that went away or failed the handshake: nothing to answer.
        with contextlib.suppress(ssl.SSLError, ConnectionError, TimeoutError, OSError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        # Never the query string: it carries request JWTs, codes and assertions.
        sys.stderr.write(f"fake-duo-universal {self.command} {urlsplit(self.path).path} {args[1:2]}\n")

    # --- plumbing ----------------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _redirect(self, location: str) -> None:
        self._send(302, b"", "text/plain", {"Location": location})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise _bad_request("request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _form(self) -> dict[str, str]:
        """Form body and query string together; a name given twice with different values is refused."""
        params: dict[str, str] = {}
        query = parse_qsl(urlsplit(self.path).query, keep_blank_values=True)
        form = parse_qsl(self._body().decode("utf-8", "replace"), keep_blank_values=True)
        for name, value in [*query, *form]:
            if name in params and params[name] != value:
                raise _bad_request(f"parameter {name} given twice")  # RFC 6749 3.1 / 3.2
            params[name] = value
        return params

    def _host(self) -> str:
        return self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"

    def _reset_connection(self) -> None:
        """Duo 'down': drop the connection with a TCP reset, without an answer."""
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.request.close()

    def _duo_endpoint(self) -> bool:
        """Apply down/delay to a Duo endpoint; False when the connection was dropped."""
        faults = self.server.duo.faults
        if faults.down:
            self._reset_connection()
            return False
        if faults.delay:
            time.sleep(faults.delay)
            if self.server.duo.faults is not faults:
                # Reset while it slept: the test that delayed it is over. Answered now, it would count in
                # (and consume codes of) whichever test runs next.
                self._reset_connection()
                return False
        if faults.broken:
            # What a load balancer in front of Duo says when Duo is sick: HTML, not Duo's JSON.
            self._send(502, BROKEN_PAGE, "text/html")
            return False
        return True

    def _dispatch(self, routes: dict[str, Any]) -> None:
        path = urlsplit(self.path).path
        handler = None
        for prefix, candidate in routes.items():
            if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                handler = candidate
                break
        if handler is None:
            self._json(404, {"error": "not_found"})
            return
        if not path.startswith("/__test__/") and not self._duo_endpoint():
            return
        try:
            handler(path)
        except Refused as refused:
            if refused.counter:
                self.server.duo.count(refused.counter)
            self._json(refused.status, refused.body)
        except Exception as exc:  # a bug in the fake: say so, loudly, rather than drop the connection
            sys.stderr.write(f"fake-duo-universal error: {exc!r}\n")
            self._json(500, {"error": "server_error", "error_description": type(exc).__name__})

    # --- routes ------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch(
            {
                "/oauth/v1/authorize": self._authorize,
                "/frame/v4/prompt/": self._prompt,
                "/__test__/stats": self._stats,
            }
        )

    def do_POST(self) -> None:
        self._dispatch(
            {
                "/oauth/v1/health_check": self._health_check,
                "/oauth/v1/token": self._token,
                "/frame/v4/prompt/": self._decision,
                "/__test__/faults": self._faults,
                "/__test__/reset": self._reset,
            }
        )

    def _health_check(self, path: str) -> None:
        status, body = self.server.duo.health_check(self._form(), self._host())
        self._json(status, body)

    def _authorize(self, path: str) -> None:
        duo = self.server.duo
        query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        txn = duo.authorize(query, self._host())
        decision = duo.faults.decision
        if decision is not None:
            self._redirect(duo.decide(txn, decision))
            return
        self._redirect(f"/frame/v4/prompt/{duo.open_transaction(txn)}")

    def _prompt(self, path: str) -> None:
        duo = self.server.duo
        txn_id = path.removeprefix("/frame/v4/prompt/")
        txn = duo.peek_transaction(txn_id)
        if txn is None:
            raise _bad_request("unknown or expired prompt")
        duo.count("prompts")
        page = PROMPT_PAGE.format(username=html.escape(txn.username), txn=html.escape(txn_id))
        self._send(200, page.encode(), "text/html; charset=utf-8", {"X-Frame-Options": "DENY"})

    def _decision(self, path: str) -> None:
        duo = self.server.duo
        decision = self._form().get("decision")
        if decision not in ("allow", "deny"):
            raise _bad_request("decision must be allow or deny")
        location = duo.decide_transaction(path.removeprefix("/frame/v4/prompt/"), decision)
        if location is None:
            raise _bad_request("unknown, expired or already decided prompt")
        self._redirect(location)

    def _token(self, path: str) -> None:
        self._json(200, self.server.duo.token(self._form(), self._host()))

    def _stats(self, path: str) -> None:
        with self.server.duo.lock:
            stats = dict(self.server.duo.stats)
        self._json(200, stats)

    def _faults(self, path: str) -> None:
        try:
            changes = json.loads(self._body() or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("a JSON object is expected")
            self.server.duo.set_faults(changes)
        except (ValueError, TypeError) as exc:
            self._json(400, {"error": str(exc)})
            return
        self._json(200, vars(self.server.duo.faults))

    def _reset(self, path: str) -> None:
        self._body()
        self.server.duo.reset()
        self._json(200, {"reset": True})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, tls: ssl.SSLContext, duo: FakeDuo) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.tls = tls
        self.duo = duo

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError)):
            return  # a failed handshake or a client that went away: not worth a traceback
        super().handle_error(request, client_address)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake Duo Web SDK v4 (Universal Prompt) server")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--cert", help="PEM server certificate")
    parser.add_argument("--key", help="PEM server key")
    parser.add_argument("--pki-dir", help="instead of --cert/--key: make a throwaway CA (ca.pem) and certificate here")
    args = parser.parse_args(argv)
    if args.pki_dir:
        from pathlib import Path

        from tests.fakeduo.tls import make_pki

        pki = make_pki(Path(args.pki_dir))
        args.cert, args.key = str(pki.cert_path), str(pki.key_path)
    if not args.cert or not args.key:
        parser.error("--cert and --key (or --pki-dir) are required")
    client_id = os.environ.get("FAKE_DUO_CLIENT_ID", "")
    client_secret = os.environ.get("FAKE_DUO_CLIENT_SECRET", "")
    if len(client_id) != CLIENT_ID_LENGTH or len(client_secret) != CLIENT_SECRET_LENGTH:
        print("FAKE_DUO_CLIENT_ID (20 chars) and FAKE_DUO_CLIENT_SECRET (40 chars) are required", file=sys.stderr)
        return 2
    # Duo's secrets are 40 characters (DUO.md 3), below PyJWT's advice for HS512: the protocol, not a bug here.
    warnings.filterwarnings("ignore", category=jwt.warnings.InsecureKeyLengthWarning)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(args.cert, args.key)
    server = Server(args.port, tls, FakeDuo(client_id, client_secret))

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"READY https://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
