"""Keep a browser session's grant current: refresh expired tokens, ask the provider whether the grant
is still active, at most once per freshness window for all workers (``REVALIDATE_SECONDS``).

Within the window nothing happens beyond reading the already-loaded session and this process's list of
enabled providers (read at most every 5 s per process, shared with the bearer registry), so a scope check
costs no query and no provider call. On every request, a session whose provider is no longer in that
list (disabled, deleted, or its slug changed) ends (:func:`end_if_provider_gone`): within 5 s of the
change, as that provider's bearer tokens are refused. When the window has passed (or the access token is
about to expire):

- the access token is renewed with the refresh token, single-flight through the cache, so concurrent
  workers never spend the same refresh token twice; scopes are re-read from the new token;
- the introspection endpoint (RFC 7662) is asked, single-flight and cached for the window; ``active:
  false`` ends the session, a narrower ``scope`` is enforced from this request on;
- no refresh token, a refused refresh, a token about another user: the session ends cleanly;
- the provider is down: the request is marked ``stale`` (see ``ON_PROVIDER_DOWN``) and the provider
  is left alone for ``PROVIDER_DOWN_BACKOFF`` seconds.
- the shared cache is down: the request is marked ``stale`` too, and the provider is not asked (without
  the cache there is no single-flight, so every worker would call it, and spend a refresh token twice);
- a stored token that no longer decrypts (its key retired): the session ends cleanly.

Tokens are read and written through :mod:`.session` only (sealed at rest). The renewal itself
(:func:`refresh`, :func:`refresh_due`) and :func:`end_session` live in
:mod:`django_duo_oidc.login.renewal`, shared with ``request.oidc.access_token()``; they are
importable from here as before.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from ..conf import conf
from ..core.errors import (
    CacheUnavailable,
    DuoOIDCError,
    ProviderResponseError,
    ProviderUnavailable,
    SecretUnavailable,
)
from ..core.scopes import format_scopes, parse_scopes
from ..login import session
from ..login.renewal import PROVIDER_GONE, end_session, refresh, refresh_due
from ..models import Provider
from ..providers.enabled import enabled_providers
from ..providers.runtime import ProviderRuntime
from ..request import context_of
from ..state.singleflight import single_flight

logger = logging.getLogger("django_duo_oidc")


def is_due(data: dict[str, Any], now: float) -> bool:
    """True when the stored grant must be checked with the provider before it is trusted again."""
    return now - float(data.get("checked_at") or 0) >= conf.revalidate_seconds or refresh_due(data, now)


def end_if_provider_gone(request: HttpRequest, data: dict[str, Any]) -> bool:
    """End the session when the provider it signed in through is no longer enabled: disabled, deleted,
    or its slug changed (the session names its provider by slug). Runs on every request of a session
    with a stored login (``data``, from :func:`~django_duo_oidc.login.session.login_data`).

    Judged on this process's list of enabled providers
    (:func:`~django_duo_oidc.providers.enabled.enabled_providers`, the read the bearer registry uses):
    no query while it is younger than ``ENABLED_TTL`` (5 s), one when it is due. A list read before this
    site last confirmed the provider enabled (the login, or the last revalidation: the session's
    ``checked_at``) does not end the session: the provider was created or re-enabled since, and the
    next read decides.

    Returns True when the request must not go on to revalidate the grant: the session was ended
    (logged, ``session_ended`` sent, the request goes on anonymous), or the list could not be read (the
    database failed: the request is marked ``stale``, as when the provider is down, so
    ``ON_PROVIDER_DOWN`` decides: a 503 page under ``"deny"``; the next request reads again).
    """
    try:
        read = enabled_providers()
    except DatabaseError as exc:
        _database_failed(request, exc)
        return True
    slug = data.get("provider")
    if isinstance(slug, str) and slug in read.slugs:
        return False
    if read.read_at <= float(data.get("checked_at") or 0):
        return False
    end_session(request, None, PROVIDER_GONE)
    return True


def _database_failed(request: HttpRequest, exc: DatabaseError) -> None:
    """The session's provider could not be read: neither trusted nor ended, but stale (a provider outage:
    ``ON_PROVIDER_DOWN`` decides). The driver's message is not logged: it may name hosts and users."""
    logger.warning(
        "Could not check that the provider of a session is still enabled (the database failed: %s)",
        type(exc).__name__,
    )
    context_of(request).stale = True


