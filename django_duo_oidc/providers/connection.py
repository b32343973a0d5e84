""" "Check connection": fetch discovery and JWKS and say, in an admin's words, what was found.

The report is shown in the admin and printed by the command, so it never repeats what the fetched
documents say (the issuer may name any server; its answer is not to be echoed): it describes, and
names only values from a fixed vocabulary (algorithm names) or from this site's own configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.discovery import SOURCE_KEY, SOURCE_NONE, SOURCE_RFC8414, SUPPLEMENTED_KEY, ProviderMetadata
from ..core.errors import ConfigurationError, DuoOIDCError, ProviderUnavailable
from ..models import Provider
from .runtime import ProviderRuntime

# JWS algorithm names (RFC 7518 section 3.1, RFC 8037, RFC 8812): the only advertised values named back.
JWS_ALGORITHMS = frozenset(
    {
        *(f"{family}{bits}" for family in ("HS", "RS", "ES", "PS") for bits in (256, 384, 512)),
        "none",
        "EdDSA",
        "Ed25519",
        "Ed448",
        "ES256K",
    }
)


def _known_values(values: tuple[str, ...], vocabulary: frozenset[str]) -> str:
    """Name the values that belong to ``vocabulary``; only count the others (never echo them)."""
    known = [v for v in values if v in vocabulary]
    others = len(values) - len(known)
    parts = [", ".join(known)] if known else []
    if others:
        parts.append(f"{others} unrecognised value(s)")
    return "; ".join(parts) or "none advertised"


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
    source = metadata.raw.get(SOURCE_KEY)
    if source == SOURCE_NONE:
        report.lines.append(f"The issuer {metadata.issuer} publishes no metadata: using the endpoints set by hand.")
    else:
        where = "RFC 8414 metadata" if source == SOURCE_RFC8414 else "OpenID discovery"
        report.lines.append(f"Discovery OK ({where}): issuer {metadata.issuer}.")
        # Names from this module's fixed list (core.discovery), never the document's own words.
        for name in metadata.raw.get(SUPPLEMENTED_KEY) or ():
            label = name.replace("_", " ").capitalize()
            report.lines.append(f"{label}: from the RFC 8414 metadata (OpenID discovery lists none).")
    manual = provider.endpoint_overrides()
    if manual:
        report.lines.append("Set by hand: " + ", ".join(sorted(manual)) + ".")
    if not metadata.authorization_endpoint:
        report.lines.append("No authorization endpoint: no browser login through this provider (tokens only).")
    if not metadata.token_endpoint:
        report.fail("No token endpoint: publish one in the metadata or set it on the provider.")
    _report_bearer_validation(report, provider, metadata)
    if not metadata.jwks_uri:
        report.lines.append("No JWKS: JWTs of this provider cannot be verified here.")
        return _report_rest(report, provider, metadata)
    try:
        keys = runtime.keys.refresh()
    except ProviderUnavailable:
        report.fail("Signing keys (JWKS) could not be loaded: the provider's JWKS endpoint could not be reached.")
    except DuoOIDCError:
        # Not the description: it would name the jwks_uri the document chose, or part of its answer.
        report.fail("Signing keys (JWKS) could not be loaded: the JWKS endpoint did not answer with a usable key set.")
    else:
        if len(keys):
            report.lines.append(f"Signing keys OK: {len(keys)} key(s) published.")
        else:
            report.fail("The provider publishes no signing key this site can use.")
    return _report_rest(report, provider, metadata)


def _report_rest(report: ConnectionReport, provider: Provider, metadata: ProviderMetadata) -> ConnectionReport:
    if provider.algorithm_list and not set(provider.algorithm_list) & set(
        metadata.id_token_signing_alg_values_supported
    ):
        report.fail(
            "None of the allowed algorithms ("
            + ", ".join(provider.algorithm_list)
            + ") is among those the provider signs with ("
            + _known_values(metadata.id_token_signing_alg_values_supported, JWS_ALGORITHMS)
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


def _report_bearer_validation(report: ConnectionReport, provider: Provider, metadata: ProviderMetadata) -> None:
    """Say what bearer-token validation will do with this metadata, and fail when it cannot work."""
    mode = provider.access_token_validation
    modes = Provider.AccessTokenValidation
    introspects = bool(provider.introspect and metadata.introspection_endpoint)
    if mode == modes.OFF:
        report.lines.append("Bearer tokens: refused (access token validation is off).")
        return
    if mode == modes.AUTO:
        mode = modes.JWT_INTROSPECTION if introspects else modes.JWT
        report.lines.append(f"Bearer tokens: automatic mode validates them as {mode}.")
    else:
        report.lines.append(f"Bearer tokens: validated as {mode}.")
    if mode in (modes.INTROSPECTION, modes.JWT_INTROSPECTION) and not introspects:
        why = (
            "introspection is turned off on the provider"
            if not provider.introspect
            else "it has no introspection endpoint"
        )
        report.fail(f"Bearer tokens cannot be validated as {mode}: {why}; every API call would be refused (503).")
    if mode in (modes.JWT, modes.JWT_INTROSPECTION) and not metadata.jwks_uri:
        report.fail(f"Bearer tokens cannot be validated as {mode}: the provider publishes no JWKS.")
