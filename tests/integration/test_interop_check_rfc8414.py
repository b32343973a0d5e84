"""Issue 14, interop defect 2, as django-oauth-toolkit showed it in the e2e tier: Check connection says
where the introspection endpoint came from when OpenID discovery lists none and RFC 8414 metadata
does; and the marker keys the library writes into kept documents are never read from a provider's."""

from __future__ import annotations

import pytest

from django_duo_oidc.core.discovery import SOURCE_KEY, SOURCE_NONE, SUPPLEMENTED_KEY
from django_duo_oidc.models import Provider
from django_duo_oidc.providers.connection import check_connection
from django_duo_oidc.providers.runtime import ProviderRuntime
from tests.fakeop import FakeOP

from .test_interop_metadata import introspection_mode, serve_rfc8414

FROM_RFC8414 = "Introspection endpoint: from the RFC 8414 metadata (OpenID discovery lists none)."


def test_check_says_the_introspection_endpoint_came_from_rfc8414(
    fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_op.discovery_overrides["introspection_endpoint"] = None
    serve_rfc8414(
        fake_op, monkeypatch, {**fake_op.discovery(), "introspection_endpoint": f"{fake_op.issuer}/token_introspection"}
    )
    report = check_connection(introspection_mode(provider))
    assert report.ok, report.lines
    assert FROM_RFC8414 in report.lines  # fails before the fix: nothing said where it came from
    assert "Bearer tokens: validated as introspection." in report.lines


def test_check_says_nothing_of_rfc8414_when_discovery_lists_introspection(fake_op: FakeOP, provider: Provider) -> None:
    report = check_connection(introspection_mode(provider))
    assert report.ok
    assert FROM_RFC8414 not in report.lines


def test_a_providers_own_supplemented_key_is_ignored(fake_op: FakeOP, provider: Provider) -> None:
    fake_op.discovery_overrides[SUPPLEMENTED_KEY] = ["introspection_endpoint", "<b>evil</b>"]
    report = check_connection(provider)
    assert report.ok
    assert not any("RFC 8414" in line or "evil" in line for line in report.lines)


def test_a_discovery_document_calling_itself_empty_still_needs_its_endpoints(
    fake_op: FakeOP, provider: Provider
) -> None:
    # The source marker makes parsing lenient (nothing required) for the library's own record of an
    # issuer that publishes nothing; a provider's document must not get that by naming it.
    fake_op.discovery_overrides.update({SOURCE_KEY: SOURCE_NONE, "jwks_uri": None})
    report = check_connection(provider)
    assert not report.ok  # fails before the fix: parsed as "nothing published", jwks_uri not required
    assert "Discovery failed: The discovery document has no valid 'jwks_uri'." in report.lines
    with pytest.raises(Exception, match="jwks_uri"):
        ProviderRuntime(provider).refresh_metadata()
