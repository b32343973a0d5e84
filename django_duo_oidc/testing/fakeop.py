"""An in-process Duo OpenID provider for tests, that also misbehaves on demand.

Served through a ``requests`` transport adapter mounted on the session the app's HTTP client is
built from (``DUO_OIDC["HTTP_SESSION_FACTORY"] = "django_duo_oidc.testing.fakeop.session_factory"``),
so no module path is patched and nothing leaves the process: the adapter answers for
``https://sso-fake.sso.duosecurity.test/`` (a reserved ``.test`` name, RFC 6761, that never resolves:
a request that misses the adapter fails instead of reaching a network).

It serves what a Duo Single Sign-On application serves: discovery, a JWKS with a real RSA key, the
authorization step (played by :meth:`FakeOP.authorize`, no browser), the token endpoint
(authorization code with PKCE S256 and single-use codes, refresh, client credentials; client
authentication by HTTP Basic with RFC 6749 section 2.3.1 form-encoding, or in the form), userinfo,
introspection (RFC 7662) and revocation (RFC 7009). Tokens are Duo-shaped (RS256, header
``typ: jwt``, ``aud`` the client id). Policy changes: :meth:`FakeOP.revoke`, :meth:`FakeOP.narrow`.
Faults: :attr:`FakeOP.faults` maps an endpoint name to ``"down"``, ``"timeout"``, ``"garbage"`` or
an HTTP status; more knobs are the attributes set in ``__init__``.

One fake answers at a time: the one :func:`install` made current (``CURRENT``). Most tests use it
through :class:`django_duo_oidc.testing.FakeDuo`, which also creates its ``Provider`` row; the
project's own tests use it directly (``tests/fakeop.py`` is this module). A fake is for fast tests
and for faults a real provider won't produce; it proves no flow against a real provider.

Over 300 lines on purpose: one fake provider, every endpoint with its checks, read top to bottom.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from requests.adapters import BaseAdapter

from django_duo_oidc.core.pkce import s256_challenge
from django_duo_oidc.core.tokens import at_hash

ISSUER = "https://sso-fake.sso.duosecurity.test/oidc/DIFAKECLIENT0000001"
CLIENT_ID = "DIFAKECLIENT0000001"
# A secret with every character that breaks naive Basic encoding.
CLIENT_SECRET = "sp+ec/ial:chars%25x=AbCdEfGhIjKlMnOpQrStUv"

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "CURRENT",
    "ISSUER",
    "FakeAdapter",
    "FakeOP",
    "Fault",
    "install",
    "public_jwk",
    "rsa_key",
    "session_factory",
    "uninstall",
]

#: The fake currently answering requests (see :func:`install`); None: every request fails to connect.
CURRENT: FakeOP | None = None


@functools.cache
def rsa_key(name: str = "main") -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key, generated once per process and ``name`` (``"main"`` signs the fake's tokens)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str | None) -> dict[str, Any]:
    """The public half of ``key`` as a JWK (RFC 7517) for RS256 signatures, with ``kid`` if given."""
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"use": "sig", "alg": "RS256"})
    if kid is not None:
        jwk["kid"] = kid
    return jwk


class Fault(Exception):
    """Kept for tests that raise it from a handler."""


class FakeOP:
    """One fake Duo SSO application: its documents, its endpoints, its grants and tokens.

    Knobs are plain attributes (see ``__init__``); what it was asked is kept in :attr:`calls`,
    :attr:`token_requests`, :attr:`introspected` and :attr:`revocations`.
    """

    def __init__(self) -> None:
        self.issuer = ISSUER
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.auth_method = "client_secret_basic"
        self.key = rsa_key()
        self.kid = "a" * 64
        self.extra_jwks: list[dict[str, Any]] = []
        self.publish_kid = True
        self.codes: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        # Knobs
        self.discovery_overrides: dict[str, Any] = {}
        self.faults: dict[str, str | int] = {}  # endpoint name -> "down" | "timeout" | "garbage" | status
        self.id_token_claims: dict[str, Any] = {}
        self.id_token_drop: set[str] = set()
        self.id_token_header: dict[str, Any] = {}
        self.sign_with: str = "rsa"  # rsa | none | hs256-client-secret | hs256-public-key | other-key
        self.userinfo_overrides: dict[str, Any] = {}
        self.token_overrides: dict[str, Any] = {}
        self.token_drop: set[str] = set()
        self.token_scope: str | None = None  # None: echo the granted scope; "": omit the field
        self.access_token_format = "jwt"  # jwt | opaque
        # Grants by refresh token and token state by access token, for refresh and introspection.
        self.refresh_tokens: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.refresh_scope: str | None = None  # the scope a refresh grants (None: unchanged)
        self.issue_refresh_tokens = True
        self.client_token_lifetime: int | None = 600  # expires_in of client-credentials tokens
        self.rotate_refresh_tokens = False
        # More clients of this authorization server (client id -> secret), e.g. a second Provider row.
        self.other_clients: dict[str, str] = {}
        # RFC 7009: served at /revoke always, advertised in discovery only when asked; what was revoked.
        self.advertise_revocation = False
        self.revocations: list[dict[str, str]] = []
        self.introspected: list[str] = []  # every token sent to the introspection endpoint
        # Every token request's form with repeated fields kept (RFC 8707 resource), in order.
        self.token_requests: list[dict[str, list[str]]] = []

    # Documents -------------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        doc = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "introspection_endpoint": f"{self.issuer}/token_introspection",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "groups", "crm.contacts.read"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        }
        if self.advertise_revocation:
            doc["revocation_endpoint"] = f"{self.issuer}/revoke"
        doc.update(self.discovery_overrides)
        return {k: v for k, v in doc.items() if v is not None}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self.key, self.kid if self.publish_kid else None), *self.extra_jwks]}

    def user_claims(self, sub: str) -> dict[str, Any]:
        return {
            "sub": sub,
            "email": f"{sub}@example.test",
            "name": f"{sub.title()} Example",
            "given_name": sub.title(),
            "family_name": "Example",
            "groups": ["crm-users"],
        }

    # Browser step ----------------------------------------------------------------------------

    def authorize(
        self,
        url: str,
        *,
        sub: str = "alice",
        scope: str | None = None,
        claims: dict[str, Any] | None = None,
        error: str | None = None,
        iss: str | bool | None = True,
        auth_time: float | None = None,
    ) -> str:
        """Play the user at the authorization endpoint; return the callback URL's query string.

        ``sub``: who logs in; ``scope``: what is granted (default: what was asked); ``claims``: extra or
        replaced ID token and userinfo claims; ``error``: refuse with this error code; ``iss``: the
        RFC 9207 ``iss`` parameter (True: the issuer, False/None: left out, a string: that value);
        ``auth_time``: when the user authenticated (default: 5 seconds ago).
        """
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{self.issuer}/authorize", url
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert params["response_type"] == "code"
        assert params["client_id"] == self.client_id
        assert params["code_challenge_method"] == "S256"
        query: dict[str, str] = {"state": params["state"]}
        if iss is True:
            query["iss"] = self.issuer
        elif isinstance(iss, str):
            query["iss"] = iss
        if error:
            query["error"] = error
            return urlencode(query)
        code = secrets.token_urlsafe(24)
        self.codes[code] = {
            "nonce": params.get("nonce"),
            "challenge": params["code_challenge"],
            "redirect_uri": params["redirect_uri"],
            "scope": scope if scope is not None else params["scope"],
            "sub": sub,
            "claims": claims or {},
            "max_age": params.get("max_age"),
            "auth_time": int(time.time()) - 5 if auth_time is None else int(auth_time),
        }
        query["code"] = code
        return urlencode(query)

    # Token minting ---------------------------------------------------------------------------

    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        headers = {"kid": self.kid, "typ": "jwt", **(header or {})}
        headers = {k: v for k, v in headers.items() if v is not None}
        if self.sign_with == "none":
            return jwt.encode(claims, "", algorithm="none", headers=headers)  # "none" takes no key ("" is None)
        if self.sign_with == "hs256-client-secret":
            return jwt.encode(claims, self.client_secret, algorithm="HS256", headers=headers)
        if self.sign_with == "hs256-public-key":
            pem = json.dumps(public_jwk(self.key, self.kid))
            # Build the HMAC by hand: PyJWT refuses a PEM/JWK-looking HMAC key (as it should).
            return _hs256(claims, pem.encode(), headers)
        key = rsa_key("other") if self.sign_with == "other-key" else self.key
        return jwt.encode(claims, key, algorithm="RS256", headers=headers)

    def access_token(self, sub: str, scope: str, aud: str | None = None, ttl: int = 3600, **extra: Any) -> str:
        if self.access_token_format == "opaque":
            return secrets.token_urlsafe(32)
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": sub, "aud": aud or self.client_id, "exp": now + ttl, "iat": now}
        return self.sign({**claims, "scope": scope, **extra})

    def id_token(self, grant: dict[str, Any], access_token: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": grant["sub"],
            "aud": self.client_id,
            "exp": now + 300,
            "iat": now,
            "auth_time": grant["auth_time"],
            "nonce": grant["nonce"],
            "at_hash": at_hash(access_token, "RS256"),
            **{k: v for k, v in self.user_claims(grant["sub"]).items() if k != "groups"},
            "groups": self.user_claims(grant["sub"])["groups"],
            **grant["claims"],
        }
        claims.update(self.id_token_claims)
        for name in self.id_token_drop:
            claims.pop(name, None)
        return self.sign(claims, self.id_token_header)

    # HTTP ------------------------------------------------------------------------------------

    def handle(self, request: requests.PreparedRequest) -> tuple[int, Any, dict[str, str]]:
        path = urlsplit(request.url or "").path
        base = urlsplit(self.issuer).path
        name = path[len(base) :].lstrip("/") if path.startswith(base) else path
        self.calls.append((request.method or "", name))
        fault = self.faults.get(name)
        if fault == "down":
            raise requests.ConnectionError("connection refused")
        if fault == "timeout":
            raise requests.ReadTimeout("read timed out")
        if fault == "garbage":
            return 200, b"<html>not json</html>", {"Content-Type": "text/html"}
        if isinstance(fault, int):
            return fault, {"error": "server_error"}, {}
        if name == ".well-known/openid-configuration":
            return 200, self.discovery(), {}
        if name == "jwks":
            return 200, self.jwks(), {}
        if name == "token":
            return self.token_endpoint(request)
        if name == "userinfo":
            return self.userinfo_endpoint(request)
        if name == "token_introspection":
            return self.introspection_endpoint(request)
        if name == "revoke":
            return self.revocation_endpoint(request)
        return 404, {"error": "not_found"}, {}

    def authenticate_client(self, request: requests.PreparedRequest, form: dict[str, str]) -> bool:
        header = request.headers.get("Authorization", "")
        clients = {self.client_id: self.client_secret, **self.other_clients}
        if header.startswith("Basic "):
            raw = base64.b64decode(header[6:]).decode()
            user, _, password = raw.partition(":")
            # RFC 6749 2.3.1: both parts are form-urlencoded before Basic encoding.
            user = unquote_plus(user)
            return user in clients and clients[user] == unquote_plus(password)
        client_id = form.get("client_id", "")
        return client_id in clients and clients[client_id] == form.get("client_secret")

    def token_endpoint(self, request: requests.PreparedRequest) -> tuple[int, Any, dict[str, str]]:
        form = _form(request)
        body = request.body or ""
        self.token_requests.append(parse_qs(body.decode() if isinstance(body, bytes) else body))
        if not self.authenticate_client(request, form):
            return 401, {"error": "invalid_client"}, {}
        if form.get("grant_type") == "refresh_token":
            return self.refresh_grant(form)
        if form.get("grant_type") == "client_credentials":
            return self.client_credentials_grant(form)
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}, {}
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None:
            # Duo's shape (DUO.md 1.13): RFC fields plus error_title/error_message.
            return 400, {"error": "invalid_grant", "error_description": "bad code", "error_title": "x"}, {}
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant"}, {}
        if s256_challenge(form.get("code_verifier", "")) != grant["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}, {}
        granted = grant["scope"]
        access = self.access_token(grant["sub"], granted)
        response = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": self.id_token(grant, access),
        }
        self.tokens[access] = {"sub": grant["sub"], "scope": granted, "active": True}
        if self.issue_refresh_tokens:
            response["refresh_token"] = self.new_refresh_token(grant, granted)
        if self.token_scope is None:
            response["scope"] = granted
        elif self.token_scope:
            response["scope"] = self.token_scope
        response.update(self.token_overrides)
        for name in self.token_drop:
            response.pop(name, None)
        self.last_access_token = access
        self.last_grant = grant
        return 200, response, {}

    def new_refresh_token(self, grant: dict[str, Any], scope: str) -> str:
        token = secrets.token_urlsafe(24)
        self.refresh_tokens[token] = {"grant": grant, "scope": scope, "active": True}
        return token

    def refresh_grant(self, form: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        entry = self.refresh_tokens.get(form.get("refresh_token", ""))
        if entry is None or not entry["active"]:
            return 400, {"error": "invalid_grant", "error_description": "grant request is invalid"}, {}
        scope = self.refresh_scope if self.refresh_scope is not None else entry["scope"]
        grant = entry["grant"]
        access = self.access_token(grant["sub"], scope)
        self.tokens[access] = {"sub": grant["sub"], "scope": scope, "active": True}
        response: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": 3600, "scope": scope}
        if self.rotate_refresh_tokens:
            entry["active"] = False
            response["refresh_token"] = self.new_refresh_token(grant, scope)
        self.last_access_token = access
        return 200, response, {}

    def client_credentials_grant(self, form: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """Duo-shaped: the client's id is the token's sub (DUO.md 2); a jti keeps tokens distinct."""
        scope = form.get("scope", "")
        ttl = self.client_token_lifetime or 3600
        access = self.access_token(self.client_id, scope, ttl=ttl, jti=secrets.token_hex(8))
        self.tokens[access] = {"sub": self.client_id, "scope": scope, "active": True}
        response: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "scope": scope}
        if self.client_token_lifetime is not None:
            response["expires_in"] = self.client_token_lifetime
        return 200, response, {}

    def revoke_token(self, token: str) -> None:
        self.tokens[token]["active"] = False

    def revoke(self, sub: str) -> None:
        """What an admin revoking the user's access in Duo amounts to."""
        for state in [*self.tokens.values(), *self.refresh_tokens.values()]:
            if state.get("sub", state.get("grant", {}).get("sub")) == sub:
                state["active"] = False

    def narrow(self, sub: str, scope: str) -> None:
        """A scope revoked by policy: the user's live tokens now carry only ``scope``."""
        for state in self.tokens.values():
            if state["sub"] == sub:
                state["scope"] = scope

    def introspection_endpoint(self, request: requests.PreparedRequest) -> tuple[int, Any, dict[str, str]]:
        form = _form(request)
        if not self.authenticate_client(request, form):
            return 401, {"error": "invalid_client"}, {}
        token = form.get("token", "")
        self.introspected.append(token)
        state = self.tokens.get(token)
        if state is None and token in self.refresh_tokens:  # RFC 7662: any token of a grant
            entry = self.refresh_tokens[token]
            state = {"active": entry["active"], "scope": entry["scope"], "sub": entry["grant"]["sub"]}
        if state is None or not state["active"]:
            return 200, {"active": False}, {}
        answer = {"active": True, "scope": state["scope"], "sub": state["sub"], "client_id": self.client_id}
        answer.update(state.get("introspection", {}))
        return 200, answer, {}

    def revocation_endpoint(self, request: requests.PreparedRequest) -> tuple[int, Any, dict[str, str]]:
        """RFC 7009: client authentication, then 200 whether or not the token was known (section 2.2)."""
        form = _form(request)
        if not self.authenticate_client(request, form):
            return 401, {"error": "invalid_client"}, {}
        token = form.get("token", "")
        self.revocations.append({"token": token, "token_type_hint": form.get("token_type_hint", "")})
        for table in (self.tokens, self.refresh_tokens):
            if token in table:
                table[token]["active"] = False
        return 200, b"", {}

    def count(self, name: str) -> int:
        return sum(1 for _method, called in self.calls if called == name)

    def userinfo_endpoint(self, request: requests.PreparedRequest) -> tuple[int, Any, dict[str, str]]:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or header[7:] != getattr(self, "last_access_token", None):
            return 401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        claims = self.user_claims(self.last_grant["sub"])
        claims["user"] = claims["email"]  # Duo's non-standard extra
        claims.update(self.last_grant["claims"])
        claims.update(self.userinfo_overrides)
        return 200, claims, {}


