"""The protocol core of django-duo-oidc: OpenID Connect and OAuth 2.0 with no Django in it.

Everything here takes its inputs as arguments (issuer, client, clock, HTTP session, cache) and
imports only the standard library, requests, PyJWT and cryptography. The Django glue lives in the
package above.
"""

from __future__ import annotations

from .claims import (
    ClaimMapping,
    GroupRuleSpec,
    UserFields,
    claim_values,
    map_claims,
    matching_rules,
)
from .discovery import ProviderMetadata, discovery_url, fetch_metadata, parse_metadata
from .errors import (
    AuthorizationError,
    BadSignature,
    ConfigurationError,
    DiscoveryError,
    DuoOIDCError,
    InsufficientScope,
    InvalidClaim,
    InvalidRequest,
    LoginRefused,
    MalformedToken,
    ProviderResponseError,
    ProviderUnavailable,
    ReauthenticationRequired,
    StateError,
    TokenEndpointError,
    TokenError,
    TokenExpired,
    UnknownKey,
)
from .flow import (
    AuthRequest,
    ClientCredentials,
    TokenSet,
    authorization_params,
    authorization_url,
    client_credentials_grant,
    exchange_code,
    fetch_userinfo,
    refresh_tokens,
)
from .http import HttpClient, HttpResponse, basic_auth_header
from .introspection import TokenInfo, introspect
from .jwks import JWKSStore, KeySet
from .pkce import new_verifier, s256_challenge
from .scopes import format_scopes, missing_scopes, parse_scopes
from .tokens import at_hash, decode_header, validate_id_token

__all__ = [
    "AuthRequest",
    "AuthorizationError",
    "BadSignature",
    "ClaimMapping",
    "ClientCredentials",
    "ConfigurationError",
    "DiscoveryError",
    "DuoOIDCError",
    "GroupRuleSpec",
    "HttpClient",
    "HttpResponse",
    "InsufficientScope",
    "InvalidClaim",
    "InvalidRequest",
    "JWKSStore",
    "KeySet",
    "LoginRefused",
    "MalformedToken",
    "ProviderMetadata",
    "ProviderResponseError",
    "ProviderUnavailable",
    "ReauthenticationRequired",
    "StateError",
    "TokenEndpointError",
    "TokenError",
    "TokenExpired",
    "TokenInfo",
    "TokenSet",
    "UnknownKey",
    "UserFields",
    "at_hash",
    "authorization_params",
    "authorization_url",
    "basic_auth_header",
    "claim_values",
    "client_credentials_grant",
    "decode_header",
    "discovery_url",
    "exchange_code",
    "fetch_metadata",
    "fetch_userinfo",
    "format_scopes",
    "introspect",
    "map_claims",
    "matching_rules",
    "missing_scopes",
    "new_verifier",
    "parse_metadata",
    "parse_scopes",
    "refresh_tokens",
    "s256_challenge",
    "validate_id_token",
]
