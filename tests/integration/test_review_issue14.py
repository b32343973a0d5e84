"""Adversarial review of issue 14 as merged: each test here failed before its fix."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from django_duo_oidc.core.discovery import oauth_metadata_url
from django_duo_oidc.core.errors import DiscoveryError
from django_duo_oidc.models import Provider
from django_duo_oidc.providers.runtime import ProviderRuntime
from tests.fakeop import FakeOP

RFC8414 = oauth_metadata_url("https://sso-fake.sso.duosecurity.test/oidc/DIFAKECLIENT0000001")
HTML_404 = b"<!doctype html><html><head><title>Not Found</title></head><body><h1>Not Found</h1></body></html>"


def no_openid_discovery(fake_op: FakeOP, monkeypatch: pytest.MonkeyPatch, rfc8414: Any) -> None:
    """OpenID discovery answers an HTML 404 (a web server's stock page); RFC 8414 answers ``rfc8414``."""
    original = fake_op.handle

    def handle(request: requests.PreparedRequest) -> Any:
        if request.url and request.url.endswith("/.well-known/openid-configuration"):
            return 404, HTML_404, {"Content-Type": "text/html"}
        if request.url == RFC8414:
            return rfc8414 if isinstance(rfc8414, tuple) else (200, rfc8414, {})
        return original(request)

    monkeypatch.setattr(fake_op, "handle", handle)


def test_rfc8414_fallback_after_an_html_404(
    fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = {"issuer": fake_op.issuer, "token_endpoint": f"{fake_op.issuer}/token", "jwks_uri": f"{fake_op.issuer}/jwks"}
    no_openid_discovery(fake_op, monkeypatch, doc)
    assert ProviderRuntime(provider).metadata.token_endpoint == f"{fake_op.issuer}/token"


def test_endpoints_by_hand_after_html_404s(
    fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_openid_discovery(fake_op, monkeypatch, (404, HTML_404, {"Content-Type": "text/html"}))
    provider.token_endpoint = f"{fake_op.issuer}/token"
    provider.jwks_uri = f"{fake_op.issuer}/jwks"
    provider.save()
    assert ProviderRuntime(provider).metadata.token_endpoint == f"{fake_op.issuer}/token"


def test_a_refused_discovery_is_not_remembered_as_nothing_published(
    client: Any, fake_op: FakeOP, provider: Provider
) -> None:
    # The documented workaround for a provider that lists introspection nowhere: set it by hand.
    provider.introspection_endpoint = f"{fake_op.issuer}/token_introspection"
    provider.save()
    # A gateway refuses the discovery request once (JSON 403): that is not "the issuer publishes nothing".
    fake_op.faults[".well-known/openid-configuration"] = 403
    with pytest.raises(DiscoveryError):
        ProviderRuntime(provider).metadata  # noqa: B018
    del fake_op.faults[".well-known/openid-configuration"]
    # Before the fix the failure was cached for DISCOVERY_TTL as "nothing published": no authorization
    # endpoint (login answered 404), no token endpoint (a renewal ended the session), no JWKS.
    metadata = ProviderRuntime(provider).metadata
    assert metadata.authorization_endpoint == f"{fake_op.issuer}/authorize"
    assert metadata.token_endpoint == f"{fake_op.issuer}/token"
    assert client.get("/oidc/login/").status_code == 302


# RFC 8707 resource indicators with a login that reads userinfo ------------------------------------
# The code exchange then names no resource (a token for the API would be refused at userinfo), so
# the login's access token is the provider's: its audience is not the API's. Before the fix it was
# handed out as "the user's token for the API" until it came due (up to its whole lifetime): an API
# that checks its audience (RFC 8707 section 2, RFC 9068 section 4) refused it, and the 401's forced
# renewal is not done for a token younger than MIN_FORCED_RENEWAL_AGE (the first call after a login
# failed); an API that does not check received a token good at the provider's userinfo endpoint,
# which is what resource indicators exist to prevent.


def act(client: Any) -> Any:
    from .test_act_for_user import HANDED_OUT

    HANDED_OUT.clear()
    response = client.get("/t/act/token/")
    return response, list(HANDED_OUT)


@pytest.fixture
def api_resource(provider: Provider, fake_op: FakeOP) -> Provider:
    fake_op.access_token_format = "opaque"
    provider.resource_indicators = "urn:crm"
    provider.save()
    return provider


@pytest.mark.urls("tests.integration.test_act_for_user")
def test_the_first_token_handed_out_after_a_userinfo_login_is_for_the_resource(
    client: Any, fake_op: FakeOP, api_resource: Provider
) -> None:
    from .test_act_for_user import login, stored_tokens

    login(client, fake_op, scope="openid email profile crm.contacts.read")
    login_token, _ = stored_tokens(client)
    assert "resource" not in fake_op.token_requests[-1]  # the exchange: userinfo must accept the token
    response, handed = act(client)
    assert response.status_code == 200
    assert handed and handed[0] != login_token
    assert fake_op.token_requests[-1]["grant_type"] == ["refresh_token"]
    assert fake_op.token_requests[-1]["resource"] == ["urn:crm"]
    # Once renewed for the resource, no more renewals until it is due.
    calls = len(fake_op.token_requests)
    assert act(client)[1] == handed
    assert len(fake_op.token_requests) == calls


@pytest.mark.urls("tests.integration.test_act_for_user")
def test_without_userinfo_the_login_token_is_already_for_the_resource(
    client: Any, fake_op: FakeOP, api_resource: Provider
) -> None:
    from .test_act_for_user import login, stored_tokens

    api_resource.use_userinfo = False
    api_resource.save()
    login(client, fake_op, scope="openid email profile crm.contacts.read")
    login_token, _ = stored_tokens(client)
    calls = len(fake_op.token_requests)
    assert act(client)[1] == [login_token]
    assert len(fake_op.token_requests) == calls


@pytest.mark.urls("tests.integration.test_act_for_user")
def test_provider_down_the_login_token_is_not_handed_out_instead(
    client: Any, fake_op: FakeOP, api_resource: Provider
) -> None:
    from .test_act_for_user import login, me

    login(client, fake_op, scope="openid email profile crm.contacts.read")
    fake_op.faults["token"] = "down"
    response, handed = act(client)
    assert response.status_code == 503 and handed == []
    assert me(client)["authenticated"]  # an outage ends nobody's session
    assert client.session["duo_oidc"]["renew_before_use"] is True  # still to be renewed when it can be


@pytest.mark.urls("tests.integration.test_act_for_user")
def test_no_refresh_token_to_get_one_for_the_resource_is_a_clear_error_not_a_login_loop(
    client: Any, fake_op: FakeOP, api_resource: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    from .test_act_for_user import login, me

    fake_op.issue_refresh_tokens = False
    login(client, fake_op, scope="openid email profile crm.contacts.read")
    response, handed = act(client)
    assert response.status_code == 503 and handed == []
    assert me(client)["authenticated"]  # ending the session would send the user through the same login again
    assert "no refresh token" in caplog.text
