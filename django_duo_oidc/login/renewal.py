"""A session's access token, renewed when due: what ``request.oidc.access_token()`` hands out to code
that calls other APIs for the signed-in user, and the renewal the freshness check uses too.

It lives in :mod:`django_duo_oidc.login` (below :mod:`django_duo_oidc.freshness`, which imports it) so
that the session's context can renew its own token without reaching up a layer.

:func:`current_access_token` returns the stored access token while it has more than
``REFRESH_MARGIN`` to live; when it is due, or when ``force`` (the API it was sent to answered 401),
it is renewed with the refresh token, single-flight through the shared cache (:func:`refresh`): every
worker that finds the same session due at once makes one provider call between them, so a rotating
refresh token is never spent twice. Then:

- renewed: the new tokens are sealed into the session (they never leave the server);
- refused (``invalid_grant``, any 4xx, no refresh token, tokens that no longer decrypt, the provider
  disabled): the session ends and :class:`~django_duo_oidc.core.errors.ReauthenticationRequired` is
  raised; the middleware answers it with a redirect to login (:func:`login_again`);
- the provider is down (or was moments ago, or the cache is): a token that has not expired yet is
  handed out as it is (it is still valid for its API), else
  :class:`~django_duo_oidc.core.errors.ProviderUnavailable` is raised (a 503 page).

A login whose code exchange did not name the provider's RFC 8707 resource indicators (it reads
userinfo, which refuses a token for another API) is renewed before its token is first handed out
(``session.RENEW_BEFORE_USE``): the provider's own token never goes to the API.

A forced renewal of a token issued less than :data:`MIN_FORCED_RENEWAL_AGE` seconds ago is not done
(the same token is returned): an API that refuses a token that fresh is misconfigured (its audience,
say), and renewing on each of its 401s would turn every call into a provider call.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, NoReturn
from urllib.parse import urlencode

from django.contrib import auth
from django.db import Error as DBError
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables

from .. import signals
from ..conf import conf
from ..core.errors import (
    CacheUnavailable,
    DuoOIDCError,
    InvalidClaim,
    ProviderResponseError,
    ProviderUnavailable,
    ReauthenticationRequired,
    SecretUnavailable,
    TokenExpired,
    database_outage,
)
from ..core.lifetimes import renewal_margin
from ..core.scopes import format_scopes
from ..models import Provider
from ..providers.runtime import ProviderRuntime
from ..state.singleflight import forget_result, shared_result, single_flight
from . import session

__all__ = [
    "MIN_FORCED_RENEWAL_AGE",
    "PROVIDER_GONE",
    "current_access_token",
    "end_session",
    "login_again",
    "refresh",
    "refresh_due",
]

logger = logging.getLogger("django_duo_oidc")

#: A token younger than this (seconds) is not renewed on a 401: see the module docstring.
MIN_FORCED_RENEWAL_AGE = 10
#: The reason logged and sent with ``session_ended`` when a session's provider is no longer an enabled row.
PROVIDER_GONE = "the identity provider was disabled, deleted or renamed"


def refresh_due(data: dict[str, Any], now: float) -> bool:
    """True when the stored access token expires within ``REFRESH_MARGIN`` (at most half its lifetime,
    as for the outbound client's tokens; sessions stored without ``issued_at`` use the whole margin)."""
    expires_at = data.get("expires_at")
    if not expires_at:
        return False
    issued_at = data.get("issued_at")
    lifetime = float(expires_at) - float(issued_at) if issued_at else None
    return now >= float(expires_at) - renewal_margin(conf.refresh_margin, lifetime)


@sensitive_variables()
def refresh(runtime: ProviderRuntime, data: dict[str, Any], *, rejected: str | None = None) -> dict[str, Any]:
    """Renew the access token; every worker that asks at once gets the one result.

    ``rejected``: an access token an API refused. A shared result still holding it (a renewal moments
    ago, with a refresh token that does not rotate) is dropped and the provider asked again.
    """
    refresh_token = session.refresh_token(data)
    if not refresh_token:
        raise TokenExpired("The login has expired and the provider gave no refresh token to renew it.")
    key = "duo_oidc:refresh:" + hashlib.sha256(refresh_token.encode()).hexdigest()
    if rejected is not None:
        shared = shared_result(runtime.cache, key)
        if isinstance(shared, dict) and shared.get("access_token") == rejected:
            forget_result(runtime.cache, key)

    def do_refresh() -> dict[str, Any]:
        tokens = runtime.refresh(refresh_token)
        if tokens.id_token:
            # OIDC Core section 12.2: a refreshed ID token must be about the same user, from the same issuer.
            claims = runtime.validate_id_token(tokens.id_token, nonce=None)
            if claims["sub"] != data["sub"]:
                raise InvalidClaim("sub", "The refreshed ID token is about another user.")
        issued_at = time.time()
        return {
            "access_token": tokens.access_token,
            # RFC 6749 section 6: without a new refresh token, the old one stays valid.
            "refresh_token": tokens.refresh_token or refresh_token,
            "expires_at": issued_at + tokens.expires_in if tokens.expires_in else None,
            "issued_at": issued_at,
            "scopes": format_scopes(runtime.granted_scopes(tokens)),
            # Renewed with the row's RFC 8707 resources (flow.refresh_tokens names them).
            session.RENEW_BEFORE_USE: False,
        }

    renewed = single_flight(runtime.cache, key, do_refresh, ttl=60, lock_timeout=conf.http_timeout + 5)
    logger.info("Renewed the access token of a session of provider %s", runtime.provider.slug)
    return renewed


def end_session(request: HttpRequest, provider: Provider | None, reason: str) -> None:
    """Log the user out because the provider no longer backs the session."""
    user = request.user
    logger.warning(
        "Ended the session of user %s (provider %s): %s", user.pk, provider.slug if provider else "-", reason
    )
    auth.logout(request)
    signals.session_ended.send(sender=ProviderRuntime, request=request, user=user, provider=provider, reason=reason)


@sensitive_variables()  # tokens: error reports show none of this function's locals, nor those it calls
def current_access_token(request: HttpRequest, *, force: bool = False) -> str:
    """Return a currently valid access token of the session's grant (see the module docstring).

    :raises ReauthenticationRequired: the grant cannot be renewed (the session has ended), or the
        request has no session grant.
    :raises ProviderUnavailable: the token is expired (or refused) and the provider cannot renew it now,
        or the database cannot read the session's provider row.
    """
    data = session.login_data(request)
    if data is None:
        raise ReauthenticationRequired("This request has no sign-in through an identity provider to act with.")
    slug = data.get("provider")
    try:
        provider = Provider.objects.filter(slug=slug, enabled=True).first()
    except DBError as exc:
        # Not the grant's fault: nothing is handed out and the session stays.
        raise database_outage(
            "Could not read the provider of a session",
            exc,
            "This site cannot read its identity provider's settings right now.",
        ) from exc
    try:
        current = session.access_token(data)
    except session.UnreadableTokens as exc:
        _give_up(request, provider, slug, exc.description)
    now = time.time()
    # A login token that is not for the RFC 8707 resources is never handed out: renewed first, and an
    # outage is then a 503 as for a refused token (force), never the provider's token to the API.
    pending = bool(data.get(session.RENEW_BEFORE_USE))
    if not (force or pending or refresh_due(data, now)):
        return current
    if pending and not session.refresh_token(data):
        # Ending the session would only send the user through the same login again.
        logger.warning(
            "Provider %s gave no refresh token, so the login's access token cannot be renewed for the "
            "provider's RFC 8707 resource indicators (the login reads userinfo): not handing it out. "
            "Turn off userinfo on the provider, or have it issue refresh tokens",
            slug,
        )
        raise ProviderUnavailable("Access to this service cannot be obtained for your sign-in. Please contact us.")
    if force and not pending and now - float(data.get("issued_at") or 0) < MIN_FORCED_RENEWAL_AGE:
        logger.warning(
            "Not renewing an access token of provider %s issued %.0f s ago although an API refused it: "
            "check what that API expects (its audience, RFC 8707 resource indicators)",
            slug,
            now - float(data.get("issued_at") or 0),
        )
        return current
    if provider is None:
        _give_up(request, None, slug, PROVIDER_GONE)
    runtime = ProviderRuntime(provider)
    try:
        if runtime.recently_down():
            raise ProviderUnavailable("The identity provider failed moments ago.")
        renewed = refresh(runtime, data, rejected=current if force else None)
    except (CacheUnavailable, SecretUnavailable) as exc:
        # This site's own failure (its cache, or its client secret): neither the provider's nor the grant's.
        return _outage(data, current, provider, exc, force=force or pending, now=now)
    except (ProviderUnavailable, ProviderResponseError) as exc:
        runtime.mark_down()  # never raises
        return _outage(data, current, provider, exc, force=force or pending, now=now)
    except DuoOIDCError as exc:
        _give_up(request, provider, slug, exc.description)
    tokens: dict[str, str] = {
        "access_token": renewed.pop("access_token"),
        "refresh_token": renewed.pop("refresh_token"),
    }
    session.save_login(request, session.with_tokens({**data, **renewed}, **tokens))
    return tokens["access_token"]


@sensitive_variables()
def _outage(
    data: dict[str, Any], current: str, provider: Provider, exc: DuoOIDCError, *, force: bool, now: float
) -> str:
    expires_at = data.get("expires_at")
    if not force and (expires_at is None or now < float(expires_at)):
        logger.warning(
            "Could not renew an access token of provider %s (%s): handing out the current one until it expires",
            provider.slug,
            exc.description,
        )
        return current
    logger.warning("Could not renew an access token of provider %s: %s", provider.slug, exc.description)
    raise ProviderUnavailable("The identity provider cannot renew your access right now. Please try again soon.")


def _give_up(request: HttpRequest, provider: Provider | None, slug: str | None, reason: str) -> NoReturn:
    end_session(request, provider, reason)
    raise ReauthenticationRequired(provider=slug)


def login_again(request: HttpRequest, exc: ReauthenticationRequired | None = None) -> HttpResponseRedirect:
    """Send the user through login again, back to this page: what a view answers to
    :class:`~django_duo_oidc.core.errors.ReauthenticationRequired` (the middleware does it by default).

    ``next`` is this page for a GET or HEAD; after another method (a form post) the login lands on
    ``LOGIN_REDIRECT_URL``, as the posted data cannot be replayed.
    """
    params: dict[str, str] = {}
    slug = (exc.provider if exc is not None else None) or getattr(getattr(request, "oidc", None), "provider", None)
    if slug:
        params["provider"] = slug
    if request.method in ("GET", "HEAD"):
        params["next"] = request.get_full_path()
    url = reverse("duo_oidc:login")
    return HttpResponseRedirect(f"{url}?{urlencode(params)}" if params else url)
