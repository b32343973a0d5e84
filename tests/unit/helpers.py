"""Small helpers for the pure-core tests: a dict cache with a clock, and a keyed signer."""

from __future__ import annotations

from typing import Any

import jwt

from django_duo_oidc.core.http import HttpClient
from tests import fakeop

NOW = 1_800_000_000.0
ISSUER = fakeop.ISSUER
CLIENT_ID = fakeop.CLIENT_ID
KID = "k1"


class DictCache:
    """The cache protocol over a dict, with expiry driven by an adjustable clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.data: dict[str, tuple[Any, float | None]] = {}

    def _live(self, key: str) -> bool:
        entry = self.data.get(key)
        return entry is not None and (entry[1] is None or entry[1] > self.now)

    def get(self, key: str, default: Any = None) -> Any:
        return self.data[key][0] if self._live(key) else default

    def set(self, key: str, value: Any, timeout: float | None = None) -> None:
        self.data[key] = (value, None if timeout is None else self.now + timeout)

    def add(self, key: str, value: Any, timeout: float | None = None) -> bool:
        if self._live(key):
            return False
        self.set(key, value, timeout)
        return True


def jwks(*kids: str | None, key_name: str = "main") -> dict[str, Any]:
    return {"keys": [fakeop.public_jwk(fakeop.rsa_key(key_name), kid) for kid in kids]}


def sign(claims: dict[str, Any], *, kid: str | None = KID, key_name: str = "main", **header: Any) -> str:
    headers = {"typ": "jwt", **header}
    if kid is not None:
        headers["kid"] = kid
    return jwt.encode(claims, fakeop.rsa_key(key_name), algorithm="RS256", headers=headers)


def id_claims(**overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": ISSUER,
        "sub": "b1cee4e5" * 8,
        "aud": CLIENT_ID,
        "exp": int(NOW) + 300,
        "iat": int(NOW),
        "auth_time": int(NOW) - 10,
        "nonce": "n-0S6_WzA2Mj",
        "email": "alice@example.test",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def fake_http(op: fakeop.FakeOP) -> HttpClient:
    fakeop.CURRENT = op
    return HttpClient(fakeop.session_factory(), timeout=2)
