"""Process-wide settings, read from ``settings.DUO_OIDC`` each time they are used.

Reading on access (django-cors-headers style) means ``override_settings`` just works and nothing is
read at import time. Per-provider configuration lives in the database (:mod:`.models`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Timeout in seconds for every call to a provider (Duo slows its answers down near its rate limit).
    "HTTP_TIMEOUT": 10.0,
    # Dotted path to a callable returning a requests.Session (inject proxies, CA bundles, fakes; the test
    # kit's fake is django_duo_oidc.testing.fakeop.session_factory).
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
    # The cache alias used for discovery, JWKS and shared state (login state, freshness marks, limits).
    # With several worker processes it must be a cache they share, such as Redis (check W004).
    "CACHE_ALIAS": "default",
    # Fernet keys (urlsafe base64, 32 bytes) for client secrets stored in the database.
    # The first encrypts; all decrypt, so a new key is added in front and old ones retired later.
    # Tokens kept at rest use keys derived from them, or from SECRET_KEY and SECRET_KEY_FALLBACKS when
    # this is empty (setting it for the first time ends existing sessions at their next check).
    "ENCRYPTION_KEYS": [],
    # Template of the login error page (context: status, message, error, provider, retry, home_url).
    "ERROR_TEMPLATE": "duo_oidc/error.html",
    # Freshness window: a session's grant is re-checked with the provider (introspection, refresh)
    # at most once per this many seconds, shared by all workers. 0 = on every request.
    "REVALIDATE_SECONDS": 60,
    # Refresh an access token this many seconds before it expires (at most half its lifetime).
    "REFRESH_MARGIN": 30,
    # When the provider cannot be reached for a due check: "deny" keeps scope-protected views closed
    # (503 page); "allow" uses the scopes last confirmed.
    "ON_PROVIDER_DOWN": "deny",
    # Seconds to wait before asking a provider again after it failed (spares a provider that is down).
    "PROVIDER_DOWN_BACKOFF": 5,
    # Scope policy for views you don't own, judged by the middleware on every request: a list of rules
    # such as [{"path": "/admin/", "scopes": ["admin.access"]}, {"url_name": "app:view", "scopes":
    # [...], "any_of": False, "max_age": None}]. Each rule has "scopes" and exactly one of "path" (a
    # path prefix, starting with /) or "url_name"; "any_of": True makes one of the scopes enough;
    # "max_age" wants a login at most that many seconds old. The admin's scope rules are added to these.
    # A malformed policy is check E009.
    "SCOPE_POLICY": [],
    # Templates of the 403 page (missing scopes; context: missing, granted, request_access_url) and of
    # the 503 page (provider down).
    "FORBIDDEN_TEMPLATE": "duo_oidc/forbidden.html",
    "UNAVAILABLE_TEMPLATE": "duo_oidc/unavailable.html",
    # realm of the WWW-Authenticate challenge of bearer-protected views (default: the request's host).
    "BEARER_REALM": None,
    # Fields of the RFC 9728 protected resource metadata (/.well-known/oauth-protected-resource) to set
    # or override: "resource" (default: this site's origin), "scopes_supported" (default: the scopes the
    # bearer-protected views require), "resource_name", "resource_documentation", ...
    "RESOURCE_METADATA": {},
    # Offer a "request access" link on the 403 page that re-authorizes with the missing scopes.
    "REQUEST_ACCESS": True,
    # Prefixes a provider's client_secret_env must start with: an administrator may name only these
    # environment variables, so a provider row cannot send DATABASE_PASSWORD to a token endpoint.
    # () allows none; ("",) allows any (not recommended).
    "SECRET_ENV_PREFIXES": ("DUO_", "OIDC_"),
    # Bearer tokens nothing local can verify (opaque tokens, JWTs of a provider in "introspection" mode)
    # cost a call to the provider the first time they are seen. Per provider, all workers together
    # (counted in the cache), at most BEARER_INTROSPECTION_BUDGET such calls (>= 0) per fixed window of
    # BEARER_INTROSPECTION_WINDOW seconds (>= 1); beyond it unseen tokens get 503 with Retry-After.
    "BEARER_INTROSPECTION_BUDGET": 100,
    "BEARER_INTROSPECTION_WINDOW": 60,
    # A bearer token whose introspection answer names a username but no sub (RFC 7662; django-oauth-
    # toolkit) is a user's token. With this on, it is linked to the one identity of its provider whose
    # last login said that preferred_username. Off by default: a username is not a stable identifier
    # (renamed or reused at the provider, it would hand one person's account to another); such a token
    # is then a user's token with an anonymous request.user.
    "LINK_TOKENS_BY_USERNAME": False,
    # OIDC Back-Channel Logout: a logout token older than this many seconds (by its iat, plus LEEWAY) is
    # refused. Each token's jti is remembered (single use) for this long plus twice LEEWAY, so the
    # replay check covers every token that can still be accepted (exp alone may be far off, or absent).
    # Providers post a logout token the moment they issue it.
    "BACKCHANNEL_LOGOUT_MAX_AGE": 120,
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

    @property
    def revalidate_seconds(self) -> float:
        return float(self._get("REVALIDATE_SECONDS"))

    @property
    def refresh_margin(self) -> float:
        return float(self._get("REFRESH_MARGIN"))

    @property
    def on_provider_down(self) -> str:
        return str(self._get("ON_PROVIDER_DOWN"))

    @property
    def provider_down_backoff(self) -> float:
        return float(self._get("PROVIDER_DOWN_BACKOFF"))

    @property
    def scope_policy(self) -> list[dict[str, Any]]:
        return list(self._get("SCOPE_POLICY") or [])

    @property
    def forbidden_template(self) -> str:
        return str(self._get("FORBIDDEN_TEMPLATE"))

    @property
    def unavailable_template(self) -> str:
        return str(self._get("UNAVAILABLE_TEMPLATE"))

    @property
    def request_access(self) -> bool:
        return bool(self._get("REQUEST_ACCESS"))

    @property
    def bearer_realm(self) -> str | None:
        value = self._get("BEARER_REALM")
        return str(value) if value else None

    @property
    def resource_metadata(self) -> dict[str, Any]:
        return dict(self._get("RESOURCE_METADATA") or {})

    @property
    def secret_env_prefixes(self) -> tuple[str, ...]:
        value = self._get("SECRET_ENV_PREFIXES")
        return (value,) if isinstance(value, str) else tuple(str(v) for v in value or ())

    @property
    def bearer_introspection_budget(self) -> int:
        return max(0, int(self._get("BEARER_INTROSPECTION_BUDGET")))

    @property
    def bearer_introspection_window(self) -> float:
        return max(1.0, float(self._get("BEARER_INTROSPECTION_WINDOW")))

    @property
    def link_tokens_by_username(self) -> bool:
        return bool(self._get("LINK_TOKENS_BY_USERNAME"))

    @property
    def backchannel_logout_max_age(self) -> int:
        return max(1, int(self._get("BACKCHANNEL_LOGOUT_MAX_AGE")))

    def unknown_keys(self) -> list[str]:
        return sorted(set(getattr(settings, "DUO_OIDC", {})) - set(DEFAULTS))


conf = Settings()