@sensitive_variables()  # tokens; error reports show none of this function's locals, nor those it calls
def ensure_fresh(request: HttpRequest) -> None:
    """Revalidate the session's grant if it is due. Returns with the session updated, ended, or marked stale
    (also when the database cannot read the session's provider row)."""
    data = session.login_data(request)
    if data is None:
        return
    now = time.time()
    if not is_due(data, now):
        return
    try:
        provider = Provider.objects.filter(slug=data.get("provider"), enabled=True).first()
    except DatabaseError as exc:
        _database_failed(request, exc)  # as when the list of enabled providers cannot be read
        return
    if provider is None:
        end_session(request, None, PROVIDER_GONE)
        return
    runtime = ProviderRuntime(provider)
    try:
        if runtime.recently_down():
            mark_stale(request, provider, "the identity provider failed moments ago")
            return
    except CacheUnavailable as exc:
        # Without the cache there is no single-flight: asking the provider now would mean one call per
        # request and worker, and a rotating refresh token spent twice. Stale, not trusted, not ended.
        mark_stale(request, provider, exc.description)
        return
    try:
        data = dict(data)
        if refresh_due(data, now):
            renewed = refresh(runtime, data)
            tokens = {"access_token": renewed.pop("access_token"), "refresh_token": renewed.pop("refresh_token")}
            data = session.with_tokens({**data, **renewed}, **tokens)
            # Kept at once, whatever the check below says: a rotated refresh token is already spent.
            session.save_login(request, data)
        info = introspect(runtime, *introspected_token(provider, data))
        if info is not None:
            if not info["active"]:
                end_session(request, provider, "the provider says the grant is no longer active")
                return
            if info.get("sub") not in (None, data["sub"]):
                end_session(request, provider, "the provider says the token belongs to another user")
                return
            if info.get("scope") is not None:
                data["scopes"] = format_scopes(parse_scopes(info["scope"]))
    except (CacheUnavailable, SecretUnavailable) as exc:
        # The provider is not at fault (no down flag), nor is the user's grant: this site cannot use its
        # cache, or its own client secret (a variable unset by a deploy). Stale, not trusted, not ended.
        mark_stale(request, provider, exc.description)
        return
    except (ProviderUnavailable, ProviderResponseError) as exc:
        runtime.mark_down()  # never raises, even with the cache failing too
        mark_stale(request, provider, exc.description)
        return
    except DuoOIDCError as exc:
        end_session(request, provider, exc.description)
        return
    data["checked_at"] = now
    session.save_login(request, data)


@sensitive_variables()
def introspected_token(provider: Provider, data: dict[str, Any]) -> tuple[str, str]:
    """The token whose state says whether the grant is alive, and its RFC 7662 ``token_type_hint``: the
    access token, except for a provider row with RFC 8707 resource indicators, whose access tokens are
    meant for another API (providers refuse to introspect them for this client: oidc-provider answers
    ``unsupported_token_type``); then the refresh token (RFC 7662 section 2.1 introspects any token of
    the grant), when there is one."""
    refresh_token = session.refresh_token(data) if provider.resource_list else None
    if refresh_token:
        return refresh_token, "refresh_token"
    return session.access_token(data), "access_token"


@sensitive_variables()
def introspect(runtime: ProviderRuntime, token: str, token_type_hint: str = "access_token") -> dict[str, Any] | None:
    """Return the provider's view of ``token``, shared by all workers for one window."""
    key = "duo_oidc:introspection:" + hashlib.sha256(token.encode()).hexdigest()

    def ask() -> dict[str, Any] | None:
        info = runtime.introspect(token, token_type_hint=token_type_hint)
        if info is None:
            return None
        return {"active": info.active, "scope": info.scope, "sub": info.sub}

    ttl = max(conf.revalidate_seconds, 0)
    return single_flight(runtime.cache, key, ask, ttl=ttl, lock_timeout=conf.http_timeout + 5)


def mark_stale(request: HttpRequest, provider: Provider, reason: str) -> None:
    logger.warning("Could not revalidate a session of provider %s: %s", provider.slug, reason)
    context_of(request).stale = True
