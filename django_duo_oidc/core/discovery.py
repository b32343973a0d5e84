"""OpenID Provider metadata (OpenID Connect Discovery 1.0).

Duo publishes ``<issuer>/.well-known/openid-configuration``; the issuer path carries the client id
or application id, so the document is always fetched by appending to the configured issuer
(Discovery section 4), never by host.

Over 300 lines on purpose: where a provider's endpoints come from is one decision (OpenID discovery,
RFC 8414 metadata at either of its places, the markers kept in the cached copy, the issuer checks), and
reading it in one module is how it stays one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError, DiscoveryError, DuoOIDCError, ProviderResponseError
from .http import HttpClient

__all__ = [
    "METADATA_ENDPOINTS",
    "MetadataNotPublished",
    "ProviderMetadata",
    "check_issuer",
    "discovery_url",
    "duo_api_host_refusal",
    "fetch_metadata",
    "is_plain_http_under_https",
    "oauth_metadata_url",
    "oauth_metadata_urls",
    "parse_metadata",
]

# Algorithms we are willing to verify ID and access tokens with: asymmetric only. "none" and the
# HMAC family are never accepted, whatever a provider advertises (RFC 8725 section 3.1/3.2).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of the discovery document the relying party uses."""

    issuer: str
    authorization_endpoint: str  # "" when the server has no browser login (RFC 8414 metadata, client credentials)
    token_endpoint: str
    jwks_uri: str  # "" when the server publishes no keys (opaque tokens only)
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


# Duo's per-account API hosts (DUO.md 0): the Web SDK v4 / Universal Prompt ("OIDC Auth API",
# /oauth/v1/*) and the Admin API. Second factor only, no primary login: never an OpenID provider.
_DUO_API_HOST = re.compile(r"api-[a-z0-9-]+\.(duosecurity|duofederal)\.com")


def duo_api_host_refusal(url: str) -> str | None:
    """Why ``url`` (an issuer or an endpoint) may not be an OpenID provider's, or None when it may.

    ``api-<id>.duosecurity.com`` serves Duo's Universal Prompt (Web SDK v4: its ``/oauth/v1/*``
    endpoints look like OAuth, but add a second factor to a login made elsewhere) and the Admin API;
    logging in through it would have no primary authentication (DUO.md section 0).
    """
    host = (urlsplit(url).hostname or "").rstrip(".")
    if not _DUO_API_HOST.fullmatch(host):
        return None
    return (
        f"{host} is Duo's API host (the Universal Prompt / Web SDK second factor and the Admin API), not an "
        "OpenID provider: a login through it would have no primary authentication. In Duo SSO, create a "
        '"Generic OIDC Relying Party" application (or an "OAuth 2.1 / OIDC - Single Sign-On" application for '
        "several clients and custom scopes) and copy the Issuer from its Metadata tab: "
        "https://sso-<tenant>.sso.duosecurity.com/oidc/<client id> (or /oauth2/<application id>)."
    )


def discovery_url(issuer: str) -> str:
    """Return ``<issuer>/.well-known/openid-configuration`` (Discovery section 4).

    The issuer is checked again here (:func:`check_issuer`), whatever validated it when it was saved:
    a row written around the model's validation must not turn discovery into a fetch of any URL.
    """
    check_issuer(issuer)
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def oauth_metadata_url(issuer: str) -> str:
    """Return the RFC 8414 metadata URL of ``issuer``: ``/.well-known/oauth-authorization-server``
    inserted between the host and the issuer's path (RFC 8414 section 3.1), e.g.
    ``https://h/.well-known/oauth-authorization-server/oauth/DI123`` for ``https://h/oauth/DI123``.
    """
    check_issuer(issuer)
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{path}"


