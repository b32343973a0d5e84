""" "Check connection": fetch discovery and JWKS, try the client credentials at the token endpoint, and
say, in an admin's words, what was found.

The report is shown in the admin and printed by the command, so it never repeats what the fetched
documents say (the issuer may name any server; its answer is not to be echoed): it describes, and
names only values from a fixed vocabulary (algorithm names, OAuth error codes) or from this site's
own configuration. It never shows the client secret.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from django.views.decorators.debug import sensitive_variables

from ..core.discovery import (
    SOURCE_KEY,
    SOURCE_NONE,
    SOURCE_RFC8414,
    SUPPLEMENTED_KEY,
    ProviderMetadata,
    duo_api_host_refusal,
)
from ..core.errors import ConfigurationError, DuoOIDCError, ProviderUnavailable, TokenEndpointError
from ..core.pkce import new_verifier
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


# The token endpoint's error codes (RFC 6749 section 5.2, RFC 8707 section 2): the only codes named back.
TOKEN_ERROR_CODES = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_target",
    }
)

# The answers to a made-up authorization code that come only after the client was authenticated:
# RFC 6749 section 4.1.3 authenticates the client before it looks at the code, and section 5.2 gives
# unauthorized_client to "the authenticated client".
CLIENT_ACCEPTED_CODES = frozenset({"invalid_grant", "unauthorized_client"})

# Sent with the made-up code when the caller knows no better (a command has no request to build this
# site's callback URL from): any well-formed URL does, since the code is refused before it matters.
PLACEHOLDER_REDIRECT_URI = "https://localhost/oidc/callback/"


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


def check_connection(provider: Provider, *, redirect_uri: str | None = None) -> ConnectionReport:
    """Fetch fresh discovery and JWKS for ``provider``, try its client credentials at the token
    endpoint, and report what is right or wrong.

    The credentials are tried by redeeming a made-up authorization code, authenticated exactly as a
    login redeems a real one (the provider's ``token_auth_method``): a provider answers
    ``invalid_client`` when the client id or secret is wrong (the report says REJECTED and fails) and
    ``invalid_grant`` when they are right. Any other answer is reported as "not verified", with why.
    ``redirect_uri`` is sent with the made-up code: this site's callback URL when the caller knows it.
    """
    report = ConnectionReport(provider)
    refusal = duo_api_host_refusal(provider.issuer)
    if refusal:  # not even asked: it is not an OpenID provider (DUO.md 0)
        report.fail(refusal)
        return report
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
        if provider.browser_login:
            report.fail(
                "No authorization endpoint, yet the provider is offered for browser logins: turn browser login off "
                "(tokens only), or set the endpoint on the provider."
            )
        else:
            report.lines.append("No authorization endpoint: no browser login through this provider (tokens only).")
    elif not provider.browser_login:
        report.lines.append("Browser login: off (this provider only issues or validates tokens here).")
    if not metadata.token_endpoint:
        report.fail("No token endpoint: publish one in the metadata or set it on the provider.")
    endpoint = metadata.introspection_endpoint
    if provider.introspect_with_id is not None:
        try:
            endpoint = runtime.introspector.metadata.introspection_endpoint
        except DuoOIDCError as exc:
            report.fail(f"Introspection by another provider (introspect_with) cannot work: {exc.description}")
            endpoint = None
        else:
            report.lines.append(
                f"Introspection: by provider {runtime.introspector.provider.slug}, with its client credentials "
                "(global token introspection); answers must name this provider's issuer."
            )
    _report_bearer_validation(report, provider, metadata, endpoint)
    if not metadata.jwks_uri:
        report.lines.append("No JWKS: JWTs of this provider cannot be verified here.")
        return _report_rest(report, runtime, metadata, redirect_uri)
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
    return _report_rest(report, runtime, metadata, redirect_uri)


def _report_rest(
    report: ConnectionReport, runtime: ProviderRuntime, metadata: ProviderMetadata, redirect_uri: str | None
) -> ConnectionReport:
    provider = runtime.provider
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
        report.lines.append("Client credentials: not verified: there is no client secret to send.")
        return report
    report.lines.append(f"Client secret: {provider.secret_status}.")
    if not metadata.token_endpoint:
        report.lines.append("Client credentials: not verified: there is no token endpoint to send them to.")
        return report
    _report_credentials(report, runtime, redirect_uri or PLACEHOLDER_REDIRECT_URI)
    return report


@sensitive_variables()  # the client secret, in the request made with it
def _report_credentials(report: ConnectionReport, runtime: ProviderRuntime, redirect_uri: str) -> None:
    """Redeem a made-up authorization code as a login would, and say what the answer proves."""
    method = runtime.provider.token_auth_method
    try:
        runtime.exchange_code(code=secrets.token_urlsafe(32), redirect_uri=redirect_uri, code_verifier=new_verifier())
    except TokenEndpointError as exc:
        code = exc.error if exc.stated and exc.error in TOKEN_ERROR_CODES else None
        if code == "invalid_client":
            report.fail(
                f"Client credentials: REJECTED: invalid_client. The token endpoint refused client id "
                f"{runtime.provider.client_id} with this secret sent as {method}: check the secret (after a reset "
                "in Duo only the new one works), the client id, and the token endpoint authentication method."
            )
        elif code in CLIENT_ACCEPTED_CODES:
            report.lines.append(
                f"Client credentials: accepted by the token endpoint ({method}; it refused a made-up "
                f"authorization code with {code}, not invalid_client)."
            )
        elif not exc.stated:
            status = f"HTTP {exc.http_status}" if exc.http_status else "a refusal"
            report.lines.append(
                f"Client credentials: not verified: the token endpoint answered {status} without an OAuth error "
                "code, which does not say whether it checked them."
            )
        else:
            report.lines.append(
                f"Client credentials: not verified: the token endpoint answered {code or 'an unrecognised error code'}"
                ", which does not say whether it checked them."
            )
    except ConfigurationError as exc:  # this site's own words (an authentication method it does not know)
        report.fail(f"Client credentials: not verified: {exc.description}")
    except ProviderUnavailable:
        report.fail(
            "Client credentials: not verified: the token endpoint could not be reached (or answered with a "
            "server error)."
        )
    except DuoOIDCError:
        report.lines.append("Client credentials: not verified: the token endpoint's answer could not be understood.")
    else:
        report.fail(
            "Client credentials: not verified: the token endpoint issued tokens for a made-up authorization "
            "code. Do not trust this provider."
        )


def _report_bearer_validation(
    report: ConnectionReport, provider: Provider, metadata: ProviderMetadata, introspection_endpoint: str | None
) -> None:
    """Say what bearer-token validation will do with this metadata (and this introspection endpoint:
    the provider's, or that of the row introspecting for it), and fail when it cannot work."""
    mode = provider.access_token_validation
    modes = Provider.AccessTokenValidation
    introspects = bool(provider.introspect and introspection_endpoint)
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
