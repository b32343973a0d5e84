"""Adversarial review of issue 13 (Duo's Universal Prompt as the second factor after a password).

Each defect found has a test here that failed before its fix (named in the commit). The other tests pin
attacks the review tried that the merged code already withstands, through the real ``duo_universal`` SDK
and the fake Web SDK v4 server (no mock).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth import login as auth_login
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from django_duo_oidc import signals
from django_duo_oidc.mfa import checks as mfa_checks
from django_duo_oidc.mfa.checks import check_configuration, drf_password_paths
from django_duo_oidc.mfa.who import reset_config_memo
from django_duo_oidc.models import MFAConfiguration
from tests.conftest import captured
from tests.fakeop import FakeOP
from tests.integration.test_mfa_login import PASSWORD, SECRET_ENV, authenticated, callback, me, params, to_duo
from tests.urls import urlpatterns as test_urls

User = get_user_model()

# Views of this module (pytest.mark.urls) ----------------------------------------------------------


@csrf_exempt
def first_backend_login(request: HttpRequest) -> HttpResponse:
    """A careless integrator's own login view: the password, then ``auth.login`` with the first backend
    (``AUTHENTICATION_BACKENDS[0]``, the OIDC backend in the README's order), as snippets do when Django
    asks for a backend because several are configured."""
    user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
    if user is None:
        return HttpResponse("no", status=401)
    auth_login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
    return HttpResponse("in")


class CustomAdminSite(admin.AdminSite):
    """A project's own admin site that keeps Django's login (the hook is on ``AdminSite.login``)."""

    site_header = "Custom"


custom_site = CustomAdminSite(name="custom_admin")

urlpatterns = [
    *test_urls,
    path("t/first-backend-login/", first_backend_login),
    path("t/custom-admin/", custom_site.urls),
]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


# Fixtures (as tests/integration/test_mfa_login.py's) ------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    cache.clear()
    reset_config_memo()
    yield
    cache.clear()
    reset_config_memo()


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=True)


@pytest.fixture
def duo(fake_duo_universal: Any) -> Any:
    return fake_duo_universal


@pytest.fixture
def config(duo: Any, monkeypatch: pytest.MonkeyPatch) -> MFAConfiguration:
    monkeypatch.setenv(SECRET_ENV, duo.client_secret)
    return MFAConfiguration.objects.create(
        client_id=duo.client_id, client_secret_env=SECRET_ENV, api_host=duo.api_host, ca_certs=duo.ca_path
    )


@pytest.fixture
def alice() -> Any:
    return User.objects.create_user("alice", "alice@example.test", PASSWORD, is_staff=True)


@pytest.fixture
def mallory() -> Any:
    return User.objects.create_user("mallory", "mallory@example.test", PASSWORD)


@pytest.fixture
def failures() -> Iterator[list[dict[str, Any]]]:
    with captured(signals.second_factor_failed) as seen:
        yield seen


def oidc_login(client: Client, op: FakeOP) -> Any:
    response = client.get("/oidc/login/?provider=duo&next=/me/")
    assert response.status_code == 302, response.content
    return client.get("/oidc/callback/?" + op.authorize(response["Location"]))


# Defects ------------------------------------------------------------------------------------------


def test_a_password_login_labelled_with_the_sso_backend_gets_no_usable_session(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    """The exemption of Duo SSO sessions must rest on the OIDC login the session holds, not on the backend
    name that any ``auth.login(..., backend=...)`` call writes."""
    assert settings.AUTHENTICATION_BACKENDS[0] == "django_duo_oidc.backends.DuoOIDCBackend"
    response = client.post("/t/first-backend-login/", {"username": "alice", "password": PASSWORD})
    assert response.content == b"in"
    assert not authenticated(client)
    assert client.get("/admin/").status_code == 302
    assert [f["reason"] for f in failures] == ["no_second_factor"]


def test_a_real_duo_sso_login_is_not_asked_for_the_second_factor(
    client: Client, duo: Any, config: MFAConfiguration, fake_op: FakeOP, provider: Any
) -> None:
    """The other side of the fix above: a session logged in through the OIDC callback stays (Duo SSO
    carries Duo's own MFA), for a user who must use Duo (``who`` is "all")."""
    assert config.who == MFAConfiguration.Who.ALL
    assert oidc_login(client, fake_op)["Location"] == "/me/"
    assert me(client)["authenticated"] is True
    assert me(client)["authenticated"] is True  # and at the request after


class DefaultAuthAPI(APIView):
    """A DRF view as most are written, with DRF's default authentication classes (no REST_FRAMEWORK
    setting; named here because tests/settings.py sets them without BasicAuthentication)."""

    authentication_classes = [SessionAuthentication, BasicAuthentication]

    def get(self, request: Any) -> Response:
        return Response({"user": request.user.get_username()})


urlpatterns.append(path("t/drf-default/", DefaultAuthAPI.as_view()))


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_drfs_default_basic_authentication_takes_the_password_alone(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    """Why duo_oidc.W104 exists: DRF's default authentication classes include HTTP Basic, which takes the
    password on every request, with no session for the middleware to end and no way through Duo."""
    response = client.get("/t/drf-default/", HTTP_AUTHORIZATION=basic("alice", PASSWORD))
    assert response.json() == {"user": "alice"}
    assert not duo.stats()["health_checks"]


def test_drf_password_authentication_while_duo_is_on_is_a_finding(
    config: MFAConfiguration, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.REST_FRAMEWORK = {}  # DRF in use, its defaults: SessionAuthentication and BasicAuthentication
    assert "duo_oidc.W104" in [m.id for m in check_configuration(config)]
    settings.REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.BasicAuthentication"]}
    assert "duo_oidc.W104" in [m.id for m in check_configuration(config)]
    # obtain_auth_token trades a password for a token that never meets Duo (INSTALLED_APPS is not changed
    # here: that would reload the app registry)
    session_only = {"DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"]}
    authtoken = SimpleNamespace(
        INSTALLED_APPS=["rest_framework", "rest_framework.authtoken"], REST_FRAMEWORK=session_only
    )
    monkeypatch.setattr(mfa_checks, "settings", authtoken)
    assert [p.split(" ")[0] for p in drf_password_paths()] == ["rest_framework.authtoken"]


def test_drf_with_session_authentication_only_is_fine(config: MFAConfiguration, settings: Any) -> None:
    settings.REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"]
    }
    assert "duo_oidc.W104" not in [m.id for m in check_configuration(config)]
    config.enabled = False  # turned off: nothing to go around
    settings.REST_FRAMEWORK = {}
    assert "duo_oidc.W104" not in [m.id for m in check_configuration(config)]


# Attacks the merged code withstands ---------------------------------------------------------------


def test_the_attackers_own_duo_approval_cannot_finish_the_victims_login(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, mallory: Any, failures: list[dict[str, Any]]
) -> None:
    """Mallory knows alice's password but holds only her own Duo. She starts alice's login in one browser
    (the state is readable in the authorize URL's request JWT: signed, not encrypted), approves her own
    login in another, and brings her own duo_code to alice's attempt."""
    victim = to_duo(client, duo, "alice")
    state = jwt.decode(params(victim)["request"], options={"verify_signature": False})["state"]
    own = duo.approve(to_duo(Client(raise_request_exception=True), duo, "mallory"))
    response = client.get("/oidc/mfa/callback/", {"state": state, "duo_code": params(own)["duo_code"]})
    assert response.status_code == 502
    assert not authenticated(client)
    assert failures[-1]["reason"] == "invalid_token" and failures[-1]["user"] == alice
    assert duo.stats()["tokens"] == 1  # Duo redeemed it; the SDK refused the answer (preferred_username)


def test_a_custom_admin_site_keeps_duo(client: Client, duo: Any, config: MFAConfiguration, alice: Any) -> None:
    authorize = to_duo(client, duo, "alice", "/t/custom-admin/login/?next=/t/custom-admin/")
    assert client.get("/t/custom-admin/").status_code == 302
    assert callback(client, duo.approve(authorize))["Location"] == "/t/custom-admin/"
    assert client.get("/t/custom-admin/").status_code == 200
