"""Login, callback and logout: thin subclasses of mozilla-django-oidc's views.

Kept from mozilla: the capped per-session map of pending logins (parallel tabs work), the
same-site ``next`` check, the session reload after the slow token exchange. Replaced: settings
come from the Provider row, PKCE S256 and nonce are always on, the callback checks RFC 9207 ``iss``,
state expiry and replay, and every failure ends on an error page with a logged reason.

Over 300 lines on purpose: the three views of one flow (start, callback, logout) and the error page
they share, read in the order a login happens.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.contrib import auth
from django.db import Error as DBError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import get_script_prefix, reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.debug import SafeExceptionReporterFilter
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.generic import View
from mozilla_django_oidc.utils import add_state_and_verifier_and_nonce_to_session
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
    OIDCLogoutView,
    get_next_url,
)

from .. import signals
from ..conf import conf
from ..core import step_up
from ..core.errors import (
    AuthorizationError,
    CacheUnavailable,
    ConfigurationError,
    DuoOIDCError,
    ProviderUnavailable,
    SecretUnavailable,
    StateError,
    TokenEndpointError,
    TokenError,
    database_outage,
)
from ..core.flow import AuthRequest, authorization_params, authorization_url
from ..core.scopes import format_scopes, parse_scopes
from ..models import Provider
from ..providers.runtime import NoBrowserLogin, ProviderRuntime, get_login_provider
from ..sessions import drop_login, record_session
from . import session
from .backend import LoginAttempt
from .revocation import revoke_login_tokens

if TYPE_CHECKING:
    from django.http.request import _ImmutableQueryDict  # the stubs' type of request.GET

logger = logging.getLogger("django_duo_oidc")

REDIRECT_FIELD_NAME = "next"
#: The login's parameter naming the API a session's step-up is for (``step_up_url`` of a 403; core.step_up).
API_PATH_FIELD = "api_path"
# OIDC Core 3.1.2.1, in the order they are sent.
PROMPT_VALUES = ("none", "login", "consent", "select_account")
# RFC 6749 section 4.1.2.1: error = 1*( %x20-21 / %x23-5B / %x5D-7E ); capped, it becomes a reason code.
OAUTH_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")
# Callback parameters that must not reach an error report: the code (with the session's PKCE verifier,
# a login) and the state (the key of the pending login).
SENSITIVE_CALLBACK_PARAMETERS = ("code", "state", "session_state")
# When a provider's client secret cannot be read, the details (the variable's name) go to the log, at
# most once a minute per provider and process; the people signing in see SecretUnavailable.shown_description.
SECRET_REPORT_INTERVAL = 60.0
_secret_reported: dict[str, float] = {}


class CallbackReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, plus the callback's query string, which it would show as sent in META."""

    def get_safe_request_meta(self, request: HttpRequest) -> dict[str, Any]:
        meta = super().get_safe_request_meta(request)
        if meta.get("QUERY_STRING"):
            meta["QUERY_STRING"] = self.cleansed_substitute
        return meta


def cleanse_callback_query(request: HttpRequest, names: tuple[str, ...] = SENSITIVE_CALLBACK_PARAMETERS) -> None:
    """Replace the code and the state (``names``) in ``request.GET`` and the query string once the callback
    is done with them: Django's error reports list ``request.GET`` and the full URL unfiltered."""
    cleansed = request.GET.copy()
    for name in names:
        if name in cleansed:
            cleansed.setlist(name, [SafeExceptionReporterFilter.cleansed_substitute])
    cleansed._mutable = False
    request.GET = cast("_ImmutableQueryDict", cleansed)  # immutable: _mutable is False just above
    request.META["QUERY_STRING"] = cleansed.urlencode(safe="*")


def not_found(description: str) -> ConfigurationError:
    """A login that names no usable provider: 404, and the error code says so."""
    exc = ConfigurationError(description, error="not_found")
    exc.status_code = 404
    return exc


def provider_table_failed(exc: DBError, when: str) -> ProviderUnavailable:
    """The provider table could not be read ``when``: logged, and the 503 the person signing in is shown."""
    return database_outage(
        f"Could not read the identity providers {when}",
        exc,
        "This site cannot read its sign-in settings right now. Please try again in a moment.",
    )


