"""Adversarial review of issue 15's Django Ninja and DRF parts: the scopes an operation declares bind
every caller it admits, and a Duo grant only ever counts for the identity it was granted to.

The API views are this module's own (``urlpatterns`` below, used with ``pytest.mark.urls``), mounted
behind the project's full middleware stack (session, CSRF, authentication, DuoOIDCMiddleware)."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.test import Client
from django.urls import path
from ninja import NinjaAPI
from ninja.security import django_auth
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from django_duo_oidc import signals
from django_duo_oidc.contrib.drf import DuoBearerAuthentication, HasScopes
from django_duo_oidc.contrib.ninja import DuoBearer, install_error_handlers
from django_duo_oidc.models import Provider
from tests.conftest import captured
from tests.fakeop import FakeOP

from .test_login_views import login
from .test_resource import issue

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

READ = "crm.contacts.read"

api = install_error_handlers(NinjaAPI(urls_namespace="t-review15"))


def _who(request: HttpRequest) -> dict[str, Any]:
    return {"user": request.user.get_username(), "auth": type(request.auth).__name__}  # type: ignore[attr-defined]


@api.get("/either", auth=[DuoBearer(scopes=READ), django_auth])
def either(request: HttpRequest) -> dict[str, Any]:
    return _who(request)


@api.post("/either", auth=[DuoBearer(scopes=READ), django_auth])
def either_post(request: HttpRequest) -> dict[str, Any]:
    return _who(request)


@api.get("/recent", auth=[DuoBearer(scopes=READ, max_age=300), django_auth])
def recent(request: HttpRequest) -> dict[str, Any]:
    return _who(request)


@api.get("/open", auth=[DuoBearer(), django_auth])
def open_to_callers(request: HttpRequest) -> dict[str, Any]:
    return _who(request)


@api.get("/token-only", auth=DuoBearer(scopes=READ))
def token_only(request: HttpRequest) -> dict[str, Any]:
    return _who(request)


@api.get("/audit", auth=DuoBearer(scopes="crm.review15.audit"))
def audit(request: HttpRequest) -> dict[str, Any]:
    return _who(request)


class BasicThenSession(APIView):
    """A site that also takes DRF's other authentication classes (HTTP Basic here, first)."""

    authentication_classes = [DuoBearerAuthentication, BasicAuthentication, SessionAuthentication]
    permission_classes = [HasScopes]
    required_scopes = READ

    def get(self, request: Any) -> Response:
        return Response({"user": request.user.get_username()})


urlpatterns = [
    *__import__("tests.urls", fromlist=["urlpatterns"]).urlpatterns,
    path("review15/", api.urls),
    path("review15/drf/basic/", BasicThenSession.as_view()),
]


# Ninja: a scope on DuoBearer binds the session the next auth admits ------------------------------


