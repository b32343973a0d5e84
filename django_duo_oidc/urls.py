"""URLs of the login flow: include them under a prefix, e.g. ``path("oidc/", include("django_duo_oidc.urls"))``."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "duo_oidc"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("callback/", views.CallbackView.as_view(), name="callback"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
]