def secret_unavailable(provider: Provider | None, exc: SecretUnavailable) -> ConfigurationError:
    """Log (as an ERROR naming the provider and the variable, never a value) that ``provider``'s client
    secret cannot be read, and return the error the person signing in is shown instead: 503, no detail."""
    slug = provider.slug if provider else "-"
    now = time.monotonic()
    if now - _secret_reported.get(slug, -SECRET_REPORT_INTERVAL) >= SECRET_REPORT_INTERVAL:
        _secret_reported[slug] = now
        logger.error("Provider %s cannot be used to sign in: %s", slug, exc.description)
    shown = ConfigurationError(exc.shown_description, error="temporarily_unavailable")
    shown.status_code = 503
    return shown


def error_response(
    request: HttpRequest, exc: DuoOIDCError, *, provider: Provider | None = None, status: int | None = None
) -> HttpResponse:
    """Log the reason, send ``login_failed`` and render the error page. Never includes a token, and never
    the detail of a client secret that cannot be read (:func:`secret_unavailable`)."""
    retry = True
    if isinstance(exc, SecretUnavailable):
        exc, status, retry = secret_unavailable(provider, exc), None, False
    # The provider's own error code where there is one (error=access_denied, invalid_grant, ...).
    reason = exc.error if isinstance(exc, AuthorizationError | TokenEndpointError) else type(exc).__name__
    status = status or exc.status_code
    retry = retry and status != 404  # the same link would find the same nothing
    logger.warning(
        "Login failed (%s, provider=%s, status=%s): %s",
        reason,
        provider.slug if provider else "-",
        status,
        exc.description,
    )
    signals.login_failed.send(
        sender=DuoOIDCError, request=request, provider=provider, reason=reason, description=exc.description
    )
    context = {
        "status": status,
        "message": exc.description,
        "provider": provider,
        "error": exc.error,
        "retry": retry,
        "home_url": get_script_prefix(),
    }
    return render(request, conf.error_template, context, status=status)


