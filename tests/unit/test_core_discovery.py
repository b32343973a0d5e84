"""Discovery and the HTTP client: issuer equality, required fields, and every provider fault."""

from __future__ import annotations

import base64
from urllib.parse import unquote_plus

import pytest

from django_duo_oidc.core import errors
from django_duo_oidc.core.discovery import discovery_url, fetch_metadata, parse_metadata
from django_duo_oidc.core.http import basic_auth_header
from tests.fakeop import FakeOP

from .helpers import ISSUER, fake_http


def test_duo_discovery_document_parses() -> None:
    op = FakeOP()
    metadata = fetch_metadata(fake_http(op), ISSUER)
    assert metadata.token_endpoint == f"{ISSUER}/token"
    assert metadata.introspection_endpoint == f"{ISSUER}/token_introspection"
    assert metadata.end_session_endpoint is None  # Duo documents none
    assert metadata.authorization_response_iss_parameter_supported is False


def test_discovery_url_appends_to_the_issuer_path() -> None:
    assert discovery_url("https://sso-x.sso.duosecurity.com/oidc/DI1") == (
        "https://sso-x.sso.duosecurity.com/oidc/DI1/.well-known/openid-configuration"
    )


@pytest.mark.parametrize(
    "issuer", [ISSUER + "/", "https://sso-other.sso.duosecurity.test/oidc/DIFAKECLIENT0000001", None]
)
def test_issuer_must_be_identical(issuer: str | None) -> None:
    op = FakeOP()
    op.discovery_overrides["issuer"] = issuer
    with pytest.raises(errors.DiscoveryError):
        fetch_metadata(fake_http(op), ISSUER)


@pytest.mark.parametrize("field", ["authorization_endpoint", "token_endpoint", "jwks_uri"])
def test_required_endpoints(field: str) -> None:
    op = FakeOP()
    op.discovery_overrides[field] = None
    with pytest.raises(errors.DiscoveryError):
        fetch_metadata(fake_http(op), ISSUER)
    op.discovery_overrides[field] = "javascript:alert(1)"
    with pytest.raises(errors.DiscoveryError):
        fetch_metadata(fake_http(op), ISSUER)


def test_list_fields_must_be_lists_of_strings() -> None:
    doc = FakeOP().discovery()
    doc["id_token_signing_alg_values_supported"] = "RS256"
    with pytest.raises(errors.DiscoveryError):
        parse_metadata(doc, ISSUER)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("down", errors.ProviderUnavailable),
        ("timeout", errors.ProviderUnavailable),
        (503, errors.ProviderUnavailable),
        (429, errors.ProviderUnavailable),
        ("garbage", errors.ProviderResponseError),
        (404, errors.DiscoveryError),
    ],
)
def test_provider_faults_become_core_errors(fault: str | int, error: type[Exception]) -> None:
    op = FakeOP()
    op.faults[".well-known/openid-configuration"] = fault
    with pytest.raises(error):
        fetch_metadata(fake_http(op), ISSUER)


def test_basic_auth_form_encodes_id_and_secret_first() -> None:
    # RFC 6749 section 2.3.1; REAL.md: a real provider refuses the un-encoded form of such a secret.
    header = basic_auth_header("client:id", "sp+ec/ial:chars%25x=")
    raw = base64.b64decode(header.removeprefix("Basic ")).decode()
    user, _, password = raw.partition(":")
    assert raw == "client%3Aid:sp%2Bec%2Fial%3Achars%2525x%3D"
    assert (unquote_plus(user), unquote_plus(password)) == ("client:id", "sp+ec/ial:chars%25x=")
