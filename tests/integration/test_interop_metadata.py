"""Issue 14, interop defect 2 (and the endpoints of Duo's authorization servers): the introspection
endpoint was only read from OpenID discovery. django-oauth-toolkit publishes it only in its RFC 8414
metadata, so every opaque token was refused, and ``--check`` said "Discovery OK" all the same.

Now: RFC 8414 metadata supplements a discovery document without introspection, stands in for a
missing one (Duo's ``/oauth/<id>`` client-credentials servers), every endpoint can be set by hand,
and Check connection says what bearer validation will do."""

from __future__ import annotations

import io
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from django_duo_oidc.core.discovery import oauth_metadata_url
from django_duo_oidc.models import Provider
from django_duo_oidc.providers.connection import check_connection
from django_duo_oidc.providers.runtime import ProviderRuntime
from tests.fakeop import FakeOP

from .test_resource import get, issue

RFC8414 = oauth_metadata_url("https://sso-fake.sso.duosecurity.test/oidc/DIFAKECLIENT0000001")


def test_the_rfc8414_url_inserts_the_well_known_path_before_the_issuer_path() -> None:
    assert oauth_metadata_url("https://h.example/oauth/DI123") == (
        "https://h.example/.well-known/oauth-authorization-server/oauth/DI123"
    )
    assert oauth_metadata_url("https://h.example") == "https://h.example/.well-known/oauth-authorization-server"
    assert oauth_metadata_url("https://h.example:8443/") == (
        "https://h.example:8443/.well-known/oauth-authorization-server"
    )


def serve_rfc8414(fake_op: FakeOP, monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any] | None) -> list[str]:
    """Answer the RFC 8414 URL with ``doc`` (None: 404); return the list of paths asked for it."""
    asked: list[str] = []
    original = fake_op.handle

    def handle(request: requests.PreparedRequest) -> Any:
        if request.url == RFC8414:
            asked.append(request.url)
            if doc is None:
                return 404, {"error": "not_found"}, {}
            return 200, doc, {}
        return original(request)

    monkeypatch.setattr(fake_op, "handle", handle)
    return asked


def introspection_mode(provider: Provider) -> Provider:
    provider.access_token_validation = Provider.AccessTokenValidation.INTROSPECTION
    provider.save()
    return provider


