""" "Check connection": fetch discovery and JWKS and say, in an admin's words, what was found."""

from __future__ import annotations

from dataclasses import dataclass, field

from .core.errors import ConfigurationError, DuoOIDCError
from .models import Provider
from .providers import ProviderRuntime


@dataclass
class ConnectionReport:
    provider: Provider
    ok: bool = True
    lines: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.ok = False
        self.lines.append(message)


def check_connection(provider: Provider) -> ConnectionReport:
    """Fetch fresh discovery and JWKS for ``provider`` and report what is right or wrong."""
    report = ConnectionReport(provider)
    runtime = ProviderRuntime(provider)
    try:
        metadata = runtime.refresh_metadata()
    except DuoOIDCError as exc:
        report.fail(f"Discovery failed: {exc.description}")
        return report
    report.lines.append(f"Discovery OK: issuer {metadata.issuer}.")
    try:
        keys = runtime.keys.refresh()
    except DuoOIDCError as exc:
        report.fail(f"Signing keys (JWKS) could not be loaded: {exc.description}")
    else:
        if len(keys):
            report.lines.append(f"Signing keys OK: {len(keys)} key(s) published.")
        else:
            report.fail("The provider publishes no signing key this site can use.")
    if provider.algorithm_list and not set(provider.algorithm_list) & set(
        metadata.id_token_signing_alg_values_supported
    ):
        report.fail(
            "None of the allowed algorithms ("
            + ", ".join(provider.algorithm_list)
            + ") is among those the provider signs with ("
            + ", ".join(metadata.id_token_signing_alg_values_supported)
            + ")."
        )
    if metadata.code_challenge_methods_supported and "S256" not in metadata.code_challenge_methods_supported:
        report.fail("The provider does not offer PKCE S256, which this site always uses.")
    if provider.token_auth_method not in metadata.token_endpoint_auth_methods_supported:
        report.fail(f"The provider does not list {provider.token_auth_method} among its client authentication methods.")
    unsupported = provider.scope_set - set(metadata.scopes_supported) if metadata.scopes_supported else set()
    if unsupported:
        report.lines.append("Note: scopes not advertised by the provider: " + ", ".join(sorted(unsupported)) + ".")
    try:
        provider.get_client_secret()
    except ConfigurationError as exc:
        report.fail(exc.description)
    else:
        report.lines.append(f"Client secret: {provider.secret_status}.")
    return report