def test_a_ninja_session_without_the_operations_scope_is_refused(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    # auth=[DuoBearer(scopes=READ), django_auth]: the operation requires READ. A session the provider
    # did not grant READ must not be served just because it came without a bearer token.
    login(client, fake_op)  # granted: openid profile email groups
    with captured(signals.scope_denied) as denied:
        response = client.get("/review15/either")
    assert response.status_code == 403
    assert "user" not in response.json()
    assert response.json()["error"] == "insufficient_scope"
    assert len(denied) == 1
    # Unsafe methods too (the CSRF check of django_auth is not what refuses it here).
    assert client.post("/review15/either").status_code == 403


def test_a_ninja_session_with_the_scope_is_served_by_the_next_auth(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=f"openid email {READ}")
    assert client.get("/review15/either").json() == {"user": "alice@example.test", "auth": "SimpleLazyObject"}
    # A refused token is still the final answer, whatever the session.
    assert (
        client.get("/review15/either", HTTP_AUTHORIZATION=f"Bearer {issue(fake_op, scope='email')}").status_code == 403
    )


def test_a_password_session_has_no_duo_grant_so_no_scope(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    user = get_user_model().objects.create_user("pat", password="x")
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    assert client.get("/review15/either").status_code == 403
    # An operation that requires no scope still takes any session, as before.
    assert client.get("/review15/open").json()["user"] == "pat"


def test_a_ninja_session_from_an_old_login_is_told_to_step_up(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=f"openid {READ}", auth_time=time.time() - 3600)
    response = client.get("/review15/recent")
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "insufficient_user_authentication"
    assert body["max_age"] == 300
    assert body["step_up_url"].startswith("/oidc/login/?")
    login(client, fake_op, scope=f"openid {READ}")
    assert client.get("/review15/recent").status_code == 200


def test_a_stale_ninja_session_is_503_when_on_provider_down_is_deny(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    login(client, fake_op, scope=f"openid {READ}")
    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0, "ON_PROVIDER_DOWN": "deny"}
    fake_op.faults["token_introspection"] = "down"
    fake_op.faults["token"] = "down"
    response = client.get("/review15/either")
    assert response.status_code == 503
    assert "user" not in response.json()


# DRF: the session's grant counts only for the session's user -------------------------------------


def test_drf_never_judges_another_users_request_on_the_sessions_grant(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    # alice's browser holds her Duo session (READ granted) and sends HTTP Basic credentials of "svc",
    # an account Duo never granted anything. DRF authenticates svc (Basic comes first); the scopes
    # must be svc's (none), never alice's.
    get_user_model().objects.create_user("svc", password="pw")
    login(client, fake_op, scope=f"openid {READ}")
    assert client.get("/review15/drf/basic/").json() == {"user": "alice@example.test"}  # her own session
    basic = "Basic " + base64.b64encode(b"svc:pw").decode()
    response = client.get("/review15/drf/basic/", HTTP_AUTHORIZATION=basic)
    assert response.status_code == 403
    assert "user" not in response.json()


# Judged fine, and kept so: CSRF on unsafe methods with a session ---------------------------------


def test_a_session_post_without_a_csrf_token_is_refused_by_drf_and_ninja(fake_op: FakeOP, provider: Provider) -> None:
    browser = Client(enforce_csrf_checks=True)
    login(browser, fake_op, scope=f"openid {READ} crm.contacts.write")
    drf = browser.post("/t/drf/methods/")  # HasScopes would admit it: DRF's SessionAuthentication refuses
    assert drf.status_code == 403
    assert "CSRF" in drf.json()["detail"]
    ninja = browser.post("/review15/either")  # DuoBearer steps aside: django_auth checks CSRF
    assert ninja.status_code == 403
    assert "user" not in ninja.json()


# Judged fine, and kept so: the kit's session factory left in production settings -----------------


def test_the_kits_factory_without_a_running_fake_reaches_nothing_and_forges_nothing(
    client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A careless ``HTTP_SESSION_FACTORY = "django_duo_oidc.testing.fakeop.session_factory"`` in
    production: no fake is installed there, so a row naming the fake's issuer can neither log anyone in
    nor accept a token the fake's (per-process, random) key signed: both fail closed."""
    from django_duo_oidc.providers.runtime import http_client
    from django_duo_oidc.testing import FACTORY, fakeop

    assert fakeop.CURRENT is None  # no test fixture installed one here
    settings.DUO_OIDC = {**settings.DUO_OIDC, "HTTP_SESSION_FACTORY": FACTORY}
    monkeypatch.setenv("DUO_FAKE_OP_SECRET", fakeop.CLIENT_SECRET)
    Provider.objects.create(
        slug="duo",
        name="Duo",
        issuer=fakeop.ISSUER,
        client_id=fakeop.CLIENT_ID,
        client_secret_env="DUO_FAKE_OP_SECRET",
        is_default=True,
    )
    # Only the fake's own origin is routed in process; every other host is a plain requests.Session.
    adapters = http_client().session.adapters
    assert [prefix for prefix, adapter in adapters.items() if isinstance(adapter, fakeop.FakeAdapter)] == [
        "https://sso-fake.sso.duosecurity.test/"
    ]
    start = client.get("/oidc/login/?provider=duo")
    assert start.status_code in (502, 503)  # the provider cannot be reached: a page, not a redirect
    token = fakeop.FakeOP().access_token("alice-sub", READ)
    refused = client.get("/t/bearer/drf/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert refused.status_code == 503
    assert "alice" not in refused.content.decode()


# Ninja: an API under a scope rule (SCOPE_POLICY or the admin's) is judged as the API judges ------


@pytest.fixture
def ninja_under_policy(settings: Any) -> Any:
    from django_duo_oidc.policy.rules import reset_policy_cache

    rule = {"path": "/review15/", "scopes": READ}
    settings.DUO_OIDC = {**settings.DUO_OIDC, "SCOPE_POLICY": [rule]}
    reset_policy_cache()
    yield
    reset_policy_cache()


def test_a_ninja_api_under_a_scope_rule_judges_tokens_not_sessions(
    client: Client, fake_op: FakeOP, provider: Provider, ninja_under_policy: Any
) -> None:
    # The policy middleware took every Ninja view for a session view: a valid token with the scope was
    # sent to the login page (302), as if the API had no bearer auth at all.
    served = client.get("/review15/either", HTTP_AUTHORIZATION=f"Bearer {issue(fake_op)}")
    assert served.status_code == 200, served.get("Location")
    assert served.json() == {"user": "", "auth": "BearerContext"}
    narrow = client.get("/review15/either", HTTP_AUTHORIZATION=f"Bearer {issue(fake_op, scope='email')}")
    assert narrow.status_code == 403
    assert narrow.json()["error"] == "insufficient_scope"
    assert client.get("/review15/either").status_code == 302  # no credentials, no session: the login page
    # A session is still judged by the rule (its 403 page) when the operation also takes sessions.
    login(client, fake_op)
    assert client.get("/review15/either").status_code == 403


def test_a_token_only_ninja_operation_under_a_scope_rule_ignores_the_session(
    client: Client, fake_op: FakeOP, provider: Provider, ninja_under_policy: Any
) -> None:
    assert Client().get("/review15/token-only", HTTP_AUTHORIZATION=f"Bearer {issue(fake_op)}").status_code == 200
    # A session never opens an operation that only takes tokens, policy or not: the answer is the
    # bearer challenge, not the rule's login redirect or 403 page.
    login(client, fake_op)
    response = client.get("/review15/token-only")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer ")


def test_the_protected_resource_metadata_names_the_scopes_of_ninja_operations() -> None:
    from django_duo_oidc.resource.metadata import bearer_view_scopes, is_bearer_view, is_token_only_view

    bearer_view_scopes.cache_clear()
    try:
        assert "crm.review15.audit" in bearer_view_scopes(__name__)  # RFC 9728 scopes_supported
    finally:
        bearer_view_scopes.cache_clear()
    routes = {str(pattern.pattern): pattern.callback for pattern in api.urls[0]}
    either_, token_only_, open_ = routes["either"], routes["token-only"], routes["open"]
    assert is_bearer_view(either_) and not is_token_only_view(either_)  # also takes django_auth
    assert is_token_only_view(token_only_)
    assert is_bearer_view(open_) and not is_token_only_view(open_)


def test_a_token_only_ninja_operation_answers_any_session_with_the_bearer_challenge(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    # DuoBearer alone: a session is never taken, with or without the scope, so it is never judged
    # (a 403 "scope missing" would promise that the scope opens it).
    login(client, fake_op)  # without READ
    response = client.get("/review15/token-only")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer ")


def test_a_scope_map_naming_a_method_twice_in_different_cases_is_a_configuration_error() -> None:
    # {"GET": READ, "get": ()}: which one won depended on the dict's order; the later, empty one
    # silently opened GET to any authenticated caller.
    from types import SimpleNamespace

    from django.core.exceptions import ImproperlyConfigured

    view = SimpleNamespace(required_scopes_map={"GET": READ, "get": ()})
    with pytest.raises(ImproperlyConfigured, match="GET"):
        HasScopes().get_requirement(SimpleNamespace(method="GET"), view)


# A careless integrator: the auth order, checked at start-up --------------------------------------


def test_a_bearer_auth_listed_after_another_is_a_system_check_warning(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    from django_duo_oidc.checks import check_api_auth_order

    wrong = NinjaAPI(urls_namespace="t-review15-wrong")

    @wrong.get("/either", auth=[django_auth, DuoBearer(scopes=READ)])
    def session_first(request: HttpRequest) -> dict[str, Any]:
        return {}

    @wrong.get("/right", auth=[DuoBearer(scopes=READ), django_auth])
    def bearer_first(request: HttpRequest) -> dict[str, Any]:
        return {}

    class SessionFirst(APIView):
        authentication_classes = [SessionAuthentication, DuoBearerAuthentication]
        permission_classes = [HasScopes]
        required_scopes = READ

    module = types.ModuleType("review15_wrong_urls")
    module.urlpatterns = [path("w/", wrong.urls), path("w/drf/", SessionFirst.as_view())]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    assert [m.id for m in check_api_auth_order()] == []  # the project's own URLconf: every bearer auth first
    settings.ROOT_URLCONF = module.__name__
    found = check_api_auth_order()
    assert [m.id for m in found] == ["duo_oidc.W160", "duo_oidc.W161"]
    assert "GET /w/either" in found[0].msg
    assert "SessionFirst" in found[1].msg


# The kit in a user's test database -----------------------------------------------------------------


def test_the_kit_over_a_users_own_provider_row_is_a_clear_error_that_leaves_nothing(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site whose data migration (or fixture) creates its real provider as "duo": the kit says so
    and how to step aside, instead of a bare IntegrityError that also breaks the test's transaction."""
    from django.core.exceptions import ImproperlyConfigured
    from django.db import connection

    from django_duo_oidc.testing import FakeDuo, fakeop
    from django_duo_oidc.testing.kit import SECRET_ENV

    monkeypatch.delenv(SECRET_ENV, raising=False)
    real = Provider.objects.create(slug="duo", name="Duo", issuer="https://sso-real.sso.duosecurity.com/oidc/DIREAL")
    before = fakeop.CURRENT
    with pytest.raises(ImproperlyConfigured, match="slug 'duo'"):
        FakeDuo().start()
    assert fakeop.CURRENT is before
    assert SECRET_ENV not in __import__("os").environ
    assert not connection.needs_rollback  # the test can go on using the database
    real.refresh_from_db()
    with FakeDuo(slug="duo-test") as duo:
        assert duo.provider.slug == "duo-test"
