"""The second factor and the way a project wires it: URLs left out, the middleware in the wrong order, and
the cost of the middleware's check on the normal path (no query)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import include, path

from django_duo_oidc.mfa.views import MFALoginView
from django_duo_oidc.mfa.who import reset_config_memo
from django_duo_oidc.models import MFAConfiguration
from tests.integration.test_mfa_login import PASSWORD, SECRET_ENV, login

User = get_user_model()


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello")


def me(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.get_username() if request.user.is_authenticated else "anonymous")


# A project that uses the login view and the admin but forgot include("django_duo_oidc.urls").
urlpatterns = [path("login/", MFALoginView.as_view()), path("admin/", admin.site.urls), path("me/", me)]


# A project that did it right (for the query counts).
class complete:
    urlpatterns = [*urlpatterns, path("oidc/", include("django_duo_oidc.urls")), path("hello/", hello)]


pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _forget_config() -> Any:
    reset_config_memo()
    yield
    reset_config_memo()


@pytest.fixture
def config(fake_duo_universal: Any, monkeypatch: pytest.MonkeyPatch) -> MFAConfiguration:
    duo = fake_duo_universal
    monkeypatch.setenv(SECRET_ENV, duo.client_secret)
    return MFAConfiguration.objects.create(
        client_id=duo.client_id, client_secret_env=SECRET_ENV, api_host=duo.api_host, ca_certs=duo.ca_path
    )


@pytest.fixture
def alice() -> Any:
    return User.objects.create_user("alice", "alice@example.test", PASSWORD, is_staff=True)


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", ["/login/?next=/me/", "/admin/login/?next=/admin/"])
def test_urls_left_out_fail_closed_with_a_page_not_a_500(config: MFAConfiguration, alice: Any, url: str) -> None:
    client = Client(raise_request_exception=True)
    response = client.post(url, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 503
    assert b"callback URL is not set up" in response.content
    assert client.get("/me/").content == b"anonymous"


def test_middleware_before_authentication_still_ends_a_session_that_skipped_duo(
    config: MFAConfiguration, alice: Any, settings: Any
) -> None:
    duo_mw = "django_duo_oidc.middleware.DuoOIDCMiddleware"
    auth_mw = "django.contrib.auth.middleware.AuthenticationMiddleware"
    order = [m for m in settings.MIDDLEWARE if m not in (duo_mw, auth_mw)]
    order.insert(order.index("django.contrib.sessions.middleware.SessionMiddleware") + 1, duo_mw)
    settings.MIDDLEWARE = [*order, auth_mw]
    client = Client(raise_request_exception=True)
    client.force_login(alice, backend="django.contrib.auth.backends.ModelBackend")
    assert client.get("/me/").json() == {"authenticated": False}


def test_a_session_past_duo_costs_the_middleware_no_query(
    fake_duo_universal: Any, config: MFAConfiguration, alice: Any, settings: Any, long_lived_memos: None
) -> None:
    settings.ROOT_URLCONF = complete  # a URLconf may be any object with urlpatterns
    client = Client(raise_request_exception=True)
    assert login(client, fake_duo_universal, "alice", "/oidc/mfa/login/?next=/me/").status_code == 302
    reset_config_memo()  # the configuration is not in this process's memory: a read would show
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/hello/").content == b"hello"
    tables = " ".join(q["sql"] for q in queries.captured_queries)
    assert "mfaconfiguration" not in tables and "auth_user" not in tables, tables
    assert len(queries.captured_queries) <= 1  # the session itself (database session backend)


def test_code_deployed_before_migrate_serves_password_sessions(
    alice: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """Before ``migrate`` created the second factor's table it cannot be on: no 500 for every session."""
    from django.db import OperationalError
    from django.db.backends.base.introspection import BaseDatabaseIntrospection

    from django_duo_oidc.models import MFAConfigurationQuerySet

    def missing(self: Any) -> None:
        raise OperationalError("no such table: duo_oidc_mfaconfiguration")

    tables = BaseDatabaseIntrospection.table_names
    monkeypatch.setattr(MFAConfigurationQuerySet, "active", missing)
    monkeypatch.setattr(
        BaseDatabaseIntrospection,
        "table_names",
        lambda self, *a, **k: [t for t in tables(self, *a, **k) if t != "duo_oidc_mfaconfiguration"],
    )
    client = Client(raise_request_exception=True)
    client.force_login(alice, backend="django.contrib.auth.backends.ModelBackend")
    assert client.get("/me/").json()["authenticated"] is True
    assert "run manage.py migrate" in caplog.text


def test_a_failing_database_is_not_a_reason_to_skip_the_second_factor(
    alice: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from django.db import OperationalError

    from django_duo_oidc.models import MFAConfigurationQuerySet

    def failing(self: Any) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(MFAConfigurationQuerySet, "active", failing)
    client = Client(raise_request_exception=True)
    client.force_login(alice, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get("/me/")
    assert response.status_code == 503  # not the view, not a 500
    assert b"cannot check your login" in response.content
    assert "could not be checked for the second factor: OperationalError" in caplog.text


@pytest.mark.parametrize("with_config", [True, False])
def test_the_admin_login_stays_open_behind_login_required_middleware(
    request: Any, alice: Any, settings: Any, with_config: bool
) -> None:
    """Django marks AdminSite.login login_not_required and never_cache; the hook keeps both."""
    if with_config:
        request.getfixturevalue("config")
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.contrib.auth.middleware.LoginRequiredMiddleware"]
    response = Client(raise_request_exception=True).get("/admin/login/?next=/admin/")
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
