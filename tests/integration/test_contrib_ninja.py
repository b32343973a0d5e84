"""Django Ninja: DuoBearer and install_error_handlers, through Ninja's own TestClient and through
Django's test client on the API mounted at /t/ninja/ (tests/urls.py). Every answer is the one the
package's other bearer views give (RFC 6750 section 3, RFC 9728 section 5.1, RFC 9470 section 3)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from django.test import Client, RequestFactory
from ninja import NinjaAPI
from ninja.security import django_auth
from ninja.testing import TestClient

from django_duo_oidc import signals
from django_duo_oidc.contrib.ninja import BearerRefused, DuoBearer, install_error_handlers
from django_duo_oidc.models import Provider
from django_duo_oidc.resource import registry
from tests import urls
from tests.conftest import StillClock, captured
from tests.fakeop import FakeOP

from .test_hardening_cache_outage import DownCache, use_cache
from .test_login_views import login
from .test_resource import BARE, EXPIRED, INVALID, issue, link

pytestmark = pytest.mark.django_db


def through(via: str, header: str) -> str:
    """Ninja's TestClient answers build_absolute_uri with http://testlocation/...: so does the pointer."""
    return header.replace("http://testserver/", "http://testlocation/") if via == "ninja" else header


NARROW = (
    BARE + ', error="insufficient_scope", error_description="The access token does not carry the scope this '
    'resource requires.", scope="crm.contacts.read"'
)


def ninja_get(path: str, token: str | None = None, *, api: NinjaAPI = urls.ninja_api, **headers: str) -> Any:
    """A GET through Ninja's TestClient (no URLconf, no middleware: the operation itself).

    Its request has no SERVER_NAME (which Django's get_host needs for the challenge's realm and
    resource_metadata), so one is given, as WSGI and ASGI servers always do."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    meta = {"REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "testserver", "SERVER_PORT": "80"}
    return TestClient(api).get(path, headers=headers, META=meta)


def get(client: Client, path: str, token: str | None = None, **extra: Any) -> Any:
    """A GET through Django's test client on the mounted API."""
    if token is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.get(f"/t/ninja{path}", **extra)


@pytest.fixture
def jwt_mode(provider: Provider) -> Provider:
    provider.access_token_validation = Provider.AccessTokenValidation.JWT
    provider.save()
    return provider


def client_token(op: FakeOP, scope: str = "crm.contacts.read") -> str:
    status, payload, _ = op.client_credentials_grant({"scope": scope})
    assert status == 200
    return str(payload["access_token"])


# Acceptance ---------------------------------------------------------------------------------------


def test_a_valid_token_through_ninjas_test_client(fake_op: FakeOP, provider: Provider) -> None:
    link(provider)
    response = ninja_get("/read", issue(fake_op))
    assert response.status_code == 200
    assert response.json() == {
        "is_client": False,
        "sub": "alice-sub",
        "client_id": fake_op.client_id,
        "user": "alice",
        "scopes": ["crm.contacts.read"],
    }


