"""Adversarial review of issue 15 (second pass): an https issuer's metadata naming a plain http:// endpoint.

The client secret (client_secret_basic / _post) goes to the token, introspection and revocation
endpoints; the keys that sign the ID tokens come from the JWKS URI; tokens go to userinfo. Over plain
HTTP anyone on the path reads the secret or swaps the keys, although the issuer and its discovery
document were fetched over TLS. Before the fix the document was accepted, and Check connection (and
every login) sent the client secret over plain HTTP. An http:// issuer (local development) keeps its
http:// endpoints.
"""

from __future__ import annotations

import pytest

from django_duo_oidc.core import errors
from django_duo_oidc.core.discovery import METADATA_ENDPOINTS as ENDPOINTS
from django_duo_oidc.core.discovery import fetch_metadata, parse_metadata
from tests.fakeop import FakeOP

from .helpers import ISSUER, fake_http


@pytest.mark.parametrize("name", ENDPOINTS)
def test_an_https_issuer_naming_a_plain_http_endpoint_is_refused(name: str) -> None:
    assert ISSUER.startswith("https://")
    op = FakeOP()
    op.discovery_overrides[name] = "http://op.example.test/x?y=secret-looking"
    with pytest.raises(errors.DiscoveryError) as refused:
        fetch_metadata(fake_http(op), ISSUER)
    assert name in refused.value.description
    assert "op.example.test" not in refused.value.description  # the document's words are not echoed


def test_a_cached_document_is_judged_again() -> None:
    doc = FakeOP().discovery()
    doc["token_endpoint"] = "http://op.example.test/token"
    with pytest.raises(errors.DiscoveryError):
        parse_metadata(doc, ISSUER)


def test_an_http_issuer_for_local_development_keeps_its_http_endpoints() -> None:
    issuer = "http://localhost:18741/oidc"
    doc = {
        "issuer": issuer,
        **{name: f"{issuer}/{name}" for name in ENDPOINTS},
    }
    metadata = parse_metadata(doc, issuer)
    assert metadata.token_endpoint == f"{issuer}/token_endpoint"
