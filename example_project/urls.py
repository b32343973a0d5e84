from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("me/", views.me, name="me"),
    path("oidc/", include("django_duo_oidc.urls")),
    path("admin/", admin.site.urls),
]
