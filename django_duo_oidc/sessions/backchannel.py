"""OpenID Connect Back-Channel Logout 1.0: the provider posts a ``logout_token``, the sessions it names end.

``POST /oidc/backchannel-logout/<provider slug>/`` with ``logout_token=<JWT>`` (form-encoded, section
2.5). The token is validated as section 2.6 says (:func:`~django_duo_oidc.core.tokens.validate_logout_token`,
keys and algorithms of the provider row, ``jti`` single use across workers through the shared cache),
then the sessions it names end (:func:`~django_duo_oidc.sessions.index.end_indexed`): the
provider session its ``sid`` names (with a ``sub`` too: that user's, plus that user's sessions whose login
carried no ``sid``), else every session of its ``sub`` at that provider.

Answers (section 2.8), all with ``Cache-Control: no-store``: 200 (also when no session matched: the
user is logged out either way); 400 ``{"error": "invalid_request", "error_description": ...}`` for a
token that fails validation, is replayed, or a request that is not a form post with one token; 404 for
a provider that does not exist, is disabled or does not accept back-channel logout (nothing is parsed
for it); 503 with ``Retry-After`` when the provider's keys or this site's cache or session store cannot
be reached (the logout did not happen: a provider that retries gets it done). Each refusal is logged
with the provider and the reason, never the token.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.db import Error as DBError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from ..conf import conf
from ..core.errors import CacheUnavailable, DuoOIDCError, ProviderResponseError, ProviderUnavailable, TokenError
from ..core.tokens import validate_logout_token
from ..models import Identity, LiveSession, Provider
from ..providers.runtime import ProviderRuntime
from .index import end_indexed

__all__ = ["MAX_BODY_BYTES", "backchannel_logout"]

logger = logging.getLogger("django_duo_oidc")

# A form body with one logout token (itself capped at 16 KiB by core.jws) never comes near this; the
# body is refused before it is read or parsed.
MAX_BODY_BYTES = 32_768
REASON = "backchannel_logout"


def _answer(status: int, description: str = "", *, retry_after: int | None = None) -> HttpResponse:
    if status == 200:
        response: HttpResponse = HttpResponse(status=200)
    else:
        error = "temporarily_unavailable" if status == 503 else "invalid_request"
        response = JsonResponse({"error": error, "error_description": description}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"  # section 2.8: MUST
    return response


def _refuse(provider: Provider, description: str, *, status: int = 400) -> HttpResponse:
    logger.warning("Back-channel logout refused (provider %s, status %s): %s", provider.slug, status, description)
    return _answer(status, description)


def _unavailable(provider: Provider, what: str) -> HttpResponse:
    logger.error("Back-channel logout from provider %s could not be done: %s", provider.slug, what)
    retry = max(1, int(conf.provider_down_backoff))
    return _answer(503, "The logout cannot be processed right now; please retry.", retry_after=retry)


def _replay_key(provider: Provider, jti: str) -> str:
    return f"duo_oidc:logout-jti:{provider.pk}:" + hashlib.sha256(jti.encode()).hexdigest()


@sensitive_variables()
def _validate(runtime: ProviderRuntime, token: str) -> dict[str, Any]:
    provider = runtime.provider
    return validate_logout_token(
        token,
        key_for=runtime.keys.key_for,
        issuer=provider.issuer,
        client_id=provider.client_id,
        algorithms=runtime.algorithms,  # step 3: as for ID tokens; asymmetric only, never none
        now=time.time(),
        leeway=conf.leeway,
        max_age=conf.backchannel_logout_max_age,
    )


def _rows(provider: Provider, claims: dict[str, Any]) -> QuerySet[LiveSession]:
    """The index rows of the sessions the token names (section 2.7: "identified by the iss and sub Claims
    and/or the sid Claim"), at this provider only.

    ``sid`` alone: the sessions with that sid. ``sid`` and ``sub``: that user's session with that sid, and
    that user's sessions whose login carried no ``sid`` (they cannot be told apart by it: ending them fails
    closed, keeping them would answer 200 and leave the user logged in). ``sub`` alone: every session of
    the user linked to (provider, ``sub``).
    """
    sid, sub = claims.get("sid"), claims.get("sub")
    rows = LiveSession.objects.filter(provider=provider)
    if sid is not None and sub is not None:
        return rows.filter(sub=sub, sid__in=[sid, ""])
    if sid is not None:
        return rows.filter(sid=sid)
    users = Identity.objects.filter(provider=provider, sub=sub).values("user_id")
    return rows.filter(user__in=users)


@csrf_exempt  # section 2.5: the provider posts directly, with no browser and no CSRF token
@login_not_required
@sensitive_post_parameters("logout_token")
def backchannel_logout(request: HttpRequest, slug: str) -> HttpResponse:
    """Receive a Back-Channel Logout request from the provider ``slug`` and end the sessions it names."""
    if request.method != "POST":
        response = _answer(405, "Back-channel logout requests are POSTed (section 2.5).")
        response["Allow"] = "POST"
        return response
    try:
        provider = Provider.objects.filter(slug=slug, enabled=True, backchannel_logout=True).first()
    except DBError as exc:
        logger.error("Back-channel logout could not look up its provider: the database failed (%s)", type(exc).__name__)
        return _answer(503, "The logout cannot be processed right now; please retry.", retry_after=5)
    if provider is None:
        # Not there, disabled, or not accepting back-channel logout: nothing here to post to, and no
        # token is parsed or key fetched on behalf of a provider this site does not listen to.
        logger.warning("Back-channel logout for an unknown or disabled provider was refused")
        return _answer(404, "No provider accepts back-channel logout at this address.")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if not 0 < length <= MAX_BODY_BYTES:
        return _refuse(provider, "The request body is missing or too large.")
    if request.content_type != "application/x-www-form-urlencoded":
        return _refuse(provider, "The logout token must be sent form-encoded (section 2.5).")
    tokens = request.POST.getlist("logout_token")
    if len(tokens) != 1 or not tokens[0]:
        return _refuse(provider, "The request must carry exactly one logout_token.")
    return _logout(provider, tokens[0])


@sensitive_variables()
def _logout(provider: Provider, token: str) -> HttpResponse:
    runtime = ProviderRuntime(provider)
    try:
        claims = _validate(runtime, token)
    except TokenError as exc:
        return _refuse(provider, exc.description)
    except (ProviderUnavailable, ProviderResponseError) as exc:
        # The keys (or the cache holding them) cannot be had: not the token's fault, try again later.
        return _unavailable(provider, exc.description)
    except DuoOIDCError as exc:
        return _unavailable(provider, exc.description)

    # Step 8: a jti is used once, by one worker (an atomic add in the shared cache), for as long as a
    # token with it can be accepted (iat within max age and leeway, both ways).
    key = _replay_key(provider, claims["jti"])
    lifetime = conf.backchannel_logout_max_age + 2 * conf.leeway
    try:
        first = runtime.cache.add(key, 1, timeout=lifetime)
    except CacheUnavailable:
        # Fail closed: single use cannot be proven, so the token is not acted on (503: retry later).
        return _unavailable(provider, "the shared cache is down, so the token's single use cannot be checked")
    if not first:
        return _refuse(provider, "This logout token was already used (jti).")

    try:
        ended = end_indexed(_rows(provider, claims), reason=REASON)
    except Exception as exc:  # the session store or the database is down: the provider may retry
        with contextlib.suppress(CacheUnavailable):
            runtime.cache.delete(key)  # so the retry's token (same jti) is not taken for a replay
        return _unavailable(provider, f"ending the sessions failed ({type(exc).__name__})")
    logger.info("Back-channel logout from provider %s: %s session(s) ended", provider.slug, ended)
    return _answer(200)
