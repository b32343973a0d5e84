"""URLs of the login flow: include them under a prefix, e.g. ``path("oidc/", include("django_duo_oidc.urls"))``."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from .login import views
from .mfa import views as mfa_views
from .sessions.backchannel import backchannel_logout

app_name = "duo_oidc"

# The way in (and out) never needs a login, also behind Django's LoginRequiredMiddleware.
urlpatterns = [
    path("login/", login_not_required(views.LoginView.as_view()), name="login"),
    path("callback/", login_not_required(views.CallbackView.as_view()), name="callback"),
    path("logout/", login_not_required(views.LogoutView.as_view()), name="logout"),
    # Duo's Universal Prompt as the second factor after a password (give Duo nothing: the SDK sends the
    # callback URL itself). The step-up view needs a login, and sends anonymous users to LOGIN_URL itself.
    path("mfa/login/", login_not_required(mfa_views.MFALoginView.as_view()), name="mfa-login"),
    path("mfa/callback/", login_not_required(mfa_views.CallbackView.as_view()), name="mfa-callback"),
    path("mfa/step-up/", login_not_required(mfa_views.StepUpView.as_view()), name="mfa-step-up"),
    # OpenID Connect Back-Channel Logout 1.0: the provider posts here (csrf-exempt, no login).
    path("backchannel-logout/<slug:slug>/", backchannel_logout, name="backchannel-logout"),
]
