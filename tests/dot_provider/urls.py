"""DOT under /o/ (issuer ``<origin>/o``), its RFC 8414 metadata also at the origin's root (where
RFC 8414 section 3.1 looks for it: ``/.well-known/oauth-authorization-server/o``), and a login page."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path
from oauth2_provider import urls as dot_urls

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("", include((dot_urls.metadata_urlpatterns, "dot_root_metadata"))),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
]
