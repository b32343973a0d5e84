"""Well-known URLs: include at the site root, ``path("", include("django_duo_oidc.well_known_urls"))``."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from .resource.metadata import URL_NAME, ProtectedResourceMetadataView

urlpatterns = [
    path(
        ".well-known/oauth-protected-resource",
        login_not_required(ProtectedResourceMetadataView.as_view()),
        name=URL_NAME,
    ),
]
