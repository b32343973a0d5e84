"""The password-then-Duo login, Duo's callback, the step-up view, and the admin site's login hook.

The steps they share are in :mod:`.flow`; see it for what a correct password does (and does not) do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import LoginView, redirect_to_login
from django.db import Error as DBError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.generic import View

from ..conf import conf
from ..core import step_up
from ..core.errors import AuthorizationError, ConfigurationError, DuoOIDCError, LoginRefused, StateError
from ..login.views import OAUTH_ERROR_CODE, CallbackReporterFilter, cleanse_callback_query
from ..sessions import drop_login
from . import session
from .duo import client_for, exchange
from .enforce import database_unavailable
from .flow import LOGIN, STEP_UP, announce, callback_url, complete_login, failure, record, same_site, start
from .result import Outcome, check_result, factor_of
from .who import active_config, must_use_duo

__all__ = ["SENSITIVE_PARAMETERS", "CallbackView", "MFALoginView", "StepUpView", "admin_login"]

# The callback's parameters that must not reach an error report or a log.
SENSITIVE_PARAMETERS = ("duo_code", "state")


@method_decorator(never_cache, name="dispatch")
class MFALoginView(LoginView):
    """Django's ``LoginView`` with Duo's Universal Prompt after a correct password.

    A user who must use Duo (:func:`~.who.must_use_duo`) is not logged in here: the response sends the
    browser to Duo, and :class:`CallbackView` logs them in. Others are logged in as by ``LoginView``. Use
    it wherever ``LoginView`` is used (same options: ``template_name``, ``authentication_form``, ...).
    """

    template_name = "duo_oidc/mfa_login.html"

    def form_valid(self, form: Any) -> HttpResponse:
        user = form.get_user()
        try:
            config = active_config(fresh=True)
        except DBError as exc:  # whether this user must use Duo cannot be told: no login
            return database_unavailable(
                self.request, exc, "The second factor's settings could not be read at a password login"
            )
        if not must_use_duo(user, config):
            return super().form_valid(form)
        assert config is not None
        return start(
            self.request,
            user,
            config,
            purpose=LOGIN,
            next_url=self.get_success_url(),
            retry_url=self.request.get_full_path(),
        )


class CallbackView(View):
    """Duo's redirect back: ``GET ?state=...&duo_code=...``; logs the user in only on Duo's "allow"."""

    http_method_names = ["get"]

    @method_decorator(never_cache)
    @sensitive_variables()  # the duo_code, the state, the 2FA result
    def get(self, request: HttpRequest) -> HttpResponse:
        request.exception_reporter_filter = CallbackReporterFilter()
        self.user: Any = None
        self.pending: dict[str, Any] = {}
        self.factor = ""
        try:
            return self.complete(request)
        except DBError as exc:
            if self.pending.get("purpose") == STEP_UP:
                # The login was whole before the step-up and stays (as a refused step-up leaves it); the
                # step-up's mark is not kept: a 5xx answer saves no session.
                return database_unavailable(request, exc, "A step-up could not be completed at Duo's callback")
            # Nothing half-made stays: a login without its index row could not be ended by deprovisioning.
            drop_login(request)
            return database_unavailable(request, exc, "A login could not be completed at Duo's callback")
        except DuoOIDCError as exc:
            return failure(
                request,
                exc,
                user=self.user,
                purpose=self.pending.get("purpose", LOGIN),
                # The login page the attempt started from; LOGIN_URL when there is no attempt.
                retry_url=same_site(request, self.pending["retry"]) if self.pending.get("retry") else None,
                factor=self.factor,
            )
        finally:
            cleanse_callback_query(request, SENSITIVE_PARAMETERS)

    def complete(self, request: HttpRequest) -> HttpResponse:
        self.pending = pending = session.pop_pending(request, request.GET.get("state"))
        user_model = get_user_model()
        user_pk = pending.get("user")
        user = user_model._default_manager.filter(pk=user_pk).first() if user_pk is not None else None
        if user is None or not user.is_active:
            raise LoginRefused("This account cannot log in.", error="user_inactive")
        self.user = user
        if not constant_time_compare(str(pending.get("hash", "")), user.get_session_auth_hash()):
            raise StateError("The password changed during this login. Please log in again.", error="password_changed")
        error = request.GET.get("error")
        if error:
            code = error if OAUTH_ERROR_CODE.fullmatch(error) else "invalid_error"
            raise LoginRefused(f"Duo did not complete the second factor ({code}).", error="access_denied")
        duo_code = request.GET.get("duo_code")
        if not duo_code:
            raise AuthorizationError("Duo sent no code.", error="no_code")
        config = active_config(fresh=True)
        if config is None:
            raise ConfigurationError("The second factor was turned off during this login.", error="duo_misconfigured")
        client = client_for(config, callback_url(request))
        claims = exchange(client, duo_code, pending["username"], pending["nonce"])
        self.factor = factor_of(claims)
        outcome = check_result(
            claims,
            username=pending["username"],
            refused_factors=config.refused_factor_set,
            started_at=float(pending["started_at"]),
            now=time.time(),
            leeway=conf.leeway,
        )
        next_url = pending.get("next") or ""
        if pending.get("purpose") == STEP_UP:
            return self.step_up_done(request, user, outcome, next_url)
        return complete_login(
            request,
            user,
            backend=str(pending.get("backend")),
            config=config,
            via="duo",
            next_url=next_url,
            outcome=outcome,
        )

    def step_up_done(self, request: HttpRequest, user: Any, outcome: Outcome, next_url: str) -> HttpResponse:
        if not request.user.is_authenticated or str(request.user.pk) != str(user.pk):
            raise StateError("You are no longer logged in as the user who started this.", error="user_changed")
        session.mark_passed(
            request, request.session[SESSION_KEY], via="duo", auth_time=outcome.auth_time, factor=outcome.factor
        )
        record(user, result="allow", outcome=outcome)
        announce(request, user, via="duo", purpose=STEP_UP, outcome=outcome)
        target = same_site(request, next_url)
        # The way back to the page takes a moment: @duo_required(max_age=0) must still open it once.
        session.grant_step_up(request, path=step_up.page_path(target))
        return HttpResponseRedirect(target)


class StepUpView(View):
    """``GET ?next=/path``: a logged-in user authenticates at Duo again, then returns to ``next``.

    Where ``@duo_required(max_age=...)`` and ``DuoRequiredMixin`` send a session whose last Duo
    authentication is too old (or missing). Never fails open.
    """

    http_method_names = ["get"]

    @method_decorator(never_cache)
    def get(self, request: HttpRequest) -> HttpResponse:
        next_url = same_site(request, request.GET.get("next"))
        if not request.user.is_authenticated:
            return redirect_to_login(next_url)
        try:
            config = active_config(fresh=True)
        except DBError as failed:
            return database_unavailable(request, failed, "The second factor's settings could not be read for a step-up")
        if config is None:
            exc = ConfigurationError("This page needs Duo's second factor, which is not set up.", error="not_enabled")
            return failure(request, exc, user=request.user, purpose=STEP_UP, retry_url=next_url)
        return start(request, request.user, config, purpose=STEP_UP, next_url=next_url, retry_url=next_url)


def admin_login(original: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Wrap ``AdminSite.login`` so that, while the second factor is on, the admin's login is
    :class:`MFALoginView` (same form, template and context as Django's own ``AdminSite.login``)."""
    if getattr(original, "duo_oidc_mfa", False):
        return original

    def login(site: Any, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponseBase:
        try:
            config = active_config(fresh=True)
        except DBError as exc:
            return database_unavailable(
                request, exc, "The second factor's settings could not be read at the admin's login"
            )
        if config is None:
            return original(site, request, extra_context)
        if request.method == "GET" and site.has_permission(request):
            return HttpResponseRedirect(reverse("admin:index", current_app=site.name))
        from django.contrib.admin.forms import AdminAuthenticationForm

        context = {
            **site.each_context(request),
            "title": _("Log in"),
            "subtitle": None,
            "app_path": request.get_full_path(),
            "username": request.user.get_username(),
        }
        if "next" not in request.GET and "next" not in request.POST:
            context["next"] = reverse("admin:index", current_app=site.name)
        context.update(extra_context or {})
        request.current_app = site.name
        return MFALoginView.as_view(
            extra_context=context,
            authentication_form=site.login_form or AdminAuthenticationForm,
            template_name=site.login_template or "admin/login.html",
        )(request)

    login.__doc__ = original.__doc__
    # As Django decorates AdminSite.login: never cached, and open behind LoginRequiredMiddleware.
    wrapped = method_decorator(never_cache)(login_not_required(login))
    wrapped.duo_oidc_mfa = True  # type: ignore[attr-defined]  # the mark that makes admin_login idempotent
    return wrapped