def test_a_valid_token_through_the_mounted_api(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    link(provider)
    response = get(client, "/any", issue(fake_op, scope="email"))
    assert response.status_code == 200
    body = response.json()
    assert (body["user"], body["auth"], body["scopes"]) == ("alice", "BearerContext", ["email"])


def test_a_client_credentials_token_is_a_client_never_a_user(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    link(provider, sub=fake_op.client_id, username="impostor")
    body = get(client, "/read", client_token(fake_op)).json()
    assert body["is_client"] is True
    assert body["user"] is None


def test_an_async_operation(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    link(provider)
    response = get(client, "/async", issue(fake_op, scope="crm.contacts.write"))  # any_of
    assert response.status_code == 200
    assert response.json() == {"user": "alice", "scopes": ["crm.contacts.write"]}
    assert get(client, "/async", issue(fake_op, scope="email")).status_code == 403


def test_post_needs_no_csrf_token_with_a_bearer_header(fake_op: FakeOP, provider: Provider) -> None:
    csrf_client = Client(enforce_csrf_checks=True)
    token = issue(fake_op, scope="crm.contacts.write")
    assert csrf_client.post("/t/ninja/write", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    narrow = csrf_client.post("/t/ninja/write", HTTP_AUTHORIZATION=f"Bearer {issue(fake_op)}")
    assert narrow.status_code == 403


def test_the_openapi_schema_names_a_bearer_scheme() -> None:
    schema = urls.ninja_api.get_openapi_schema()
    assert schema["components"]["securitySchemes"]["DuoBearer"] == {"type": "http", "scheme": "bearer"}


# Refusals: the same answers as @bearer_auth -------------------------------------------------------


@pytest.mark.parametrize("via", ["ninja", "django"])
def test_no_credentials_is_401_with_the_bare_challenge(client: Client, provider: Provider, via: str) -> None:
    response = ninja_get("/read") if via == "ninja" else get(client, "/read")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == through(via, BARE)  # RFC 6750 section 3: no error code without credentials
    assert response.json() == {"error_description": "This resource needs a bearer access token."}


@pytest.mark.parametrize("via", ["ninja", "django"])
def test_an_invalid_token_is_401_invalid_token(client: Client, fake_op: FakeOP, provider: Provider, via: str) -> None:
    forged = issue(fake_op, register=False)
    response = ninja_get("/read", forged) if via == "ninja" else get(client, "/read", forged)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == through(via, INVALID)
    assert response.json() == {"error": "invalid_token", "error_description": "The access token is not valid."}
    assert response["Cache-Control"] == "no-store"


def test_an_expired_token(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    response = get(client, "/any", issue(fake_op, ttl=-120))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == EXPIRED


@pytest.mark.parametrize("via", ["ninja", "django"])
def test_a_token_without_the_scope_is_403_insufficient_scope(
    client: Client, fake_op: FakeOP, provider: Provider, via: str
) -> None:
    narrow = issue(fake_op, scope="email")
    with captured(signals.scope_denied) as denied:
        response = ninja_get("/read", narrow) if via == "ninja" else get(client, "/read", narrow)
    assert response.status_code == 403
    assert response["WWW-Authenticate"] == through(via, NARROW)
    assert response.json()["error"] == "insufficient_scope"
    assert len(denied) == 1


def test_a_client_token_without_the_scope_is_refused(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    assert get(client, "/read", client_token(fake_op, scope="email")).status_code == 403


def test_a_malformed_header_is_400_invalid_request(client: Client, provider: Provider) -> None:
    response = client.get("/t/ninja/any", HTTP_AUTHORIZATION="Bearer a b")
    assert response.status_code == 400
    assert 'error="invalid_request"' in response["WWW-Authenticate"]


def test_a_token_in_the_query_is_refused_not_ignored(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    # RFC 9700 section 2.5: no tokens in URLs; Ninja's HttpBearer would ignore it, this refuses it.
    response = client.get("/t/ninja/any", {"access_token": issue(fake_op)})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    header_too = get(client, "/any?access_token=x", issue(fake_op))
    assert header_too.status_code == 400


def test_a_token_in_a_form_body_is_refused(fake_op: FakeOP, provider: Provider) -> None:
    token = issue(fake_op, scope="crm.contacts.write")
    form = "application/x-www-form-urlencoded"  # RFC 6750 section 2.2's form-encoded body parameter
    response = Client(enforce_csrf_checks=True).post("/t/ninja/write", f"access_token={token}", content_type=form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    # In a multipart body it is no credential at all: the bare challenge.
    multipart = Client(enforce_csrf_checks=True).post("/t/ninja/write", {"access_token": token})
    assert multipart.status_code == 401
    assert multipart["WWW-Authenticate"] == BARE


def test_another_scheme_is_no_bearer_credentials(client: Client, provider: Provider) -> None:
    response = client.get("/t/ninja/any", HTTP_AUTHORIZATION="Basic YWxpY2U6cHc=")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == BARE


def test_an_inactive_linked_user_is_refused(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    link(provider, is_active=False)
    assert get(client, "/any", issue(fake_op)).status_code == 401


def test_a_too_old_authentication_asks_for_a_new_one(client: Client, fake_op: FakeOP, jwt_mode: Provider) -> None:
    old = issue(fake_op, auth_time=int(time.time()) - 3600)
    response = get(client, "/recent", old)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].endswith(
        'error="insufficient_user_authentication", '
        'error_description="A more recent authentication is required.", max_age="300"'
    )
    assert get(client, "/recent", issue(fake_op, auth_time=int(time.time()) - 10)).status_code == 200
    # A token without auth_time (a client's) never meets max_age.
    assert get(client, "/recent", issue(fake_op)).status_code == 401


def test_a_revoked_or_narrowed_token_is_refused_at_its_next_check(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0}
    narrowed, revoked = issue(fake_op, scope="crm.contacts.read email"), issue(fake_op, sub="bob-sub")
    assert get(client, "/read", narrowed).status_code == 200
    assert get(client, "/read", revoked).status_code == 200
    fake_op.narrow("alice-sub", "email")
    fake_op.revoke_token(revoked)
    assert get(client, "/read", narrowed).status_code == 403
    replayed = get(client, "/read", revoked)
    assert replayed.status_code == 401
    assert replayed["WWW-Authenticate"] == INVALID


# Failing infrastructure -----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["down", "timeout", 500, "garbage"])
def test_provider_down_is_503_with_retry_after(client: Client, fake_op: FakeOP, provider: Provider, fault: Any) -> None:
    fake_op.faults["token_introspection"] = fault
    response = get(client, "/read", issue(fake_op))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response["Retry-After"]) >= 1


def test_provider_down_at_revalidation_follows_on_provider_down(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0}
    token = issue(fake_op)
    assert get(client, "/read", token).status_code == 200
    fake_op.faults["token_introspection"] = "down"
    assert get(client, "/read", token).status_code == 503  # "deny", the default
    settings.DUO_OIDC = {**settings.DUO_OIDC, "ON_PROVIDER_DOWN": "allow", "PROVIDER_DOWN_BACKOFF": 0}
    assert get(client, "/read", token).status_code == 200  # the admin's opt-in: the last confirmed grant


def test_a_flood_of_one_refused_token_asks_the_provider_once(
    client: Client, fake_op: FakeOP, provider: Provider, still_clock: StillClock
) -> None:
    forged = issue(fake_op, register=False)
    for _ in range(20):
        assert get(client, "/read", forged).status_code == 401
    assert fake_op.count("token_introspection") == 1


def test_the_cache_down_is_503_never_a_500_nor_a_pass(fake_op: FakeOP, provider: Provider, settings: Any) -> None:
    client = Client(raise_request_exception=True)  # an escaping exception fails the test
    link(provider)
    token = issue(fake_op)
    assert get(client, "/read", token).status_code == 200
    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0}
    use_cache(settings, DownCache)
    registry._registry.expires = 0.0
    response = get(client, "/read", token)
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1


# Combined with other auths ------------------------------------------------------------------------


def test_a_session_passes_the_next_auth_but_never_stands_in_for_a_refused_token(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope="openid email crm.contacts.read")
    # No bearer credentials: DuoBearer steps aside and Ninja's django_auth admits the session, which has
    # the operation's scope (without it, it is refused: test_review_issue15.py).
    assert get(client, "/either").json() == {"user": "alice@example.test", "auth": "SimpleLazyObject"}  # the user
    # A token that was sent and refused is the answer, whatever the session.
    assert get(client, "/either", issue(fake_op, register=False)).status_code == 401
    assert get(client, "/either", issue(fake_op, scope="email")).status_code == 403
    # The session does not open an operation that only takes tokens.
    assert get(client, "/read").status_code == 401


def test_another_auths_401_is_left_as_it_was() -> None:
    api = install_error_handlers(NinjaAPI(urls_namespace="t-ninja-other"))

    @api.get("/session", auth=django_auth)
    def session_only(request: Any) -> dict[str, str]:
        return {}

    response = ninja_get("/session", api=api)
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}
    assert not response.has_header("WWW-Authenticate")


# A careless integrator -------------------------------------------------------------------------


def test_without_install_error_handlers_a_refusal_stays_a_refusal(fake_op: FakeOP, provider: Provider) -> None:
    api = NinjaAPI(auth=DuoBearer(scopes="crm.contacts.read"), urls_namespace="t-ninja-bare")

    @api.get("/read")
    def read(request: Any) -> dict[str, str]:
        return {"served": "yes"}

    assert ninja_get("/read", issue(fake_op), api=api).json() == {"served": "yes"}
    for token, status in ((None, 401), (issue(fake_op, register=False), 401), (issue(fake_op, scope="email"), 403)):
        response = ninja_get("/read", token, api=api)
        assert response.status_code == status
        assert "served" not in response.json()
    fake_op.faults["token_introspection"] = "down"
    assert ninja_get("/read", issue(fake_op), api=api).status_code == 503


def test_bearer_refused_is_a_ninja_http_error() -> None:
    from ninja.errors import HttpError

    assert issubclass(BearerRefused, HttpError)
    assert repr(DuoBearer(scopes="b a", max_age=5)) == "<DuoBearer scopes=['a', 'b'] any_of=False max_age=5>"


def test_the_class_instead_of_an_instance_fails_closed(fake_op: FakeOP, provider: Provider) -> None:
    # auth=DuoBearer: Ninja calls DuoBearer(request). Before scopes became keyword-only that built a
    # DuoBearer from the request's (empty) body, a truthy "auth": every GET was served unauthenticated.
    api = NinjaAPI(auth=DuoBearer, urls_namespace="t-ninja-class")  # type: ignore[arg-type]

    @api.get("/read")
    def read(request: Any) -> dict[str, str]:
        return {"served": "yes"}

    with pytest.raises(TypeError):
        ninja_get("/read", api=api)
    with pytest.raises(TypeError):
        DuoBearer(RequestFactory().get("/"))  # type: ignore[misc]


# Logs ---------------------------------------------------------------------------------------------


def test_refusals_are_logged_and_the_token_never_is(
    client: Client, fake_op: FakeOP, jwt_mode: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="django_duo_oidc")
    narrow, wrong = issue(fake_op, scope="email"), issue(fake_op, aud="elsewhere")
    get(client, "/read", narrow)
    get(client, "/read", wrong)
    messages = [r.getMessage() for r in caplog.records]
    assert any("Scope denied: bearer sub alice-sub" in m for m in messages)
    assert any("InvalidClaim" in m and "claim aud" in m for m in messages)
    for token in (narrow, wrong):
        assert all(token.split(".")[2] not in m for m in messages)