class LoginView(OIDCAuthenticationRequestView):
    """Start a login: ``GET /oidc/login/?provider=<slug>&next=/path``.

    Also accepted per request: ``login_hint``, ``prompt``, ``max_age`` and ``scope`` (added to the
    provider's scopes), and ``api_path``: the path of a session's API that answered 403
    ``insufficient_user_authentication`` (its ``step_up_url`` names it), which the step-up then opens
    once too (:mod:`django_duo_oidc.core.step_up`). A bare GET works too (Duo Central's RP-initiated
    login URL).
    """

    http_method_names = ["get"]

    def __init__(self, **kwargs: Any) -> None:
        # mozilla's __init__ reads OIDC_OP_AUTHORIZATION_ENDPOINT from settings; ours is discovered.
        View.__init__(self, **kwargs)

    @sensitive_variables()  # the pending login's state, nonce and PKCE verifier
    def get(self, request: HttpRequest) -> HttpResponse:
        slug = request.GET.get("provider") or None
        try:
            provider = get_login_provider(slug)  # never one that only issues or validates tokens
        except DBError as exc:
            return error_response(request, provider_table_failed(exc, "to start a login"))
        except Provider.DoesNotExist as missing:
            unknown = not_found(
                str(missing)
                if isinstance(missing, NoBrowserLogin)
                else "This site has no sign-in method by that name: the link you followed may be out of date."
                if slug
                else "No sign-in method is set up on this site yet."
            )
            return error_response(request, unknown)
        try:
            # Before the browser goes anywhere: without the secret the callback could not redeem the code.
            provider.get_client_secret()
        except SecretUnavailable as exc:
            return error_response(request, exc, provider=provider)
        next_url = get_next_url(request, REDIRECT_FIELD_NAME)
        if request.GET.get(REDIRECT_FIELD_NAME) and next_url is None:
            # Fail closed: an off-site `next` is refused, not silently replaced.
            off_site = AuthorizationError("The address to return to after login is not on this site.")
            return error_response(request, off_site, provider=provider)
        api_path = request.GET.get(API_PATH_FIELD)
        step_up_api = step_up.api_path(api_path) if api_path is not None else None
        if api_path is not None and step_up_api is None:
            # Fail closed, as for `next`: only ever compared with request.path, but never guessed at.
            not_a_path = AuthorizationError("The API address this login is for is not a path on this site.")
            return error_response(request, not_a_path, provider=provider)
        self.provider = provider
        attempt = AuthRequest.new()
        extra = self.get_extra_params(request)
        scope = format_scopes(provider.scope_set | parse_scopes(request.GET.get("scope")))
        params = authorization_params(
            client_id=provider.client_id,
            redirect_uri=request.build_absolute_uri(reverse("duo_oidc:callback")),
            scope=scope,
            auth_request=attempt,
            extra=extra,
        )
        # RFC 8707 section 2.1: one resource parameter per downstream API the token is meant for.
        resources = {"resource": list(provider.resource_list)} if provider.resource_list else {}
        try:
            url = ProviderRuntime(provider).authorization_url({**params, **resources})
        except CacheUnavailable:
            # The callback could not check its state for replay without the cache: don't start what
            # cannot finish.
            no_cache = CacheUnavailable(
                "The login cannot start right now: this site's shared cache is not reachable. "
                "Please try again in a moment."
            )
            return error_response(request, no_cache, provider=provider)
        except DuoOIDCError as exc:
            return error_response(request, exc, provider=provider)
        add_state_and_verifier_and_nonce_to_session(request, attempt.state, params, attempt.code_verifier)
        max_age = extra.get("max_age")
        session.annotate_pending(
            request,
            attempt.state,
            provider=provider.slug,
            next=next_url,
            max_age=int(max_age) if max_age is not None else None,
            api_path=step_up_api,
        )
        return HttpResponseRedirect(url)

    def get_extra_params(self, request: HttpRequest) -> dict[str, str]:
        """Return ``prompt``, ``login_hint`` and ``max_age`` from the provider, tightened by the request.

        The request may only make the login stricter than the provider row: a smaller ``max_age``, and
        ``prompt`` values added to the configured one, never removed or replaced by ``none``.
        """
        provider: Provider = self.provider
        extra: dict[str, str] = {}
        prompt = self.effective_prompt(request.GET.get("prompt", ""), provider.prompt)
        if prompt:
            extra["prompt"] = prompt
        login_hint = request.GET.get("login_hint", "")
        if login_hint and len(login_hint) <= 254 and login_hint.isprintable():
            extra["login_hint"] = login_hint
        requested = request.GET.get("max_age", "")
        # isascii: str.isdigit() is also True for superscripts, which int() refuses.
        ages = [int(requested)] if requested.isascii() and requested.isdigit() and len(requested) < 9 else []
        if provider.max_age is not None:
            ages.append(provider.max_age)
        if ages:
            extra["max_age"] = str(min(ages))
        return extra

    @staticmethod
    def effective_prompt(requested: str, configured: str) -> str:
        """Return the ``prompt`` to send: the configured values plus any valid ones the request adds.

        OIDC Core 3.1.2.1: ``none`` with any other value is an error, so ``none`` is sent only alone;
        with other values (a configured ``login``, say) the stronger ones win and ``none`` is dropped,
        so a request can never turn a configured prompt into a silent login. Unknown values are ignored.
        """
        wanted = set(configured.split()) | set(requested.split())
        values = [value for value in PROMPT_VALUES if value in wanted]
        if len(values) > 1:
            values = [value for value in values if value != "none"]
        return " ".join(values)


