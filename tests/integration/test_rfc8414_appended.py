"""RFC 8414 metadata at the appended URL (``<issuer>/.well-known/oauth-authorization-server``), where
django-oauth-toolkit mounted under ``/o/`` serves it: section 3.1's path-inserted URL is tried first,
then that one (the issue-14 review: the DOT e2e passed only because its site also mounted the metadata
at the root). The document must still name this issuer."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from django.test import Client

from django_duo_oidc.core.discovery import oauth_metadata_urls
from django_duo_oidc.models import Provider
from django_duo_oidc.providers.runtime import ProviderRuntime
from tests.fakeop import FakeOP

from .test_resource import get, issue


def test_the_two_places() -> None:
    assert oauth_metadata_urls("https://h.example/o") == (
        "https://h.example/.well-known/oauth-authorization-server/o",
        "https://h.example/o/.well-known/oauth-authorization-server",
    )
    assert oauth_metadata_urls("https://h.example") == ("https://h.example/.well-known/oauth-authorization-server",)


def serve_appended(fake_op: FakeOP, monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any]) -> None:
    inserted, appended = oauth_metadata_urls(fake_op.issuer)
    original = fake_op.handle

    def handle(request: requests.PreparedRequest) -> Any:
        if request.url == inserted:
            return 404, b"<html>Not Found</html>", {"Content-Type": "text/html"}
        if request.url == appended:
            return 200, doc, {}
        return original(request)

    monkeypatch.setattr(fake_op, "handle", handle)


def test_introspection_from_the_appended_url(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_op.discovery_overrides["introspection_endpoint"] = None
    serve_appended(
        fake_op, monkeypatch, {**fake_op.discovery(), "introspection_endpoint": f"{fake_op.issuer}/token_introspection"}
    )
    provider.access_token_validation = Provider.AccessTokenValidation.INTROSPECTION
    provider.save()
    fake_op.access_token_format = "opaque"
    assert get(client, token=issue(fake_op)).status_code == 200


def test_an_appended_document_of_another_issuer_is_not_used(
    fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_op.discovery_overrides["introspection_endpoint"] = None
    serve_appended(
        fake_op, monkeypatch, {"issuer": "https://evil.example", "introspection_endpoint": "https://evil.example/i"}
    )
    assert ProviderRuntime(provider).metadata.introspection_endpoint is None
