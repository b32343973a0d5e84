"""Token introspection (RFC 7662): ask the provider whether a token is still active, and for what.

Duo serves it at ``<issuer>/token_introspection`` with the client's credentials (DUO.md 1.7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ProviderResponseError
from .flow import ClientCredentials, post_authenticated
from .http import HttpClient

__all__ = ["TokenInfo", "introspect"]

# Larger than any real time in seconds, small enough for float() (2**53: exact as a float).
MAX_TIME = 2**53


@dataclass(frozen=True)
class TokenInfo:
    """The answer of the introspection endpoint."""

    active: bool
    scope: str | None = None
    sub: str | None = None
    client_id: str | None = None
    exp: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_answer(cls, data: dict[str, Any]) -> TokenInfo:
        """Read an introspection answer (RFC 7662 section 2.2), keeping only well-typed fields."""
        active = data.get("active")
        if not isinstance(active, bool):
            # `active` is REQUIRED and boolean. Anything else is not an answer we can trust.
            raise ProviderResponseError("The introspection answer has no boolean 'active'.")
        if not active:
            return cls(active=False, raw=data)
        scope, sub, client_id, exp = (data.get(k) for k in ("scope", "sub", "client_id", "exp"))
        if isinstance(exp, int) and not isinstance(exp, bool) and abs(exp) > MAX_TIME:
            # float(exp) would overflow (and no real token lives until then): not an answer to trust.
            raise ProviderResponseError("The introspection answer's exp is out of range.")
        return cls(
            active=True,
            scope=scope if isinstance(scope, str) else None,
            sub=sub if isinstance(sub, str) else None,
            client_id=client_id if isinstance(client_id, str) else None,
            exp=exp if isinstance(exp, int) and not isinstance(exp, bool) else None,
            raw=data,
        )


def introspect(
    http: HttpClient,
    endpoint: str,
    client: ClientCredentials,
    token: str,
    *,
    token_type_hint: str = "access_token",
) -> TokenInfo:
    """POST the token to the introspection endpoint and return what it says (RFC 7662 section 2)."""
    request = {"token": token, "token_type_hint": token_type_hint}
    data = post_authenticated(http, endpoint, client, request, what="introspection endpoint")
    return TokenInfo.from_answer(data)
