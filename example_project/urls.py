from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("me/", views.me, name="me"),
    path("me/upstream/", views.me_upstream, name="me-upstream"),
    path("contacts/", views.contacts, name="contacts"),
    path("contacts/export/", views.ContactsExportView.as_view(), name="contacts-export"),
    path("api/contacts/", views.api_contacts, name="api-contacts"),
    path("oidc/", include("django_duo_oidc.urls")),
    path("", include("django_duo_oidc.well_known_urls")),
    path("admin/", admin.site.urls),
]
