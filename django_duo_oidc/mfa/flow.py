"""The second factor's steps, shared by the views: to Duo (or a remembered browser, or the fail mode),
the login once Duo allowed it, and the failure page.

After a correct password, :func:`start` does NOT log the user in: the session only holds a pending,
single-use attempt (:mod:`.session`) for 300 s, and the browser goes to Duo's prompt after Duo's health
check (the fail mode decides what an unreachable Duo means; a refusal of the credentials always fails
closed). :func:`complete_login` logs the user in (``auth.login``: the session key rotates), marks the
session, indexes it (``record_session(kind="mfa")``), records the user's last second factor, logs and
signals. :func:`failure` logs the reason, records it, sends ``second_factor_failed`` and renders the page.
"""

from __future__ import annotations

import logging
from typing import Any

import duo_universal
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_variables

from .. import signals
from ..core.errors import ConfigurationError, DuoOIDCError, ProviderUnavailable, SecretUnavailable, TokenError
from ..models import MFAConfiguration, MFAUserState
from ..sessions import record_session
from . import remember, session
from .duo import client_for, health_check, may_fail_open
from .result import Outcome, device_kind
from .who import duo_username

__all__ = ["LOGIN", "STEP_UP", "announce", "callback_url", "complete_login", "failure", "record", "same_site", "start"]

logger = logging.getLogger("django_duo_oidc")

ERROR_TEMPLATE = "duo_oidc/mfa_error.html"
LOGIN, STEP_UP = "login", "step-up"


def failure(
    request: HttpRequest,
    exc: DuoOIDCError,
    *,
    user: Any = None,
    purpose: str = LOGIN,
    retry_url: str | None = None,
    factor: str = "",
) -> HttpResponse:
    """Log the reason, record it on the user, send ``second_factor_failed`` and render the error page.

    ``factor`` is the factor Duo's answer named, when there was an answer (a deny, a refused factor).
    """
    reason = exc.error
    device = device_kind(factor)
    # A misconfiguration is this site's fault, but it is answered as "not available", never as a 500.
    status = 503 if isinstance(exc, ConfigurationError) else 502 if isinstance(exc, TokenError) else exc.status_code
    logger.warning(
        "Second factor failed (%s, purpose=%s, user=%s, status=%s, factor=%s, device=%s): %s",
        reason,
        purpose,
        user.pk if user is not None else "-",
        status,
        factor or "-",
        device or "-",
        exc.description,
    )
    if user is not None:
        result = MFAUserState.Result.DENY if reason == "access_denied" else MFAUserState.Result.ERROR
        record(user, result=result, reason=reason, factor=factor)
    signals.second_factor_failed.send(
        sender=DuoOIDCError,
        request=request,
        user=user,
        purpose=purpose,
        reason=reason,
        description=exc.description,
        factor=factor,
        device=device,
    )
    # The variable holding a secret is named in the log above, never on the page.
    message = exc.shown_description if isinstance(exc, SecretUnavailable) else exc.description
    context = {"status": status, "message": message, "error": reason, "purpose": purpose}
    context["retry_url"] = retry_url or resolve_url(settings.LOGIN_URL)
    response = render(request, ERROR_TEMPLATE, context, status=status)
    if reason in ("factor_refused", "access_denied"):
        remember.forget(response)
    return response


def record(user: Any, *, result: str, reason: str = "", outcome: Outcome | None = None, factor: str = "") -> None:
    """Keep the user's last second-factor event (never a secret)."""
    factor = outcome.factor if outcome else factor
    fields = {"last_auth_at": timezone.now(), "last_result": result, "last_reason": reason[:200]}
    fields.update(last_factor=factor, last_device=device_kind(factor))
    MFAUserState.objects.update_or_create(user=user, defaults=fields)


def callback_url(request: HttpRequest) -> str:
    """The redirect URI sent to Duo: this site's callback, absolute.

    :raises ConfigurationError: the URLs are not included (system check duo_oidc.E105).
    """
    try:
        return request.build_absolute_uri(reverse("duo_oidc:mfa-callback"))
    except NoReverseMatch:
        raise ConfigurationError(
            "The second factor's callback URL is not set up on this site.", error="duo_misconfigured"
        ) from None


def same_site(request: HttpRequest, url: str | None) -> str:
    """``url`` when it stays on this site, else ``LOGIN_REDIRECT_URL``."""
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return resolve_url(settings.LOGIN_REDIRECT_URL)


