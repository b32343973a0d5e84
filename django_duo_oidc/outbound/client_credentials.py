"""Calling other Duo-protected APIs as this server: OAuth 2.0 client credentials (RFC 6749 section 4.4).

:func:`client_token` returns a token for a provider, scopes and (optionally) an RFC 8707 resource,
from Django's cache while it has more than ``REFRESH_MARGIN`` seconds to live, shared by every worker;
when it must be renewed, one worker asks the provider and the others wait for its answer.
:class:`ClientCredentialsAuth` attaches it to ``requests`` calls and, on a 401, drops it and retries
once with a new one (the provider may have revoked it, or rotated the client secret). The retry goes
only to the origin the token was attached for and never follows a redirect: requests strips the
token on a cross-origin redirect, and the retry must not put it back.

The cache then holds access tokens, sealed and bound to their key (``ProviderRuntime.trusted_cache``); still, use a
cache only this site can read and write (as for sessions).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from django.views.decorators.debug import sensitive_variables

from ..conf import conf
from ..core import flow
from ..core.lifetimes import renewal_margin
from ..core.scopes import format_scopes, parse_scopes
from ..models import Provider
from ..providers.runtime import ProviderRuntime, get_provider
from ..state.singleflight import forget_result, shared_result, single_flight

logger = logging.getLogger("django_duo_oidc")

__all__ = ["ClientCredentialsAuth", "ClientToken", "client_token", "forget_client_token"]

# Lifetime assumed when the provider does not say (RFC 6749 makes expires_in optional): short, so a
# wrong guess costs a renewal, not a run of 401s.
DEFAULT_LIFETIME = 300

#: The log line of a token obtained from the provider (``manage.py duo_oidc_call`` keeps it off the
#: terminal it prints its own line on).
TOKEN_OBTAINED_LOG = "Obtained a client-credentials token from provider %s (scope %r, %s s)"


@dataclass(frozen=True)
class ClientToken:
    """A client-credentials access token. Its ``repr`` never shows the token."""

    access_token: str = field(repr=False)
    expires_at: float
    scope: str | None
    provider: str
    #: True when it came from the cache (another call, perhaps another worker, fetched it).
    from_cache: bool = field(default=False, compare=False)

    @property
    def authorization(self) -> str:
        return f"Bearer {self.access_token}"


def _runtime(provider: str | Provider | None) -> ProviderRuntime:
    return ProviderRuntime(provider if isinstance(provider, Provider) else get_provider(provider))


def _scope(scope: str | Iterable[str]) -> str:
    """One spelling per set of scopes: order and repetition do not make another token."""
    return format_scopes(parse_scopes(scope if isinstance(scope, str) else " ".join(scope)))


def _key(runtime: ProviderRuntime, scope: str, resource: str | None) -> str:
    p = runtime.provider
    material = "\0".join((p.issuer, p.client_id, scope, resource or ""))
    return "duo_oidc:client_token:" + hashlib.sha256(material.encode()).hexdigest()


@sensitive_variables()
def client_token(
    scope: str | Iterable[str] = "",
    *,
    provider: str | Provider | None = None,
    resource: str | None = None,
) -> ClientToken:
    """Return a client-credentials token for ``scope`` (space-separated or an iterable).

    ``provider`` is a slug or a :class:`Provider` (default: the default provider).

    :raises DuoOIDCError: the provider refused or could not be reached (``TokenEndpointError``,
        ``ProviderUnavailable``, ...); nothing is cached then.
    """
    runtime = _runtime(provider)
    scope_str = _scope(scope)
    key = _key(runtime, scope_str, resource)
    cached = _cached_entry(runtime, key)
    if cached is not None and time.time() < cached["renew_at"]:
        return _token(cached, runtime, from_cache=True)

    def fetch() -> dict[str, Any]:
        tokens = flow.client_credentials_grant(
            runtime.http,
            runtime.endpoint("token_endpoint"),
            runtime.provider.credentials(),
            scope=scope_str or None,
            resource=resource,
        )
        lifetime = tokens.expires_in or DEFAULT_LIFETIME
        now = time.time()
        margin = renewal_margin(conf.refresh_margin, lifetime)
        entry = {
            "access_token": tokens.access_token,
            "expires_at": now + lifetime,
            "renew_at": now + lifetime - margin,
            "scope": tokens.scope,
        }
        runtime.trusted_cache.set(key, entry, lifetime - margin)
        logger.info(
            TOKEN_OBTAINED_LOG,
            runtime.provider.slug,
            scope_str,
            lifetime,
        )
        return entry

    # Workers that find the token due at once wait for the one that asks (a short-lived result key).
    entry = single_flight(runtime.cache, key + ":fetch", fetch, ttl=2, lock_timeout=conf.http_timeout + 5)
    if time.time() >= entry["renew_at"] or (cached is not None and entry["access_token"] == cached["access_token"]):
        entry = fetch()  # an earlier flight's answer, already due: not the renewal we came for
    return _token(entry, runtime, from_cache=False)


def _cached_entry(runtime: ProviderRuntime, key: str) -> dict[str, Any] | None:
    """The cached token entry under ``key``; None when there is none or it does not open (then renewed)."""
    entry = runtime.trusted_cache.get(key)
    return entry if isinstance(entry, dict) and isinstance(entry.get("access_token"), str) else None


def _token(entry: dict[str, Any], runtime: ProviderRuntime, *, from_cache: bool) -> ClientToken:
    return ClientToken(
        access_token=entry["access_token"],
        expires_at=entry["expires_at"],
        scope=entry["scope"],
        provider=runtime.provider.slug,
        from_cache=from_cache,
    )


@sensitive_variables()
def forget_client_token(
    rejected: str,
    scope: str | Iterable[str] = "",
    *,
    provider: str | Provider | None = None,
    resource: str | None = None,
) -> None:
    """Drop the cached token if it is still ``rejected`` (a newer one fetched meanwhile is kept)."""
    runtime = _runtime(provider)
    key = _key(runtime, _scope(scope), resource)
    cached = _cached_entry(runtime, key)
    if cached is not None and cached["access_token"] == rejected:
        runtime.cache.delete(key)
    shared = shared_result(runtime.cache, key + ":fetch")
    if isinstance(shared, dict) and shared.get("access_token") == rejected:
        forget_result(runtime.cache, key + ":fetch")


class ClientCredentialsAuth(requests.auth.AuthBase):
    """``requests`` authentication with a cached client-credentials token; one retry on a 401.

    >>> requests.get(url, auth=ClientCredentialsAuth("crm.contacts.read", resource="urn:crm"))
    """

    def __init__(
        self, scope: str | Iterable[str] = "", *, provider: str | None = None, resource: str | None = None
    ) -> None:
        self.scope = scope if isinstance(scope, str) else " ".join(scope)
        self.provider = provider
        self.resource = resource

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = client_token(self.scope, provider=self.provider, resource=self.resource)
        request.headers["Authorization"] = token.authorization
        # Mark this very request with the origin the token was attached for. requests follows a
        # redirect with a *copy* (PreparedRequest.copy keeps the hooks but not this attribute), so the
        # 401 hook can tell the original from a redirected request and never re-attaches a token there.
        _mark(request, _origin(request.url))
        request.register_hook("response", self._retry_on_401)
        return request

    def _retry_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        sent = response.request
        if response.status_code != 401 or getattr(sent, "_duo_oidc_retried", False):
            return response
        origin = getattr(sent, "_duo_oidc_origin", None)
        if origin is None or origin != _origin(sent.url):
            # A redirected request (requests stripped the token on a cross-origin redirect, and a
            # same-origin one is still not the request the token was attached for): never retry.
            return response
        rejected = str(sent.headers.get("Authorization", ""))[len("Bearer ") :]
        forget_client_token(rejected, self.scope, provider=self.provider, resource=self.resource)
        token = client_token(self.scope, provider=self.provider, resource=self.resource)
        if getattr(sent, "_body_position", None) is not None:
            requests.utils.rewind_body(sent)  # a file body must be read again from the start
        elif sent.body is not None and not isinstance(sent.body, str | bytes):
            return response  # a generator body cannot be sent twice
        response.content  # noqa: B018 - read and release the connection of the refused answer
        response.close()
        retry = sent.copy()
        retry.headers["Authorization"] = token.authorization
        _mark(retry, origin, retried=True)
        logger.info(
            "Retrying %s %s once with a new client-credentials token after a 401", sent.method, _url_for_log(sent.url)
        )
        new_response = response.connection.send(retry, **kwargs)
        new_response.history.append(response)
        new_response.request = retry
        return new_response


def _mark(
    request: requests.PreparedRequest, origin: tuple[str, str, int | None] | None, *, retried: bool = False
) -> None:
    """Mark ``request`` with the origin its token was attached for (and as the one retry): attributes of
    our own, which ``PreparedRequest.copy`` does not carry to a redirected request."""
    request._duo_oidc_origin = origin  # type: ignore[attr-defined]  # ours: requests' type does not declare it
    if retried:
        request._duo_oidc_retried = True  # type: ignore[attr-defined]  # as above


def _origin(url: str | None) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of ``url``, the default port made explicit (RFC 6454 section 4)."""
    if not url:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), port or {"https": 443, "http": 80}.get(scheme)


def _url_for_log(url: str | None) -> str:
    """The URL without its query string, which may hold values not meant for logs."""
    return (url or "").split("?", 1)[0]
