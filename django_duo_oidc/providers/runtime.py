"""A provider row joined with what the protocol core needs: HTTP client, cached metadata and keys.

Over 300 lines on purpose: :class:`ProviderRuntime` is every protocol operation of one provider row,
so that its cache keys, its down flag, its endpoint choices (published, set by hand, another row's
introspection) and its credentials are decided in one place."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from django.utils.module_loading import import_string
from django.views.decorators.debug import sensitive_variables

from ..conf import conf
from ..core import flow
from ..core import tokens as tokens_mod
from ..core.discovery import (
    SOURCE_KEY,
    SOURCE_NONE,
    MetadataNotPublished,
    ProviderMetadata,
    fetch_metadata,
    parse_metadata,
)
from ..core.errors import CacheUnavailable, ConfigurationError, DiscoveryError, TokenError
from ..core.http import HttpClient
from ..core.introspection import TokenInfo, introspect
from ..core.jwks import JWKSStore
from ..core.scopes import parse_scopes
from ..models import Provider
from ..state.cache import SealedView, SharedCache, shared_cache

__all__ = ["NoBrowserLogin", "ProviderRuntime", "get_login_provider", "get_provider", "http_client"]

logger = logging.getLogger("django_duo_oidc")


@functools.cache
def _http_client(factory_path: str, timeout: float) -> HttpClient:
    factory = import_string(factory_path)
    session = factory()
    if not isinstance(session, requests.Session):
        raise TypeError(f'DUO_OIDC["HTTP_SESSION_FACTORY"] must return a requests.Session, not {type(session)!r}')
    return HttpClient(session, timeout=timeout)


def http_client() -> HttpClient:
    """Return the process's HTTP client (one pooled session per factory and timeout)."""
    return _http_client(conf.http_session_factory, conf.http_timeout)


def get_provider(slug: str | None = None) -> Provider:
    """Return the enabled provider ``slug``, or the default one; raise ``Provider.DoesNotExist``."""
    enabled = Provider.objects.filter(enabled=True)
    if slug:
        return enabled.get(slug=slug)
    default = enabled.filter(is_default=True).first()
    if default is not None:
        return default
    # With a single enabled provider there is nothing to choose.
    only = list(enabled[:2])
    if len(only) == 1:
        return only[0]
    raise Provider.DoesNotExist("No default provider.")


class NoBrowserLogin(Provider.DoesNotExist):
    """The provider named for a browser login only issues or validates tokens (``browser_login`` off)."""


def get_login_provider(slug: str | None = None) -> Provider:
    """Return the enabled provider ``slug`` offered for browser logins, or the default one among
    those (the only one, when there is a single one): a provider that only issues or validates tokens
    (``browser_login`` off, e.g. Duo's client-credentials applications) is never chosen.

    :raises NoBrowserLogin: ``slug`` names such a provider (the message says so).
    :raises Provider.DoesNotExist: no such provider, or no default among several.
    """
    enabled = Provider.objects.filter(enabled=True)
    if slug:
        provider = enabled.filter(slug=slug).first()
        if provider is None:
            raise Provider.DoesNotExist("No such provider.")
        if not provider.browser_login:
            raise NoBrowserLogin(
                f"The identity provider {provider.name} only issues or validates access tokens: "
                "it has no browser login."
            )
        return provider
    browsers = enabled.filter(browser_login=True)
    default = browsers.filter(is_default=True).first()
    if default is not None:
        return default
    only = list(browsers[:2])
    if len(only) == 1:
        return only[0]
    raise Provider.DoesNotExist("No default provider.")