def test_introspection_endpoint_from_rfc8414_metadata(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # django-oauth-toolkit: OpenID discovery without introspection, RFC 8414 metadata with it.
    fake_op.discovery_overrides["introspection_endpoint"] = None
    serve_rfc8414(
        fake_op, monkeypatch, {**fake_op.discovery(), "introspection_endpoint": f"{fake_op.issuer}/token_introspection"}
    )
    introspection_mode(provider)
    fake_op.access_token_format = "opaque"
    assert get(client, token=issue(fake_op)).status_code == 200  # was 503: "no provider introspects"
    assert fake_op.count("token_introspection") == 1


def test_rfc8414_metadata_of_another_issuer_is_not_used(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_op.discovery_overrides["introspection_endpoint"] = None
    serve_rfc8414(fake_op, monkeypatch, {"issuer": "https://evil.example", "token_endpoint": "https://evil.example/t",
                                         "introspection_endpoint": "https://evil.example/introspect"})  # fmt: skip
    assert ProviderRuntime(provider).metadata.introspection_endpoint is None


def test_a_discovery_with_introspection_asks_nothing_more(
    fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = serve_rfc8414(fake_op, monkeypatch, None)
    assert ProviderRuntime(provider).metadata.introspection_endpoint
    assert asked == []  # Duo's discovery lists introspection: no second request


def test_a_failing_rfc8414_supplement_leaves_discovery_working(
    fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_op.discovery_overrides["introspection_endpoint"] = None
    original = fake_op.handle

    def handle(request: requests.PreparedRequest) -> Any:
        if request.url == RFC8414:
            raise requests.ReadTimeout("slow")
        return original(request)

    monkeypatch.setattr(fake_op, "handle", handle)
    metadata = ProviderRuntime(provider).metadata
    assert metadata.token_endpoint and metadata.introspection_endpoint is None


def client_credentials_server(fake_op: FakeOP, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Duo's /oauth/<id> servers: no OpenID discovery, RFC 8414 metadata with token + JWKS, no login."""
    original = fake_op.handle

    def handle(request: requests.PreparedRequest) -> Any:
        if request.url and request.url.endswith("/.well-known/openid-configuration"):
            return 404, b"", {}
        return original(request)

    monkeypatch.setattr(fake_op, "handle", handle)
    doc = {"issuer": fake_op.issuer, "token_endpoint": f"{fake_op.issuer}/token", "jwks_uri": f"{fake_op.issuer}/jwks"}
    original2 = fake_op.handle
    asked: list[str] = []

    def handle2(request: requests.PreparedRequest) -> Any:
        if request.url == RFC8414:
            asked.append("rfc8414")
            return 200, doc, {}
        return original2(request)

    monkeypatch.setattr(fake_op, "handle", handle2)
    return asked


def test_a_server_with_only_rfc8414_metadata_validates_tokens(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_credentials_server(fake_op, monkeypatch)
    provider.access_token_validation = Provider.AccessTokenValidation.JWT
    provider.save()
    assert get(client, token=issue(fake_op)).status_code == 200


def test_login_at_a_server_without_authorization_endpoint_is_a_clear_error(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_credentials_server(fake_op, monkeypatch)
    response = client.get("/oidc/login/")
    assert response.status_code == 404  # no login page at a token-only server; was a 500
    assert b"authorization endpoint" in response.content


def test_endpoints_set_by_hand_when_nothing_is_published(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = serve_rfc8414(fake_op, monkeypatch, None)
    fake_op.faults[".well-known/openid-configuration"] = 404
    provider.token_endpoint = f"{fake_op.issuer}/token"
    provider.jwks_uri = f"{fake_op.issuer}/jwks"
    provider.access_token_validation = Provider.AccessTokenValidation.JWT
    provider.save()
    for _ in range(3):
        assert get(client, token=issue(fake_op)).status_code == 200
    # "Nothing published" is remembered for DISCOVERY_TTL: the issuer is not asked on every request.
    assert fake_op.calls.count(("GET", ".well-known/openid-configuration")) == 1
    assert len(asked) == 1


def test_an_endpoint_set_by_hand_wins_over_the_published_one(fake_op: FakeOP, provider: Provider) -> None:
    provider.introspection_endpoint = f"{fake_op.issuer}/other_introspection"
    provider.save()
    assert ProviderRuntime(provider).metadata.introspection_endpoint == f"{fake_op.issuer}/other_introspection"


def test_an_endpoint_that_receives_the_secret_follows_the_secret_rule(provider: Provider, settings: Any) -> None:
    from django.core.exceptions import ValidationError

    provider.token_endpoint = "https://elsewhere.example/token"
    with pytest.raises(ValidationError, match="endpoint receiving the secret"):
        provider.full_clean()
    provider.confirm_secret_for_connection()
    provider.full_clean()


def test_an_endpoint_must_be_http(provider: Provider) -> None:
    from django.core.exceptions import ValidationError

    provider.userinfo_endpoint = "ftp://h.example/userinfo"
    with pytest.raises(ValidationError):
        provider.full_clean()


def test_check_says_what_bearer_validation_will_do(fake_op: FakeOP, provider: Provider) -> None:
    report = check_connection(provider)
    assert report.ok, report.lines
    assert "Bearer tokens: automatic mode validates them as jwt+introspection." in report.lines
    fake_op.discovery_overrides["introspection_endpoint"] = None
    introspection_mode(provider)
    report = check_connection(provider)
    assert not report.ok
    assert any("every API call would be refused" in line for line in report.lines), report.lines


def test_check_command_fails_when_introspection_mode_cannot_work(fake_op: FakeOP, provider: Provider) -> None:
    fake_op.discovery_overrides["introspection_endpoint"] = None
    with pytest.raises(CommandError):
        call_command(
            "duo_oidc_provider", "duo", "--access-token-validation", "introspection", "--check", stdout=io.StringIO()
        )