class CallbackView(OIDCAuthenticationCallbackView):
    """Complete a login: ``GET /oidc/callback/?code=…&state=…[&iss=…]``."""

    http_method_names = ["get"]

    @sensitive_variables()  # the code, the tokens, the claims: here and in everything called from here
    def get(self, request: HttpRequest) -> HttpResponse:
        self.provider: Provider | None = None
        request.exception_reporter_filter = CallbackReporterFilter()
        try:
            return self.complete(request)
        except DuoOIDCError as exc:
            # The ID token came over the back channel from the provider: if it cannot be trusted the
            # fault is upstream (502), not the browser's.
            return error_response(
                request, exc, provider=self.provider, status=502 if isinstance(exc, TokenError) else None
            )
        finally:
            # Before any error report is made of this request (they are made once the exception has
            # left the view), and before the middleware below sees the request again.
            cleanse_callback_query(request)

    def complete(self, request: HttpRequest) -> HttpResponse:
        pending = session.pop_pending(request, request.GET.get("state"))
        if pending is None:
            raise StateError()
        if time.time() - float(pending.get("added_on", 0)) > conf.state_ttl:
            raise StateError("This login attempt has expired. Please start again.")
        try:
            provider = Provider.objects.filter(slug=pending.get("provider"), enabled=True, browser_login=True).first()
        except DBError as failed:
            raise provider_table_failed(failed, "at a login's callback") from failed
        if provider is None:
            raise StateError("The identity provider of this login attempt is no longer available.")
        self.provider = provider
        runtime = ProviderRuntime(provider)
        self.check_issuer(request, runtime)
        if request.GET.get("error"):
            error = request.GET["error"]
            if not OAUTH_ERROR_CODE.fullmatch(error):
                error = "invalid_error"  # not an error code as RFC 6749 spells them: not used as sent
            exc = AuthorizationError("The identity provider did not complete the login.", error=error)
            if error == "access_denied":
                exc.status_code = 403
            elif error == "login_required":
                exc.description = "You are not signed in at the identity provider."
            raise exc
        code = request.GET.get("code")
        if not code:
            raise AuthorizationError("The identity provider sent no authorization code.")

        # Token exchange is slow: reload the session afterwards so that parallel tabs' changes
        # to the pending map are not overwritten (mozilla's reasoning, kept).
        request.session = request.session.__class__(request.session.session_key)
        attempt = LoginAttempt(
            provider=provider,
            code=code,
            redirect_uri=request.build_absolute_uri(reverse("duo_oidc:callback")),
            nonce=pending["nonce"],
            code_verifier=pending["code_verifier"],
            max_age=pending.get("max_age"),
        )
        try:
            user = self.log_in(request, provider, attempt)
        except DBError as failed:
            # The user, the identity, the session or its index row could not be written: no half-made
            # login stays (without its index row no deprovisioning or back-channel logout could end it).
            not_saved = database_outage(
                "Could not save a login at its callback",
                failed,
                "This site cannot complete the sign-in right now. Please try again in a moment.",
            )
            drop_login(request)
            raise not_saved from failed
        logger.info("Login of user %s through provider %s", user.pk, provider.slug)
        signals.login_succeeded.send(
            sender=self.__class__,
            request=request,
            user=user,
            provider=provider,
            claims=attempt.claims,
            scopes=attempt.scopes,
        )
        next_url = self.next_url(request, pending.get("next"))
        if attempt.max_age is not None:
            # The way back to the page takes a moment: a max_age shorter than that must still open it once.
            api_path = pending.get("api_path")
            session.grant_step_up(
                request,
                path=step_up.page_path(next_url),
                max_age=attempt.max_age,
                api_path=api_path if isinstance(api_path, str) else None,
            )
        return HttpResponseRedirect(next_url)

    def log_in(self, request: HttpRequest, provider: Provider, attempt: LoginAttempt) -> Any:
        """Redeem the code and validate the ID token (the backend), log the user in, keep the tokens and
        index the session; the user. Database writes happen here (see :meth:`complete`)."""
        user = auth.authenticate(request, duo_oidc_login=attempt)
        if user is None or attempt.tokens is None:
            raise ConfigurationError("django_duo_oidc.backends.DuoOIDCBackend is not in AUTHENTICATION_BACKENDS.")
        # auth.login() rotates the session key (session fixation) and the CSRF token.
        auth.login(request, user, backend="django_duo_oidc.backends.DuoOIDCBackend")
        session.store_login(
            request,
            provider=provider.slug,
            tokens=attempt.tokens,
            claims=attempt.claims,
            scopes=attempt.scopes,
            keep_id_token=provider.end_session and provider.logout_id_token_hint,
            renew_before_use=provider.code_exchange_resources != provider.resource_list,
        )
        # OIDC Back-Channel Logout 1.0 section 2.1: the ID token's sid names the provider session.
        sid = attempt.claims.get("sid")
        record_session(
            request,
            provider=provider,
            sub=attempt.claims["sub"],
            sid=sid if isinstance(sid, str) and len(sid) <= 255 else "",
        )
        return user

    def check_issuer(self, request: HttpRequest, runtime: ProviderRuntime) -> None:
        """RFC 9207 section 2.4: when the provider announces the ``iss`` response parameter it must
        be present and equal to the issuer; when present it must match in any case. Checked before
        the code (or an error) is looked at, so a mix-up never redeems a code at the wrong provider.
        """
        iss = request.GET.get("iss")
        if iss is None:
            if runtime.metadata.authorization_response_iss_parameter_supported:
                raise AuthorizationError("The identity provider's answer does not say who sent it (iss).")
            return
        if iss != runtime.provider.issuer:
            raise AuthorizationError("The answer came from another identity provider than the one asked (iss).")

    def next_url(self, request: HttpRequest, stored: str | None) -> str:
        # Checked again on the way out: the stored value came from our own login view, but a
        # check here costs nothing and keeps `next` same-site whatever wrote it.
        if stored and url_has_allowed_host_and_scheme(
            stored, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return stored
        return resolve_url(settings.LOGIN_REDIRECT_URL)


LOGOUT_TEMPLATE = "duo_oidc/logout.html"


class LogoutView(OIDCLogoutView):
    """End the Django session (POST only, CSRF-protected); optionally end the provider session too.

    A GET (a link, a typed address) logs nobody out: it answers 405 with a page holding the CSRF-protected
    "Log out" button (template ``duo_oidc/logout.html``; context ``user``).

    Duo documents no end_session_endpoint, so by default only the Django session ends and the next
    login may be silent at Duo (use ``prompt=login`` to force re-authentication).
    """

    http_method_names = ["get", "post"]

    @method_decorator(never_cache)  # the page holds this browser's CSRF token
    def get(self, request: HttpRequest) -> HttpResponse:
        response = render(request, LOGOUT_TEMPLATE, {"user": request.user}, status=405)
        response["Allow"] = "POST"
        return response

    @property
    def redirect_url(self) -> str:
        """Where to go after logout: ``LOGOUT_REDIRECT_URL`` (a URL or a URL name), else ``/``.

        Django's default for the setting is None (a ``startproject`` project has no value), which
        mozilla's ``redirect_url`` passed on as is.
        """
        return resolve_url(getattr(settings, "LOGOUT_REDIRECT_URL", None) or "/")

    def post(self, request: HttpRequest) -> HttpResponse:
        # Log out first: nothing computed for the redirect (settings, the provider's discovery) may
        # keep the user logged in by failing before auth.logout.
        data = session.login_data(request)
        user_pk = request.user.pk if request.user.is_authenticated else None
        auth.logout(request)
        if user_pk is not None:
            logger.info("Logout of user %s", user_pk)
        revoke_login_tokens(data)  # RFC 7009, after the session ended; never raises
        url = self.redirect_url
        if data is not None:
            url = self.provider_logout_url(request, data) or url
        return HttpResponseRedirect(url)

    def provider_logout_url(self, request: HttpRequest, data: dict[str, Any] | None = None) -> str | None:
        """Return the RP-initiated logout URL (OIDC RP-Initiated Logout 1.0 section 2), if enabled.

        ``data`` is the login data the session held before logout (default: the session's, now).
        """
        data = data if data is not None else session.login_data(request)
        try:
            provider = Provider.objects.filter(slug=data["provider"]).first() if data else None
        except DBError as exc:  # logout goes on; the provider's own session is left to end by itself
            logger.warning("Provider logout skipped: the database failed (%s)", type(exc).__name__)
            return None
        if provider is None or not provider.end_session:
            return None
        try:
            endpoint = ProviderRuntime(provider).metadata.end_session_endpoint
        except DuoOIDCError as exc:
            logger.warning("Provider logout skipped for %s: %s", provider.slug, exc.description)
            return None
        if not endpoint:
            return None
        # client_id identifies us (RP-Initiated Logout 1.0 section 2 allows it alongside
        # post_logout_redirect_uri). id_token_hint only where the provider row asks for it: the section
        # RECOMMENDS it and Glewlwyd and Keycloak need it, but it puts the ID token in a URL.
        params = {
            "client_id": provider.client_id,
            "post_logout_redirect_uri": request.build_absolute_uri(self.redirect_url),
        }
        if provider.logout_id_token_hint and data is not None:
            try:
                hint = session.id_token(data)
            except session.UnreadableTokens:
                hint = None
            if hint:
                params["id_token_hint"] = hint
        return authorization_url(endpoint, params)
