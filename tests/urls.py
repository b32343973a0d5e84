"""The example project's URLs plus views that exercise every form of the scope API."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views import View
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from django_duo_oidc.contrib.drf import HasScopes
from django_duo_oidc.decorators import scopes_required
from django_duo_oidc.mixins import ScopesRequiredMixin
from example_project.urls import urlpatterns as example_urls


@scopes_required("crm.contacts.read", "crm.contacts.write", any_of=True)
def any_of_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("any-of ok")


@scopes_required("crm.contacts.read", "crm.contacts.write")
def all_of_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("all-of ok")


@scopes_required("crm.contacts.read")
async def async_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("async ok")


@scopes_required("crm.contacts.read", raise_exception=True)
def raising_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("raising ok")


@scopes_required("crm.contacts.read", login_url="/elsewhere/")
def custom_login_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("custom ok")


class MixinView(ScopesRequiredMixin, View):
    required_scopes = ("crm.contacts.read",)

    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("mixin ok")


class UnconfiguredMixinView(ScopesRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("never")


def unguarded_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("unguarded ok")


class ContactsAPI(APIView):
    authentication_classes = [SessionAuthentication]
    permission_classes = [HasScopes]
    required_scopes = "crm.contacts.read"

    def get(self, request: HttpRequest) -> Response:
        return Response({"contacts": ["ada"]})


urlpatterns = [
    *example_urls,
    path("t/any/", any_of_view),
    path("t/all/", all_of_view),
    path("t/async/", async_view),
    path("t/raise/", raising_view),
    path("t/custom-login/", custom_login_view),
    path("t/mixin/", MixinView.as_view()),
    path("t/unconfigured/", UnconfiguredMixinView.as_view()),
    path("t/unguarded/", unguarded_view, name="unguarded"),
    path("t/policy/area/", unguarded_view),
    path("t/drf/", ContactsAPI.as_view()),
]
