"""DRF: HasScopes.required_scopes_map (scopes per HTTP method), required_max_age (step-up), and
IsAuthenticatedCaller (a client-credentials caller passes; DRF's IsAuthenticated keeps meaning "a user").
Views in tests/urls.py: /t/drf/methods/, /t/drf/recent/, /t/drf/users-only/, /t/drf/callers/, /t/drf/both/."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from django_duo_oidc import signals
from django_duo_oidc.contrib.drf import HasScopes
from django_duo_oidc.core.scopes import Requirement
from django_duo_oidc.models import Provider
from django_duo_oidc.resource import registry
from tests.conftest import captured
from tests.fakeop import FakeOP

from .test_hardening_cache_outage import DownCache, use_cache
from .test_login_views import login
from .test_policy import age_session
from .test_resource import BARE, INVALID, issue, link

pytestmark = pytest.mark.django_db

METHODS = "/t/drf/methods/"
READ, WRITE = "crm.contacts.read", "crm.contacts.write"


def call(client: Client, method: str, path: str = METHODS, token: str | None = None) -> Any:
    extra = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return getattr(client, method.lower())(path, **extra)


def client_token(op: FakeOP, scope: str = READ) -> str:
    status, payload, _ = op.client_credentials_grant({"scope": scope})
    assert status == 200
    return str(payload["access_token"])


@pytest.fixture
def jwt_mode(provider: Provider) -> Provider:
    provider.access_token_validation = Provider.AccessTokenValidation.JWT
    provider.save()
    return provider


# required_scopes_map --------------------------------------------------------------------------------


def test_each_method_is_judged_on_its_own_scopes(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    read, write = issue(fake_op, scope=READ), issue(fake_op, scope=WRITE)
    assert call(client, "GET", token=read).json()["method"] == "GET"
    assert call(client, "POST", token=write).json()["method"] == "POST"  # the map's "post" key: any case
    refused = call(client, "GET", token=write)
    assert refused.status_code == 403
    assert refused["WWW-Authenticate"].endswith(
        f'error="insufficient_scope", error_description="The access token '
        f'does not carry the scope this resource requires.", scope="{READ}"'
    )
    assert refused.json()["error"] == "insufficient_scope"
    post = call(client, "POST", token=read)
    assert post.status_code == 403
    assert post["WWW-Authenticate"].endswith(f'scope="{WRITE}"')


def test_a_method_the_map_does_not_name_is_refused_never_allowed(
    client: Client, fake_op: FakeOP, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    everything = issue(fake_op, scope=f"{READ} {WRITE} openid email")
    with caplog.at_level(logging.WARNING, logger="django_duo_oidc"):
        put = call(client, "PUT", token=everything)  # the view implements put(); the map omits it
    assert put.status_code == 403
    assert put.json() == {"detail": "This method is not available on this resource."}
    assert "required_scopes_map does not name the method" in caplog.text
    assert call(client, "PATCH", token=everything).status_code == 403  # not implemented either
    assert call(client, "PUT", token=client_token(fake_op, f"{READ} {WRITE}")).status_code == 403
    # Without credentials the answer is still the 401 challenge (authentication comes first).
    anonymous = call(client, "PUT")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == BARE


def test_head_takes_gets_requirement(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    assert call(client, "HEAD", token=issue(fake_op, scope=READ)).status_code == 200
    assert call(client, "HEAD", token=issue(fake_op, scope=WRITE)).status_code == 403


def test_options_is_open_to_callers_only_because_the_map_says_so(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    assert call(client, "OPTIONS", token=issue(fake_op, scope="email")).status_code == 200  # "OPTIONS": ()
    assert call(client, "OPTIONS").status_code == 401
    assert call(client, "OPTIONS", token=issue(fake_op, register=False))["WWW-Authenticate"] == INVALID


def test_head_and_options_without_entries_are_refused() -> None:
    view = SimpleNamespace(required_scopes_map={"POST": WRITE, "PUT": None})
    for method in ("HEAD", "OPTIONS", "GET", "TRACE", "PUT"):
        assert HasScopes().get_requirement(SimpleNamespace(method=method), view) is None
    assert HasScopes().get_requirement(SimpleNamespace(method="post"), view) == Requirement.of(WRITE)


def test_map_values_take_the_views_any_of_and_max_age_unless_a_requirement() -> None:
    view = SimpleNamespace(
        required_scopes_map={"GET": [READ, WRITE], "DELETE": Requirement.of("admin")},
        scopes_any_of=True,
        required_max_age=60,
    )
    get = HasScopes().get_requirement(SimpleNamespace(method="GET"), view)
    assert get == Requirement(frozenset({READ, WRITE}), True, 60)
    assert HasScopes().get_requirement(SimpleNamespace(method="DELETE"), view) == Requirement.of("admin")


def test_both_attributes_or_a_map_that_is_not_a_mapping_is_a_configuration_error(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    with pytest.raises(ImproperlyConfigured, match="BothAttributesAPI sets both required_scopes and"):
        call(client, "GET", "/t/drf/both/", issue(fake_op))
    with pytest.raises(ImproperlyConfigured, match=r"Listed\.required_scopes_map must map HTTP methods"):
        HasScopes().get_requirement(
            SimpleNamespace(method="GET"), type("Listed", (), {"required_scopes_map": [READ]})()
        )
    with pytest.raises(ImproperlyConfigured, match="sets neither required_scopes nor required_scopes_map"):
        HasScopes().get_requirement(SimpleNamespace(method="GET"), SimpleNamespace())


def test_a_session_is_judged_per_method_too(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=f"openid {READ}")
    assert client.get(METHODS).status_code == 200
    with captured(signals.scope_denied):
        post = client.post(METHODS)
    assert post.status_code == 403
    assert post.json() == {"detail": f"Missing scopes: {WRITE}."}


def test_a_scope_narrowed_at_the_provider_closes_its_method_only(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0}
    token = issue(fake_op, scope=f"{READ} {WRITE}")
    assert call(client, "POST", token=token).status_code == 200
    fake_op.narrow("alice-sub", READ)
    assert call(client, "POST", token=token).status_code == 403
    assert call(client, "GET", token=token).status_code == 200


# Step-up: required_max_age ---------------------------------------------------------------------------


def test_a_bearer_token_from_an_old_authentication_is_asked_for_a_new_one(
    client: Client, fake_op: FakeOP, jwt_mode: Provider
) -> None:
    old = issue(fake_op, auth_time=int(time.time()) - 3600)
    response = call(client, "GET", "/t/drf/recent/", old)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == (
        BARE + ', error="insufficient_user_authentication", '
        'error_description="A more recent authentication is required.", max_age="300"'
    )
    assert response.json() == {
        "error": "insufficient_user_authentication",
        "error_description": "A more recent authentication is required.",
        "max_age": 300,
    }
    assert call(client, "GET", "/t/drf/recent/", issue(fake_op, auth_time=int(time.time()) - 10)).status_code == 200
    assert call(client, "GET", "/t/drf/recent/", issue(fake_op)).status_code == 401  # no auth_time: never recent


def test_a_requirement_in_the_map_carries_its_own_max_age(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    old = issue(fake_op, scope=WRITE, auth_time=int(time.time()) - 3600)
    assert call(client, "POST", token=old).status_code == 200  # POST has no max_age
    delete = call(client, "DELETE", token=old)
    assert delete.status_code == 401
    assert delete["WWW-Authenticate"].endswith('max_age="300"')
    assert call(client, "DELETE", token=issue(fake_op, scope=WRITE, auth_time=int(time.time()))).status_code == 200


def test_a_client_token_never_meets_max_age(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    assert call(client, "GET", "/t/drf/recent/", client_token(fake_op)).status_code == 401


def test_a_session_from_an_old_login_is_told_where_to_step_up(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=f"openid {READ}")
    assert client.get("/t/drf/recent/").status_code == 200  # the fake's auth_time is 5 s ago
    age_session(client, auth_time=time.time() - 3600)
    response = client.get("/t/drf/recent/")
    assert response.status_code == 403  # an API does not redirect; SessionAuthentication has no challenge
    assert response.json() == {
        "error": "insufficient_user_authentication",
        "error_description": "A more recent authentication is required.",
        "max_age": 300,
        # api_path: the step-up opens this API once too (test_step_up_followups).
        "step_up_url": "/oidc/login/?max_age=300&prompt=login&provider=duo&api_path=%2Ft%2Fdrf%2Frecent%2F",
    }


# A client-credentials caller ---------------------------------------------------------------------


def test_a_client_token_passes_is_authenticated_caller(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    body = call(client, "GET", "/t/drf/callers/", client_token(fake_op)).json()
    assert (body["is_client"], body["user"], body["client_id"]) == (True, None, fake_op.client_id)


def test_a_client_token_is_refused_on_a_user_only_endpoint(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    # DRF's IsAuthenticated keeps meaning "a user", even for a client holding every scope.
    response = call(client, "GET", "/t/drf/users-only/", client_token(fake_op, f"{READ} {WRITE}"))
    assert response.status_code == 403
    link(provider)
    assert call(client, "GET", "/t/drf/users-only/", issue(fake_op)).json()["user"] == "alice"


def test_is_authenticated_caller_admits_users_and_refuses_the_rest(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    link(provider)
    assert call(client, "GET", "/t/drf/callers/", issue(fake_op, scope="email")).json()["user"] == "alice"
    anonymous = call(client, "GET", "/t/drf/callers/")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == BARE
    assert call(client, "GET", "/t/drf/callers/", issue(fake_op, register=False)).status_code == 401
    link(provider, sub="bob-sub", username="bob", is_active=False)
    assert call(client, "GET", "/t/drf/callers/", issue(fake_op, sub="bob-sub")).status_code == 401
    login(client, fake_op)
    assert call(client, "GET", "/t/drf/callers/").json()["user"] == "alice@example.test"


# The provider down or stale ----------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["down", "timeout", 500, "garbage"])
def test_provider_down_is_503_with_retry_after(client: Client, fake_op: FakeOP, provider: Provider, fault: Any) -> None:
    fake_op.faults["token_introspection"] = fault
    response = call(client, "GET", token=issue(fake_op))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response["Retry-After"]) >= 1


def test_the_cache_down_is_503_never_a_500_nor_a_pass(fake_op: FakeOP, provider: Provider, settings: Any) -> None:
    client = Client(raise_request_exception=True)  # an escaping exception fails the test
    token = issue(fake_op)
    assert call(client, "GET", token=token).status_code == 200
    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0}
    use_cache(settings, DownCache)
    registry._registry.expires = 0.0
    for path in (METHODS, "/t/drf/callers/"):
        response = call(client, "GET", path, token)
        assert response.status_code == 503, path
        assert int(response["Retry-After"]) >= 1


def test_a_stale_bearer_grant_follows_on_provider_down(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    # Fails before the fix: HasScopes refused every stale grant (503) even with ON_PROVIDER_DOWN
    # "allow", where @bearer_auth views serve the last confirmed grant.
    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0}
    token = issue(fake_op)
    assert call(client, "GET", token=token).status_code == 200
    fake_op.faults["token_introspection"] = "down"
    denied = call(client, "GET", token=token)
    assert denied.status_code == 503  # "deny", the default
    assert int(denied["Retry-After"]) >= 1
    settings.DUO_OIDC = {**settings.DUO_OIDC, "ON_PROVIDER_DOWN": "allow", "PROVIDER_DOWN_BACKOFF": 0}
    assert call(client, "GET", token=token).status_code == 200
    assert call(client, "GET", "/t/bearer/drf/", token).status_code == 200
    assert call(client, "POST", token=token).status_code == 403  # stale, and still never wider


def test_a_stale_session_follows_on_provider_down(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    # Fails before the fix: with ON_PROVIDER_DOWN "allow" HasScopes answered 503 where
    # @scopes_required serves the session's last confirmed grant.
    login(client, fake_op, scope=f"openid {READ}")
    fake_op.faults["token_introspection"] = "down"
    age_session(client)
    assert client.get(METHODS).status_code == 503
    settings.DUO_OIDC = {**settings.DUO_OIDC, "ON_PROVIDER_DOWN": "allow", "PROVIDER_DOWN_BACKOFF": 0}
    age_session(client)
    assert client.get(METHODS).status_code == 200
    assert client.get("/t/drf/").status_code == 200
    assert client.post(METHODS).status_code == 403
