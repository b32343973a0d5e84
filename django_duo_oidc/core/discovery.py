"""OpenID Provider metadata (OpenID Connect Discovery 1.0).

Duo publishes ``<issuer>/.well-known/openid-configuration``; the issuer path carries the client id
or application id, so the document is always fetched by appending to the configured issuer
(Discovery section 4), never by host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError, DiscoveryError
from .http import HttpClient

__all__ = ["ProviderMetadata", "check_issuer", "discovery_url", "fetch_metadata", "parse_metadata"]

# Algorithms we are willing to verify ID and access tokens with: asymmetric only. "none" and the
# HMAC family are never accepted, whatever a provider advertises (RFC 8725 section 3.1/3.2).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of the discovery document the relying party uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    introspection_endpoint: str | None = None
    revocation_endpoint: str | None = None
    end_session_endpoint: str | None = None
    scopes_supported: tuple[str, ...] = ()
    id_token_signing_alg_values_supported: tuple[str, ...] = ("RS256",)
    token_endpoint_auth_methods_supported: tuple[str, ...] = ("client_secret_basic",)
    code_challenge_methods_supported: tuple[str, ...] = ()
    authorization_response_iss_parameter_supported: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the original document, for caching."""
        return dict(self.raw)


def check_issuer(issuer: str) -> None:
    """Refuse an issuer that is not a plain ``http(s)://host[:port][/path]`` URL.

    OIDC Core section 1.2 and RFC 8414 section 2: an issuer identifier has scheme, host, optional
    port and path, and *no query or fragment*. Appending the discovery path to an issuer holding
    ``?`` or ``#`` would fetch whatever URL the rest names; userinfo (``user:pass@``) would send
    credentials or hide the real host. Whitespace and control characters have no place in it either.

    :raises ConfigurationError: with the reason, in words an administrator can act on.
    """
    if not isinstance(issuer, str) or not issuer:
        raise ConfigurationError("The issuer is empty.")
    if any(c in issuer for c in "?#"):
        raise ConfigurationError("An issuer has no query (?) or fragment (#).")
    if "@" in issuer or "\\" in issuer:
        raise ConfigurationError("An issuer has no user name or password (@) and no backslash.")
    if any(c.isspace() or not c.isprintable() for c in issuer):
        raise ConfigurationError("An issuer has no spaces or control characters.")
    parts = urlsplit(issuer)
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError as exc:
        raise ConfigurationError("The issuer's port is not valid.") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError("An issuer is an https:// (or, for development, http://) URL with a host.")


def discovery_url(issuer: str) -> str:
    """Return ``<issuer>/.well-known/openid-configuration`` (Discovery section 4).

    The issuer is checked again here (:func:`check_issuer`), whatever validated it when it was saved:
    a row written around the model's validation must not turn discovery into a fetch of any URL.
    """
    check_issuer(issuer)
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def fetch_metadata(http: HttpClient, issuer: str) -> ProviderMetadata:
    """Fetch and parse the discovery document of ``issuer``."""
    response = http.get(discovery_url(issuer))
    if response.status != 200:
        raise DiscoveryError(f"The discovery document answered HTTP {response.status} instead of 200.")
    return parse_metadata(response.data, issuer)


def parse_metadata(doc: dict[str, Any], issuer: str) -> ProviderMetadata:
    """Validate a discovery document for ``issuer`` and return its metadata.

    Discovery section 4.3: the ``issuer`` in the document MUST be identical to the issuer URL used
    to fetch it. A document naming another issuer could let one provider impersonate another.
    """
    check_issuer(issuer)  # also for a document served from the cache
    if not isinstance(doc, dict):
        raise DiscoveryError("The discovery document is not a JSON object.")
    if doc.get("issuer") != issuer:
        # The document's value is not repeated: the answer may come from any server the issuer names,
        # and what it says is not echoed into admin pages or logs.
        raise DiscoveryError(
            f"The discovery document names another issuer than {issuer!r}, the one this provider is "
            "configured with; they must be identical."
        )
    required = ("authorization_endpoint", "token_endpoint", "jwks_uri")
    for name in required:
        if not _is_url(doc.get(name)):
            raise DiscoveryError(f"The discovery document has no valid {name!r}.")
    optional_urls = (
        "userinfo_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "end_session_endpoint",
    )
    urls = {name: doc[name] for name in optional_urls if _is_url(doc.get(name))}
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=doc["authorization_endpoint"],
        token_endpoint=doc["token_endpoint"],
        jwks_uri=doc["jwks_uri"],
        scopes_supported=_strings(doc, "scopes_supported", ()),
        id_token_signing_alg_values_supported=_strings(doc, "id_token_signing_alg_values_supported", ("RS256",)),
        token_endpoint_auth_methods_supported=_strings(
            # RFC 8414 section 2: the default when omitted is client_secret_basic.
            doc,
            "token_endpoint_auth_methods_supported",
            ("client_secret_basic",),
        ),
        code_challenge_methods_supported=_strings(doc, "code_challenge_methods_supported", ()),
        authorization_response_iss_parameter_supported=(
            doc.get("authorization_response_iss_parameter_supported") is True
        ),
        raw=dict(doc),
        **urls,
    )


def _is_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("https", "http") and bool(parts.netloc)


def _strings(doc: dict[str, Any], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = doc.get(name)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DiscoveryError(f"The discovery document's {name!r} is not a list of strings.")
    return tuple(value)
