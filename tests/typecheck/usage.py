"""The public API used as a site and its tests use it, for mypy --strict to check from the outside.

Nothing here is run by pytest (tests/integration/test_typecheck_usage.py imports it, so it stays valid
Python). ``disallow_any_decorated`` is on for this module (pyproject.toml): a decorator that lost the
view's signature (typed as returning Any) fails the check. Each ``# type: ignore[code]`` below is a call
the types must refuse; with ``warn_unused_ignores`` (strict) an ignore that is not needed fails too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import requests
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, TestCase
from django.views import View
from ninja import NinjaAPI
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from django_duo_oidc import (
    BearerAuthMixin,
    ClientCredentialsAuth,
    RequestContext,
    Requirement,
    ScopesRequiredMixin,
    bearer_auth,
    client_token,
    scopes_required,
)
from django_duo_oidc.contrib.drf import DuoBearerAuthentication, HasScopes, IsAuthenticatedCaller
from django_duo_oidc.contrib.ninja import DuoBearer, install_error_handlers
from django_duo_oidc.mfa.decorators import DuoRequiredMixin, duo_required
from django_duo_oidc.outbound.client_credentials import ClientToken
from django_duo_oidc.outbound.user_token import UserTokenAuth
from django_duo_oidc.request import OIDCRequest
from django_duo_oidc.testing import DuoTestMixin, FakeDuo

if TYPE_CHECKING:
    # The site's user model as django-stubs names it (its plugin reads AUTH_USER_MODEL).
    from django.contrib.auth.models import _User as SiteUser

# Views ---------------------------------------------------------------------------------------------


@scopes_required("crm.contacts.read")
def contacts(request: OIDCRequest) -> HttpResponse:
    context: RequestContext = request.oidc
    granted: frozenset[str] = context.scopes
    who: str | None = context.sub
    return HttpResponse(f"{who}: {' '.join(sorted(granted))}")


@scopes_required("crm.contacts.read", "crm.contacts.write", any_of=True, max_age=300)
async def export(request: OIDCRequest, fmt: str) -> HttpResponse:
    token: str = await request.oidc.aaccess_token()
    return HttpResponse(status=200 if token else 503)


@bearer_auth
@scopes_required("crm.contacts.read")
def api_contacts(request: OIDCRequest) -> JsonResponse:
    return JsonResponse({"sub": request.oidc.sub, "client": request.oidc.mode})


@duo_required
def settings_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("settings")


@duo_required(max_age=300)
def payroll(request: HttpRequest, year: int) -> HttpResponse:
    return HttpResponse(str(year))


class ContactsView(ScopesRequiredMixin, View):
    required_scopes = ("crm.contacts.read",)

    def get(self, request: OIDCRequest) -> HttpResponse:
        return HttpResponse(request.oidc.provider or "")


class ContactsApiView(BearerAuthMixin, ScopesRequiredMixin, View):
    required_scopes = "crm.contacts.read"

    def get(self, request: OIDCRequest) -> JsonResponse:
        return JsonResponse({"scopes": sorted(request.oidc.scopes)})


class PayrollView(DuoRequiredMixin, View):
    duo_max_age = 300


def decorated_views_keep_their_signatures(request: OIDCRequest) -> None:
    """Never called: the calls mypy must accept, and (ignored) those it must refuse."""
    response: HttpResponse = contacts(request)
    api_contacts(request).content.decode()
    # The refusal is an HttpResponse: a view typed as answering JSON may answer with the 403 page.
    json_only: JsonResponse = api_contacts(request)  # type: ignore[assignment]
    payroll(request, 2026)
    payroll(request, "2026")  # type: ignore[arg-type]
    contacts(request, 1)  # type: ignore[call-arg]
    settings_page(request).content.decode()
    check: Requirement = Requirement.of(["crm.contacts.read"], any_of=False, max_age=60)
    del response, json_only, check


# Django REST framework -----------------------------------------------------------------------------


class DrfContacts(APIView):
    authentication_classes = [DuoBearerAuthentication]
    permission_classes = [IsAuthenticatedCaller, HasScopes]
    required_scopes_map = {"GET": "crm.contacts.read", "POST": ("crm.contacts.write",), "OPTIONS": ()}
    required_max_age = 300

    def get(self, request: Request) -> Response:
        return Response({"user": request.user.pk})


# Django Ninja --------------------------------------------------------------------------------------

api = install_error_handlers(NinjaAPI(urls_namespace="typecheck-usage", auth=DuoBearer(scopes="crm.contacts.read")))


@api.get("/contacts", auth=DuoBearer(scopes=["crm.contacts.read"], max_age=300))
def ninja_contacts(request: OIDCRequest) -> list[str]:
    return sorted(request.oidc.scopes)  # DuoBearer sets request.oidc (and Ninja's request.auth)


# Calling APIs --------------------------------------------------------------------------------------


def call_apis(request: OIDCRequest) -> None:
    token: ClientToken = client_token("crm.contacts.read", provider="duo")
    header: str = token.authorization
    requests.get("https://api.example.test/", auth=ClientCredentialsAuth("crm.contacts.read"), timeout=5)
    requests.get("https://api.example.test/", auth=UserTokenAuth(request), timeout=5)
    user_token: str = request.oidc.access_token()
    del header, user_token


# The test kit --------------------------------------------------------------------------------------


class ContactsTests(DuoTestMixin, TestCase):
    def test_contacts(self) -> None:
        user = self.duo_login("alice", scopes=["crm.contacts.read"], auth_time=time.time() - 60)
        self.assertTrue(user.is_active)
        token: str = self.duo_token(user, "crm.contacts.read")
        self.duo_narrow("alice", [])
        self.duo_revoke(user)
        self.assertEqual(self.client.get("/api/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code, 403)


def kit_with_pytest(
    client: Client, duo_provider: FakeDuo, duo_login: Callable[..., SiteUser], duo_token: Callable[..., str]
) -> None:
    """A pytest test's body, with the kit's fixtures (not collected: no ``test_`` name)."""
    user = duo_provider.login(client, "alice", scopes=["crm.contacts.read"], groups=["crm-users"])
    bearer: str = duo_provider.token(user, "crm.contacts.read", opaque=True)
    client_bearer: str = duo_provider.client_token("crm.contacts.read")
    duo_provider.revoke("alice")
    duo_provider.make_due(client)
    bob: SiteUser = duo_login(client, "bob", scopes=[])
    del bearer, client_bearer, duo_token, bob