class ProviderRuntime:
    """Protocol operations for one provider, with discovery and JWKS shared through the cache."""

    def __init__(self, provider: Provider, http: HttpClient | None = None) -> None:
        self.provider = provider
        self.http = http or http_client()
        # Every cache access fails as CacheUnavailable (a ProviderUnavailable), never as a backend error.
        self.cache: SharedCache = shared_cache()
        # What must be trusted when read back: discovery (where the client secret goes), the JWKS (which
        # keys sign valid tokens), client tokens. Sealed and bound to key and expiry (state.cache.SealedView).
        self.trusted_cache = SealedView(self.cache)
        digest = hashlib.sha256(provider.issuer.encode()).hexdigest()[:32]
        self._metadata_key = f"duo_oidc:discovery:{digest}"
        self._down_key = f"duo_oidc:down:{provider.slug}"

    # Provider-down flag (shared by all workers) ------------------------------------------------

    def recently_down(self) -> bool:
        """True when a call to this provider failed less than ``PROVIDER_DOWN_BACKOFF`` seconds ago.

        :raises CacheUnavailable: the flag cannot be read. Callers treat that as "down" too: without
            the cache there is no single-flight either, so asking the provider would mean one call per
            request and worker (and a rotating refresh token spent twice).
        """
        return bool(self.cache.get(self._down_key))

    def mark_down(self) -> None:
        """Leave the provider alone for ``PROVIDER_DOWN_BACKOFF`` seconds. Never raises: it runs in
        error handlers, and a cache that cannot store the flag is already logged by the cache layer.

        Called only after a check of a grant already proven failed (a session's freshness check, a
        bearer token's revalidation), never for a token seen for the first time: nobody without a
        valid grant can put every session's scope views on 503.
        """
        try:
            self.cache.set(self._down_key, 1, conf.provider_down_backoff)
        except CacheUnavailable:
            logger.warning("Could not note that provider %s is down: the shared cache failed", self.provider.slug)

    # Discovery and keys ------------------------------------------------------------------------

    @functools.cached_property
    def metadata(self) -> ProviderMetadata:
        """The provider's metadata (discovery, else RFC 8414), with the endpoints set by hand on the row."""
        # Endpoint names to URLs (str fields of ProviderMetadata); mypy checks ** against every field.
        overrides: dict[str, Any] = self.provider.endpoint_overrides()
        return dataclasses.replace(self._published_metadata(bool(overrides)), **overrides)

    def _published_metadata(self, has_overrides: bool) -> ProviderMetadata:
        doc = self.trusted_cache.get(self._metadata_key)
        if isinstance(doc, dict):
            try:
                return parse_metadata(doc, self.provider.issuer)
            except DiscoveryError:
                pass  # stale entry for an issuer that changed: fetch again
        try:
            metadata = fetch_metadata(self.http, self.provider.issuer)
        except MetadataNotPublished:
            if not has_overrides:
                raise
            # Nothing published (both documents 404/410), everything set by hand: remembered as
            # "nothing" (an RFC 8414 document with no endpoint of its own) so the issuer is not asked
            # again on every request. Only then: a refused or broken document (a gateway's 403, another
            # issuer's document) remembered as "nothing" would hide the published endpoints for
            # DISCOVERY_TTL (no login, no keys, and every renewal ending its session).
            empty = {"issuer": self.provider.issuer, "token_endpoint": "", SOURCE_KEY: SOURCE_NONE}
            self.trusted_cache.set(self._metadata_key, empty, conf.discovery_ttl)
            return parse_metadata(empty, self.provider.issuer)
        self.trusted_cache.set(self._metadata_key, metadata.to_dict(), conf.discovery_ttl)
        return metadata

    def refresh_metadata(self) -> ProviderMetadata:
        """Drop the cached discovery document and fetch it again."""
        self.cache.delete(self._metadata_key)
        self.__dict__.pop("metadata", None)
        return self.metadata

    def endpoint(self, name: str) -> str:
        """The metadata's ``name`` endpoint (set by hand or published).

        :raises ConfigurationError: the provider has none: it publishes no such endpoint (RFC 8414
            metadata of a server without browser login or keys) and none is set on the row.
        """
        url = getattr(self.metadata, name)
        if not url:
            exc = ConfigurationError(
                f"The provider {self.provider.slug} has no {name.replace('_', ' ')}: it publishes none; set "
                "it on the provider if the server has one."
            )
            if name == "authorization_endpoint":
                exc.status_code = 404  # a token-only server: there is no login page to go to
                exc.error = "not_found"
            raise exc
        return str(url)

    @functools.cached_property
    def introspector(self) -> ProviderRuntime:
        """Whose introspection endpoint and client credentials introspect this provider's tokens: this
        provider's own, or those of the row it names in ``introspect_with`` (Duo's Global Token
        Introspection: one authorization server answers for another's tokens). One hop: that row's
        own ``introspect_with`` is not followed.

        :raises ConfigurationError: the row named is this one or is disabled (fail closed: the
            tokens are not judged by a server the administrator turned off).
        """
        other = self.provider.introspect_with
        if other is None:
            return self
        if other.pk == self.provider.pk or not other.enabled:
            raise ConfigurationError(
                f"The provider {self.provider.slug} has its tokens introspected by {other.slug}, which is itself "
                "or is disabled."
            )
        return ProviderRuntime(other, self.http)

    @property
    def introspection_endpoint(self) -> str | None:
        """The endpoint that introspects this provider's tokens (see :attr:`introspector`), if any."""
        return self.introspector.metadata.introspection_endpoint

    @functools.cached_property
    def keys(self) -> JWKSStore:
        return JWKSStore(
            self.http,
            self.endpoint("jwks_uri"),
            self.trusted_cache,
            ttl=conf.jwks_ttl,
            refetch_interval=conf.jwks_refetch_interval,
        )

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Algorithms allowed for this provider's tokens: configured, and advertised when the provider says."""
        configured = self.provider.algorithm_list
        advertised = self.metadata.id_token_signing_alg_values_supported
        return tuple(a for a in configured if a in advertised) or configured

    # Flow ----------------------------------------------------------------------------------------

    def authorization_url(self, params: Mapping[str, str | Sequence[str]]) -> str:
        return flow.authorization_url(self.endpoint("authorization_endpoint"), params)

    # Methods that hold a code, a token or the client secret hide their locals (and those of the core
    # functions they call) from Django's error reports.

    @sensitive_variables()
    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> flow.TokenSet:
        return flow.exchange_code(
            self.http,
            self.endpoint("token_endpoint"),
            self.provider.credentials(),
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
            # RFC 8707 section 2.2 lets the client name the resource here too, and Duo's own demo does;
            # not while the login reads userinfo (Provider.code_exchange_resources).
            resource=self.provider.code_exchange_resources,
        )

    @sensitive_variables()
    def refresh(self, refresh_token: str) -> flow.TokenSet:
        return flow.refresh_tokens(
            self.http,
            self.endpoint("token_endpoint"),
            self.provider.credentials(),
            refresh_token,
            resource=self.provider.resource_list,
        )

    @sensitive_variables()
    def revoke(self, token: str, *, token_type_hint: str) -> bool:
        """Revoke ``token`` at the revocation endpoint (RFC 7009); False when there is none.

        :raises DuoOIDCError: the endpoint refused or could not be reached.
        """
        endpoint = self.metadata.revocation_endpoint
        if not endpoint:
            return False
        flow.revoke_token(self.http, endpoint, self.provider.credentials(), token, token_type_hint=token_type_hint)
        return True

    @sensitive_variables()
    def validate_id_token(
        self,
        id_token: str,
        *,
        nonce: str | None,
        max_age: int | None = None,
        access_token: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        return tokens_mod.validate_id_token(
            id_token,
            key_for=self.keys.key_for,
            issuer=self.provider.issuer,
            client_id=self.provider.client_id,
            algorithms=self.algorithms,
            now=time.time() if now is None else now,
            leeway=conf.leeway,
            nonce=nonce,
            max_age=max_age,
            access_token=access_token,
        )

    @sensitive_variables()
    def granted_scopes(self, tokens: flow.TokenSet) -> frozenset[str]:
        """Return the scopes the provider granted: never the scopes we asked for.

        RFC 6749 section 5.1 lets the token response omit ``scope`` when it equals the request; we
        do not assume that (a Duo policy may down-scope silently, DUO.md 1.11). Order of proof: the
        response's ``scope``, else the ``scope`` claim of a JWT access token we can verify, else
        only ``openid`` (the ID token proves that much).
        """
        if tokens.scope is not None:
            return parse_scopes(tokens.scope)
        try:
            claims = tokens_mod.validate_access_token(
                tokens.access_token,
                key_for=self.keys.key_for,
                issuer=self.provider.issuer,
                audiences=[self.provider.client_id],
                algorithms=self.algorithms,
                now=time.time(),
                leeway=conf.leeway,
            )
        except TokenError:
            return frozenset({"openid"})
        return parse_scopes(claims.get("scope")) | {"openid"}

    @sensitive_variables()
    def introspect(self, token: str, *, token_type_hint: str = "access_token") -> TokenInfo | None:
        """Ask the provider (or its :attr:`introspector`) about ``token``; None when introspection is
        off or there is no introspection endpoint."""
        if not self.provider.introspect:
            return None
        introspector = self.introspector
        endpoint = introspector.metadata.introspection_endpoint
        if not endpoint:
            return None
        return introspect(
            self.http, endpoint, introspector.provider.credentials(), token, token_type_hint=token_type_hint
        )

    @sensitive_variables()
    def userinfo(self, access_token: str) -> dict[str, Any] | None:
        endpoint = self.metadata.userinfo_endpoint
        if not (self.provider.use_userinfo and endpoint):
            return None
        return flow.fetch_userinfo(self.http, endpoint, access_token)