def _form(request: requests.PreparedRequest) -> dict[str, str]:
    body = request.body or ""
    body = body.decode() if isinstance(body, bytes) else body
    return {k: v[0] for k, v in parse_qs(body).items()}


def _hs256(claims: dict[str, Any], key: bytes, headers: dict[str, Any]) -> str:
    import hmac

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({**headers, "alg": "HS256"}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = b64(hmac.new(key, header + b"." + payload, hashlib.sha256).digest())
    return (header + b"." + payload + b"." + signature).decode()


class FakeAdapter(BaseAdapter):
    """Route requests to the current FakeOP (set by the ``fake_op`` fixture)."""

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Answer ``request`` from the current fake (the transport options are not used)."""
        if CURRENT is None:
            raise requests.ConnectionError("no fake provider is running")
        status, body, headers = CURRENT.handle(request)
        response = requests.Response()
        response.status_code = status
        if isinstance(body, bytes):
            response._content = body
        else:
            response._content = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **headers}
        response.headers.update(headers)
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def install(op: FakeOP | None) -> FakeOP | None:
    """Make ``op`` the fake that answers (None: none does); return the one that answered before."""
    global CURRENT
    previous, CURRENT = CURRENT, op
    return previous


def uninstall(previous: FakeOP | None = None) -> None:
    """Stop the current fake answering, putting back ``previous`` (what :func:`install` returned)."""
    install(previous)


def session_factory() -> requests.Session:
    """The ``DUO_OIDC["HTTP_SESSION_FACTORY"]`` of a test run: a Session whose requests to the fake's
    host go to :data:`CURRENT`, in process."""
    session = requests.Session()
    session.mount(_ORIGIN, FakeAdapter())
    return session


_ORIGIN = "https://" + urlsplit(ISSUER).netloc + "/"