@sensitive_variables()
def start(
    request: HttpRequest,
    user: Any,
    config: MFAConfiguration,
    *,
    purpose: str,
    next_url: str,
    retry_url: str,
) -> HttpResponse:
    """Send ``user`` (password checked, or logged in for a step-up) to Duo's prompt, or let a remembered
    browser in (logins only), or apply the fail mode when Duo cannot be reached (logins only)."""
    try:
        if purpose == LOGIN and remember.is_remembered(request, user, config):
            return complete_login(
                request, user, backend=user.backend, config=config, via="remembered", next_url=next_url
            )
        return _to_duo(request, user, config, purpose=purpose, next_url=next_url, retry_url=retry_url)
    except DuoOIDCError as exc:
        return failure(request, exc, user=user, purpose=purpose, retry_url=retry_url)


def _to_duo(
    request: HttpRequest, user: Any, config: MFAConfiguration, *, purpose: str, next_url: str, retry_url: str
) -> HttpResponse:
    username = duo_username(user, config)
    try:
        if not username:
            raise ConfigurationError(
                "Your account has no Duo username (no email address): ask an administrator.", error="no_username"
            )
        client = client_for(config, callback_url(request))
        health_check(client)
    except ProviderUnavailable as exc:
        if purpose == LOGIN and config.fail_mode == MFAConfiguration.FailMode.OPEN and may_fail_open(exc):
            # Never for a refusal of the credentials or a rate limit: only when Duo cannot be reached.
            logger.error(
                "DUO SECOND FACTOR SKIPPED: %s Fail mode is open, so user %s is logged in with the password alone.",
                exc.description,
                user.pk,
            )
            return complete_login(
                request, user, backend=user.backend, config=config, via="fail_open", next_url=next_url
            )
        raise
    state, nonce = client.generate_state(), client.generate_state()
    if purpose == LOGIN:
        # A session key an attacker planted before the password step does not carry the attempt on.
        request.session.cycle_key()
    session.store_pending(
        request,
        user=str(user.pk),
        backend=getattr(user, "backend", "") if purpose == LOGIN else "",
        username=username,
        state=state,
        nonce=nonce,
        next=next_url,
        retry=retry_url,
        purpose=purpose,
        hash=user.get_session_auth_hash(),
    )
    try:
        url = client.create_auth_url(username, state, nonce)
    except duo_universal.DuoException:
        raise ConfigurationError(
            "Duo's prompt cannot be started for this account.", error="duo_misconfigured"
        ) from None
    logger.info("Second factor started for user %s (%s)", user.pk, purpose)
    return HttpResponseRedirect(url)


def complete_login(
    request: HttpRequest,
    user: Any,
    *,
    backend: str,
    config: MFAConfiguration,
    via: str,
    next_url: str,
    outcome: Outcome | None = None,
) -> HttpResponse:
    """Log ``user`` in (the session key rotates), mark the session as past the second factor, index it."""
    if backend not in settings.AUTHENTICATION_BACKENDS:
        raise ConfigurationError("The password backend of this login is no longer configured.", error="backend")
    auth.login(request, user, backend=backend)
    session.mark_passed(
        request,
        request.session[SESSION_KEY],
        via=via,
        auth_time=outcome.auth_time if outcome else None,
        factor=outcome.factor if outcome else "",
    )
    request.session.save()
    record_session(request, kind="mfa")
    if via != "remembered":
        record(user, result="allow" if via == "duo" else MFAUserState.Result.FAIL_OPEN, outcome=outcome)
    announce(request, user, via=via, purpose=LOGIN, outcome=outcome)
    response = HttpResponseRedirect(same_site(request, next_url))
    if via == "duo":
        remember.remember(request, response, user, config)
    return response


def announce(request: HttpRequest, user: Any, *, via: str, purpose: str, outcome: Outcome | None) -> None:
    factor, device = (outcome.factor, outcome.device) if outcome else ("", "")
    logger.info(
        "Second factor passed for user %s (%s, via=%s, factor=%s, device=%s)", user.pk, purpose, via, factor, device
    )
    signals.second_factor_passed.send(
        sender=MFAConfiguration, request=request, user=user, via=via, purpose=purpose, factor=factor, device=device
    )
