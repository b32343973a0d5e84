"""Issue 10, session side: no header switches the freshness check off, inactive users are logged out,
step-up needs a provider-asserted ``auth_time``, the login URL may only tighten, short-lived tokens,
and async class-based views behind the mixins."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client
from django.urls import path
from django.views import View
from rest_framework.authentication import SessionAuthentication
from rest_framework.views import APIView

from django_duo_oidc.contrib.drf import DuoBearerAuthentication
from django_duo_oidc.mixins import BearerAuthMixin, ScopesRequiredMixin
from django_duo_oidc.models import Provider
from tests import urls as test_urls
from tests.fakeop import FakeOP

from .test_login_flow import login, me
from .test_scopes import CRM

pytestmark = pytest.mark.django_db
JUNK = {"HTTP_AUTHORIZATION": "Bearer junk"}


class AsyncScopesView(ScopesRequiredMixin, View):
    required_scopes = "crm.contacts.read"

    async def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("async mixin ok")


class AsyncBearerView(BearerAuthMixin, ScopesRequiredMixin, View):
    required_scopes = "crm.contacts.read"

    async def get(self, request: HttpRequest) -> HttpResponse:
        user = await request.auser()  # type: ignore[attr-defined]
        return JsonResponse({"user": user.get_username() or None, "scopes": sorted(request.oidc.scopes)})


class BearerOnlyAPI(APIView):
    authentication_classes = [DuoBearerAuthentication]


class MixedAPI(APIView):
    authentication_classes = [DuoBearerAuthentication, SessionAuthentication]


urlpatterns = [
    *test_urls.urlpatterns,
    path("t/async-mixin/", AsyncScopesView.as_view()),
    path("t/async-bearer-mixin/", AsyncBearerView.as_view()),
]
with_async_views = pytest.mark.urls(__name__)


def close_executor_connections() -> None:
    # See tests/integration/test_scopes.py::test_async_view.
    asyncio.run(sync_to_async(connections.close_all)())


# 4. A hostile auth_time refuses the login cleanly --------------------------------------------------------


@pytest.mark.parametrize("value", ["yesterday", True, [1], "NaN", "1e999", float("nan")], ids=repr)
def test_hostile_auth_time_refuses_the_login(client: Client, fake_op: FakeOP, provider: Provider, value: Any) -> None:
    fake_op.id_token_claims = {"auth_time": value}
    response = login(client, fake_op, scope=CRM)
    assert response.status_code == 502
    assert b"Traceback" not in response.content
    assert me(client) == {"authenticated": False}
    assert "duo_oidc" not in client.session
    assert client.get("/contacts/export/").status_code == 302
