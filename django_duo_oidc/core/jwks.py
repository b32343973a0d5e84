"""The provider's signing keys (RFC 7517), shared between worker processes through a cache.

A token names its key by ``kid``. When the kid is unknown the JWKS is fetched again, because the
provider may have rotated its keys, but at most once per ``refetch_interval`` for all workers
sharing the cache, so a stream of forged tokens with random kids cannot make us hammer the
provider (RFC 8725 section 3.10 spirit; OIDC Core section 10.1.1 on rotation).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import jwt

from .errors import MalformedToken, ProviderResponseError, UnknownKey
from .http import HttpClient

__all__ = ["Cache", "JWKSStore", "KeySet"]

_KTY_FOR_ALG_PREFIX = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_SIGNATURE_KTYS = frozenset(_KTY_FOR_ALG_PREFIX.values())


class Cache(Protocol):
    """The subset of Django's cache API the core needs (any object with these methods works).

    Errors it raises propagate: the app's cache raises ``CacheUnavailable`` (a ``ProviderUnavailable``),
    so a cache outage is answered like an unreachable provider, never by fetching without the cache.
    """

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any, timeout: float | None) -> None: ...

    def add(self, key: str, value: Any, timeout: float | None) -> bool: ...


class KeySet:
    """Parsed signature keys of a JWKS document."""

    def __init__(self, document: dict[str, Any]) -> None:
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise ProviderResponseError("The provider's JWKS document has no 'keys' list.")
        self._keys: list[tuple[str | None, str | None, str, Any]] = []
        for data in keys:
            if not isinstance(data, dict) or data.get("use", "sig") != "sig":
                continue
            if data.get("kty") not in _SIGNATURE_KTYS:
                # Symmetric ("oct") keys never verify provider tokens (RFC 8725 section 3.2).
                continue
            try:
                parsed = jwt.PyJWK(data)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                # A key type we cannot use (or a broken entry) must not hide the others.
                continue
            self._keys.append((data.get("kid"), data.get("alg"), data.get("kty", ""), parsed.key))

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def kids(self) -> list[str | None]:
        return [kid for kid, _alg, _kty, _key in self._keys]

    def find(self, kid: str | None, alg: str) -> Any:
        """Return the verification key for a token header's ``kid`` and ``alg``.

        Without a kid, the key is used only when exactly one published key fits the algorithm
        (OIDC Core section 10.1: kid is optional when the choice is unambiguous).
        """
        kty = _KTY_FOR_ALG_PREFIX.get(alg[:2])
        candidates = [
            (k_kid, key) for k_kid, k_alg, k_kty, key in self._keys if k_kty == kty and (k_alg is None or k_alg == alg)
        ]
        if kid is not None:
            for k_kid, key in candidates:
                if k_kid == kid:
                    return key
            raise UnknownKey()
        if len(candidates) == 1:
            return candidates[0][1]
        if not candidates:
            raise UnknownKey()
        raise MalformedToken("The token has no 'kid' and the provider publishes several keys.")


class JWKSStore:
    """The JWKS of one ``jwks_uri``, cached in a shared cache and parsed once per process.

    Each process keeps the parsed keys for ``local_ttl`` seconds without asking the shared cache,
    so validating a token costs no cache round trip. A token with an unknown kid makes the process
    re-read the shared cache (another worker may have fetched the rotated keys) before it asks the
    provider, which it does at most once per ``refetch_interval`` for all workers.
    """

    # Parsed key sets, per cache key: (fingerprint of the document, keys, clock time read).
    _parsed: dict[str, tuple[str, KeySet, float]] = {}
    _lock = threading.Lock()

    def __init__(
        self,
        http: HttpClient,
        jwks_uri: str,
        cache: Cache,
        *,
        ttl: float = 3600,
        refetch_interval: float = 60,
        local_ttl: float = 30,
        key_prefix: str = "duo_oidc:jwks",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.jwks_uri = jwks_uri
        self.cache = cache
        self.ttl = ttl
        self.refetch_interval = refetch_interval
        self.local_ttl = local_ttl
        self.clock = clock
        digest = hashlib.sha256(jwks_uri.encode()).hexdigest()[:32]
        self.cache_key = f"{key_prefix}:{digest}"

    @classmethod
    def forget_all(cls) -> None:
        """Drop every process-local parsed key set (the shared cache is untouched)."""
        with cls._lock:
            cls._parsed.clear()

    def key_for(self, kid: str | None, alg: str) -> Any:
        """Return the key for ``kid``/``alg``, refetching once (rate-limited) if it is unknown."""
        local = self._parsed.get(self.cache_key)
        if local is not None and self.clock() - local[2] < self.local_ttl:
            try:
                return local[1].find(kid, alg)
            except UnknownKey:
                pass  # perhaps rotated: see what the other workers know
        keys = self.current(shared=True)
        try:
            return keys.find(kid, alg)
        except UnknownKey:
            if not self.cache.add(self.cache_key + ":refetch", 1, self.refetch_interval):
                raise
        return self.refresh().find(kid, alg)

    def current(self, *, shared: bool = False) -> KeySet:
        """Return the key set: this process's copy while fresh, else the shared cache's, else the provider's."""
        if not shared:
            local = self._parsed.get(self.cache_key)
            if local is not None and self.clock() - local[2] < self.local_ttl:
                return local[1]
        entry = self.cache.get(self.cache_key)
        if not isinstance(entry, dict) or "fp" not in entry:
            return self.refresh()
        return self._parse(entry)

    def refresh(self) -> KeySet:
        """Fetch the JWKS from the provider and share it through the cache."""
        response = self.http.get(self.jwks_uri)
        if response.status != 200:
            raise ProviderResponseError(f"The provider's JWKS answered HTTP {response.status} instead of 200.")
        fingerprint = hashlib.sha256(json.dumps(response.data, sort_keys=True).encode()).hexdigest()
        entry = {"fp": fingerprint, "jwks": response.data}
        keys = self._parse(entry)
        self.cache.set(self.cache_key, entry, self.ttl)
        return keys

    def _parse(self, entry: dict[str, Any]) -> KeySet:
        known = self._parsed.get(self.cache_key)
        keys = known[1] if known is not None and known[0] == entry["fp"] else KeySet(entry["jwks"])
        with self._lock:
            self._parsed[self.cache_key] = (entry["fp"], keys, self.clock())
        return keys