def oauth_metadata_urls(issuer: str) -> tuple[str, ...]:
    """Where an issuer's RFC 8414 metadata may be: the section 3.1 URL (:func:`oauth_metadata_url`), then
    ``<issuer>/.well-known/oauth-authorization-server``, the OpenID-style appended form many servers use
    instead (django-oauth-toolkit mounted under ``/o/``, section 5 notes the legacy practice). Either way
    the document must name this issuer exactly (section 3.3)."""
    inserted = oauth_metadata_url(issuer)
    appended = issuer.rstrip("/") + "/.well-known/oauth-authorization-server"
    return (inserted,) if appended == inserted else (inserted, appended)


#: Where a document came from, kept in the cached copy (parsing an RFC 8414 document is more lenient).
SOURCE_KEY = "x_duo_oidc_source"
SOURCE_RFC8414 = "oauth-authorization-server"
SOURCE_NONE = "none"  # the issuer publishes nothing: every endpoint is set by hand (remembered as such)
#: The endpoints of an OpenID discovery document taken from the RFC 8414 metadata (Check connection says so).
SUPPLEMENTED_KEY = "x_duo_oidc_supplemented"
# Endpoints an OpenID discovery document may leave out that RFC 8414 metadata may have.
_SUPPLEMENTED = ("introspection_endpoint",)
# Keys this module writes into the documents it keeps; never taken from a fetched document (a
# provider naming itself "none" would otherwise be parsed without its required endpoints).
_MARKERS = (SOURCE_KEY, SUPPLEMENTED_KEY)


class MetadataNotPublished(DiscoveryError):
    """The issuer publishes neither OpenID discovery nor RFC 8414 metadata: both answered 404 or 410.

    The one failure after which endpoints set by hand may stand in for the published ones: any other
    (a refusal, a broken or foreign document) is the server's to fix, and is not remembered.
    """


# A document that is not there (RFC 8414 section 3.2 and Discovery section 4.2 answer it with 200 only).
_ABSENT = (404, 410)


def _get(http: HttpClient, url: str) -> tuple[int, dict[str, Any]]:
    """GET a metadata document: ``(status, JSON object)``; a body that is not JSON counts as empty
    when the status already says the document is missing (a web server's stock HTML 404 page).

    :raises ProviderResponseError: a 200 (or other status) whose body is not a JSON object.
    :raises ProviderUnavailable: network error, timeout, 5xx, 429.
    """
    try:
        response = http.get(url)
    except ProviderResponseError as exc:
        if exc.http_status is not None and exc.http_status in _ABSENT:
            return exc.http_status, {}
        raise
    return response.status, response.data


def _published(data: dict[str, Any]) -> dict[str, Any]:
    """A fetched document without this module's own marker keys."""
    return {k: v for k, v in data.items() if k not in _MARKERS}


def fetch_metadata(http: HttpClient, issuer: str) -> ProviderMetadata:
    """Fetch and parse the metadata of ``issuer``.

    OpenID discovery first (Discovery section 4). When it has no introspection endpoint, the RFC 8414
    document is read too and its endpoint used (django-oauth-toolkit lists introspection only there).
    When the issuer publishes no OpenID discovery (404 or 410, whatever the body: a web server's HTML
    page too; Duo's client-credentials authorization servers, ``/oauth/<id>``), the RFC 8414 document
    alone (section 3), in which the authorization endpoint and JWKS are optional (section 2).

    :raises MetadataNotPublished: neither document exists (both 404 or 410).
    :raises DiscoveryError: any other unusable answer.
    """
    status, data = _get(http, discovery_url(issuer))
    if status == 200:
        doc = _published(data)
        if not all(_is_url(doc.get(name)) for name in _SUPPLEMENTED):
            doc = _supplemented(http, issuer, doc)
        return parse_metadata(doc, issuer)
    if status in _ABSENT:
        for url in oauth_metadata_urls(issuer):
            oauth_status, oauth_data = _get(http, url)
            if oauth_status == 200:
                return parse_metadata({**_published(oauth_data), SOURCE_KEY: SOURCE_RFC8414}, issuer)
            if oauth_status not in _ABSENT:
                break  # a refusal or an error is the answer: not looked past
        message = (
            f"The issuer publishes no metadata: OpenID discovery answered HTTP {status}, RFC 8414 "
            f"metadata HTTP {oauth_status}. Set the endpoints on the provider by hand."
        )
        if oauth_status in _ABSENT:
            raise MetadataNotPublished(message)
        raise DiscoveryError(message)
    raise DiscoveryError(f"The discovery document answered HTTP {status} instead of 200.")


