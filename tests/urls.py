"""The example project's URLs plus views that exercise every form of the scope API."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views import View
from ninja import NinjaAPI
from ninja.security import django_auth
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from django_duo_oidc.contrib.drf import DuoBearerAuthentication, HasScopes, IsAuthenticatedCaller
from django_duo_oidc.contrib.ninja import DuoBearer, install_error_handlers
from django_duo_oidc.core.scopes import Requirement
from django_duo_oidc.policy.decorators import scopes_required
from django_duo_oidc.policy.mixins import ScopesRequiredMixin
from django_duo_oidc.resource.views import BearerAuthMixin, bearer_auth
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


def _who(request: HttpRequest) -> dict[str, object]:
    return {
        # A session's context (DRF with session authentication) has no client side.
        "is_client": getattr(request.oidc, "is_client", False),
        "sub": request.oidc.sub,
        "client_id": getattr(request.oidc, "client_id", None),
        "user": request.user.get_username() if request.user.is_authenticated else None,
        "scopes": sorted(request.oidc.scopes),
    }


@scopes_required("crm.contacts.read")
@bearer_auth
def bearer_reversed_view(request: HttpRequest) -> HttpResponse:
    """@scopes_required above @bearer_auth: judged on the token all the same."""
    return JsonResponse(_who(request))


@bearer_auth
def bearer_only_view(request: HttpRequest) -> HttpResponse:
    """A valid token, any scope."""
    return JsonResponse(_who(request))


@bearer_auth
@scopes_required("crm.contacts.read")
def bearer_hot_view(request: HttpRequest) -> HttpResponse:
    """The hot path of a bearer API: the token's grant only, request.user never read."""
    return JsonResponse({"sub": request.oidc.sub, "scopes": sorted(request.oidc.scopes)})  # type: ignore[attr-defined]


@bearer_auth
@scopes_required("crm.contacts.read", max_age=300)
def bearer_recent_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse(_who(request))


@bearer_auth
@scopes_required("crm.contacts.read", "crm.contacts.write", any_of=True)
async def bearer_async_view(request: HttpRequest) -> HttpResponse:
    user = await request.auser()  # type: ignore[attr-defined]
    return JsonResponse({"user": user.get_username() or None, "scopes": sorted(request.oidc.scopes)})


class BearerMixinView(BearerAuthMixin, ScopesRequiredMixin, View):
    required_scopes = "crm.contacts.write"

    def post(self, request: HttpRequest) -> HttpResponse:
        return JsonResponse(_who(request))


class BearerContactsAPI(APIView):
    authentication_classes = [DuoBearerAuthentication, SessionAuthentication]
    permission_classes = [HasScopes]
    required_scopes = "crm.contacts.read"

    def get(self, request: HttpRequest) -> Response:
        return Response({**_who(request), "auth": type(request.auth).__name__})


class MethodScopesAPI(APIView):
    """Scopes per HTTP method (HasScopes.required_scopes_map); PUT deliberately unnamed."""

    authentication_classes = [DuoBearerAuthentication, SessionAuthentication]
    permission_classes = [HasScopes]
    required_scopes_map = {
        "GET": "crm.contacts.read",
        "post": ["crm.contacts.write"],
        "DELETE": Requirement.of("crm.contacts.write", max_age=300),
        "OPTIONS": (),
    }

    def get(self, request: HttpRequest) -> Response:
        return Response({**_who(request), "method": "GET"})

    def post(self, request: HttpRequest) -> Response:
        return Response({**_who(request), "method": "POST"})

    def put(self, request: HttpRequest) -> Response:
        return Response({**_who(request), "method": "PUT"})

    def delete(self, request: HttpRequest) -> Response:
        return Response({**_who(request), "method": "DELETE"})


class RecentAPI(APIView):
    authentication_classes = [DuoBearerAuthentication, SessionAuthentication]
    permission_classes = [HasScopes]
    required_scopes = "crm.contacts.read"
    required_max_age = 300

    def get(self, request: HttpRequest) -> Response:
        return Response(_who(request))


class UsersOnlyAPI(APIView):
    """DRF's IsAuthenticated: users only (a client's token leaves request.user anonymous)."""

    authentication_classes = [DuoBearerAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, HasScopes]
    required_scopes = "crm.contacts.read"

    def get(self, request: HttpRequest) -> Response:
        return Response(_who(request))


class CallersAPI(APIView):
    """IsAuthenticatedCaller: users and client-credentials callers."""

    authentication_classes = [DuoBearerAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticatedCaller]

    def get(self, request: HttpRequest) -> Response:
        return Response(_who(request))


class BothAttributesAPI(APIView):
    authentication_classes = [DuoBearerAuthentication]
    permission_classes = [HasScopes]
    required_scopes = "crm.contacts.read"
    required_scopes_map = {"GET": "crm.contacts.read"}

    def get(self, request: HttpRequest) -> Response:
        return Response({})


ninja_api = install_error_handlers(NinjaAPI(auth=DuoBearer(), urls_namespace="t-ninja"))


@ninja_api.get("/any")
def ninja_any(request: HttpRequest) -> dict[str, object]:
    return {**_who(request), "auth": type(request.auth).__name__}  # type: ignore[attr-defined]


@ninja_api.get("/read", auth=DuoBearer(scopes="crm.contacts.read"))
def ninja_read(request: HttpRequest) -> dict[str, object]:
    return _who(request)


@ninja_api.post("/write", auth=DuoBearer(scopes="crm.contacts.write"))
def ninja_write(request: HttpRequest) -> dict[str, object]:
    return _who(request)


@ninja_api.get("/recent", auth=DuoBearer(scopes="crm.contacts.read", max_age=300))
def ninja_recent(request: HttpRequest) -> dict[str, object]:
    return _who(request)


@ninja_api.get("/async", auth=DuoBearer(scopes=["crm.contacts.read", "crm.contacts.write"], any_of=True))
async def ninja_async(request: HttpRequest) -> dict[str, object]:
    user = await request.auser()  # type: ignore[attr-defined]
    return {"user": user.get_username() or None, "scopes": sorted(request.auth.scopes)}  # type: ignore[attr-defined]


@ninja_api.get("/either", auth=[DuoBearer(scopes="crm.contacts.read"), django_auth])
def ninja_either(request: HttpRequest) -> dict[str, object]:
    return {"user": request.user.get_username(), "auth": type(request.auth).__name__}  # type: ignore[attr-defined]


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
    path("t/bearer/reversed/", bearer_reversed_view),
    path("t/bearer/any/", bearer_only_view),
    path("t/bearer/hot/", bearer_hot_view),
    path("t/bearer/recent/", bearer_recent_view),
    path("t/bearer/async/", bearer_async_view),
    path("t/bearer/mixin/", BearerMixinView.as_view()),
    path("t/bearer/drf/", BearerContactsAPI.as_view()),
    path("t/drf/methods/", MethodScopesAPI.as_view()),
    path("t/drf/recent/", RecentAPI.as_view()),
    path("t/drf/users-only/", UsersOnlyAPI.as_view()),
    path("t/drf/callers/", CallersAPI.as_view()),
    path("t/drf/both/", BothAttributesAPI.as_view()),
    path("t/ninja/", ninja_api.urls),
]
