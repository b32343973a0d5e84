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