def _supplemented(http: HttpClient, issuer: str, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the endpoints it lacks taken from the issuer's RFC 8414 document, if it has them.

    Best effort: the OpenID document stands on its own, so any failure here leaves it as it is. The
    RFC 8414 document must name the same issuer (RFC 8414 section 3.3), or none of it is used.
    """
    for url in oauth_metadata_urls(issuer):
        try:
            answer = http.get(url)
        except DuoOIDCError:
            continue
        if answer.status == 200 and answer.data.get("issuer") == issuer:
            break
    else:
        return doc
    found = {
        name: answer.data[name]
        for name in _SUPPLEMENTED
        if not _is_url(doc.get(name)) and _is_url(answer.data.get(name))
    }
    return {**doc, **found, SUPPLEMENTED_KEY: sorted(found)} if found else doc


#: Every endpoint of the metadata this library uses (RFC 8414, Discovery), by its name there: a provider row
#: may set each by hand, and an https issuer may name none over plain http.
METADATA_ENDPOINTS = (
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "userinfo_endpoint",
    "introspection_endpoint",
    "revocation_endpoint",
    "end_session_endpoint",
)


def is_plain_http_under_https(issuer: str, url: Any) -> bool:
    """True when ``url`` is a plain ``http://`` URL while ``issuer`` is an ``https://`` one (Discovery
    section 3 and RFC 8414 section 2 require https endpoints; an http issuer is local development)."""
    return (
        isinstance(url, str)
        and urlsplit(issuer).scheme.lower() == "https"
        and urlsplit(url.strip()).scheme.lower() == "http"
    )


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
    # Discovery section 3 and RFC 8414 section 2: the endpoints of an https issuer use https. Over plain
    # HTTP anyone on the path would read the client secret (token, introspection, revocation) or swap the
    # keys that sign ID tokens (JWKS), though the document itself came over TLS. An http issuer is local
    # development (duo_oidc.W001), whose endpoints may be http too.
    for name in METADATA_ENDPOINTS:
        if is_plain_http_under_https(issuer, doc.get(name)):
            raise DiscoveryError(
                f"The metadata of the https issuer {issuer!r} names a plain http:// {name}: refused "
                "(the client secret, tokens or signing keys would travel unencrypted)."
            )
    source = doc.get(SOURCE_KEY)
    rfc8414 = source in (SOURCE_RFC8414, SOURCE_NONE)
    # RFC 8414 section 2: only the token endpoint is needed by a server that has no browser login
    # (client credentials) and issues opaque tokens; OpenID discovery requires all three. "Nothing
    # published" requires nothing: the row sets the endpoints.
    if source == SOURCE_NONE:
        required: tuple[str, ...] = ()
    elif rfc8414:
        required = ("token_endpoint",)
    else:
        required = ("authorization_endpoint", "token_endpoint", "jwks_uri")
    for name in required:
        if not _is_url(doc.get(name)):
            raise DiscoveryError(f"The discovery document has no valid {name!r}.")
    if rfc8414:
        for name in ("authorization_endpoint", "jwks_uri"):
            if doc.get(name) is not None and not _is_url(doc.get(name)):
                raise DiscoveryError(f"The metadata document has no valid {name!r}.")
    optional_urls = (
        "userinfo_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "end_session_endpoint",
    )
    urls = {name: doc[name] for name in optional_urls if _is_url(doc.get(name))}
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=doc.get("authorization_endpoint") or "",
        token_endpoint=doc.get("token_endpoint") or "",
        jwks_uri=doc.get("jwks_uri") or "",
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
