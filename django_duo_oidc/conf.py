"""Process-wide settings, read from ``settings.DUO_OIDC`` each time they are used.

Reading on access (django-cors-headers style) means ``override_settings`` just works and nothing is
read at import time. Per-provider configuration lives in the database (:mod:`.models`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Timeout in seconds for every call to a provider (DUO.md 1.14: Duo delays near its rate limit).
    "HTTP_TIMEOUT": 10.0,
    # Dotted path to a callable returning a requests.Session (inject proxies, CA bundles, fakes).
    "HTTP_SESSION_FACTORY": "requests.Session",
    # Clock skew allowed on exp/iat/nbf/auth_time, in seconds.
    "LEEWAY": 60,
    # How long discovery documents and JWKS are kept in the cache, in seconds.
    "DISCOVERY_TTL": 3600,
    "JWKS_TTL": 3600,
    # Minimum seconds between two JWKS refetches caused by an unknown kid (shared by all workers).
    "JWKS_REFETCH_INTERVAL": 60,
    # How long a started login (state, nonce, PKCE verifier) may take before it is refused.
    "STATE_TTL": 600,
    # The cache alias used for discovery, JWKS and shared state.
    "CACHE_ALIAS": "default",
    # Fernet keys (urlsafe base64, 32 bytes) for client secrets stored in the database.
    # The first encrypts; all decrypt, so a new key is added in front and old ones retired later.
    "ENCRYPTION_KEYS": [],
    # Template of the login error page.
    "ERROR_TEMPLATE": "duo_oidc/error.html",
}


class Settings:
    """Typed access to ``settings.DUO_OIDC`` with defaults."""

    def _get(self, name: str) -> Any:
        return getattr(settings, "DUO_OIDC", {}).get(name, DEFAULTS[name])

    @property
    def http_timeout(self) -> float:
        return float(self._get("HTTP_TIMEOUT"))

    @property
    def http_session_factory(self) -> str:
        return str(self._get("HTTP_SESSION_FACTORY"))

    @property
    def leeway(self) -> int:
        return int(self._get("LEEWAY"))

    @property
    def discovery_ttl(self) -> int:
        return int(self._get("DISCOVERY_TTL"))

    @property
    def jwks_ttl(self) -> int:
        return int(self._get("JWKS_TTL"))

    @property
    def jwks_refetch_interval(self) -> int:
        return int(self._get("JWKS_REFETCH_INTERVAL"))

    @property
    def state_ttl(self) -> int:
        return int(self._get("STATE_TTL"))

    @property
    def cache_alias(self) -> str:
        return str(self._get("CACHE_ALIAS"))

    @property
    def encryption_keys(self) -> list[str]:
        keys = self._get("ENCRYPTION_KEYS")
        return [keys] if isinstance(keys, str) else list(keys or [])

    @property
    def error_template(self) -> str:
        return str(self._get("ERROR_TEMPLATE"))

    def unknown_keys(self) -> list[str]:
        return sorted(set(getattr(settings, "DUO_OIDC", {})) - set(DEFAULTS))


conf = Settings()
