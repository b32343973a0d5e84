"""Which providers this site trusts for bearer tokens, by issuer (several rows may share one), built from
the enabled rows as this process last read them (:mod:`django_duo_oidc.providers.enabled`: re-read at
most every ``ENABLED_TTL`` seconds per process, the same read that ends the sessions of a disabled
provider).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.db import Error as DBError

from ..core.errors import database_outage
from ..models import Provider
from ..providers import enabled
from ..providers.runtime import ProviderRuntime


@dataclass(frozen=True)
class _Trusted:
    runtime: ProviderRuntime
    # Changes when the provider row changes: grants proven under an older configuration are dropped.
    version: tuple[Any, ...]

    @functools.cached_property
    def audiences(self) -> frozenset[str]:
        """The audiences the row accepts (as ``Provider.audience_list``), read once per registry read."""
        return frozenset(self.runtime.provider.audience_list)

    @property
    def introspects_only(self) -> bool:
        """Set to "introspection" (known without discovery: ``auto`` never resolves to it)."""
        return self.runtime.provider.access_token_validation == _INTROSPECTION

    @property
    def mode(self) -> str:
        provider = self.runtime.provider
        mode = provider.access_token_validation
        if mode == Provider.AccessTokenValidation.AUTO:
            endpoint = self.runtime.introspection_endpoint  # its own, or the introspect_with row's
            return "jwt+introspection" if provider.introspect and endpoint else "jwt"
        return str(mode)


class _Registry:
    """The enabled providers that accept bearer tokens, rebuilt from each new read of
    :func:`~django_duo_oidc.providers.enabled.enabled_providers` (at most every ``ENABLED_TTL``).

    An issuer may have several rows (several clients of one authorization server, e.g. two Duo
    clients of one OAuth application): all are kept, default first, and a token is matched to the
    row whose audience it carries.
    """

    def __init__(self) -> None:
        self.built_from: enabled.EnabledProviders | None = None
        self.by_issuer: dict[str, tuple[_Trusted, ...]] = {}
        self.by_pk: dict[int, _Trusted] = {}
        self.default: _Trusted | None = None
        self.opaque: _Trusted | None = None

    @property
    def expires(self) -> float:
        """When the providers are next read (``time.monotonic()``); 0 reads them on the next request."""
        return enabled._memo.expires

    @expires.setter
    def expires(self, value: float) -> None:
        enabled._memo.expires = value

    def current(self) -> _Registry:
        try:
            read = enabled.enabled_providers()
        except DBError as exc:
            # Fail closed with a 503 (the token is neither accepted nor refused), as when the user directory
            # cannot be read.
            raise database_outage(
                "Could not read the enabled providers",
                exc,
                "This site's list of identity providers cannot be read right now.",
            ) from exc
        if read is self.built_from:
            return self
        by_issuer: dict[str, list[_Trusted]] = {}
        by_pk: dict[int, _Trusted] = {}
        default = None
        rows = []
        for provider in read.rows:  # ordered default first
            if provider.access_token_validation == Provider.AccessTokenValidation.OFF:
                continue
            # The row that introspects for it is part of its configuration: grants proven through its
            # credentials and endpoint are dropped when it changes too.
            other = provider.introspect_with
            introspector = (other.pk, other.updated_at, other.enabled) if other is not None else None
            trusted = _Trusted(ProviderRuntime(provider), (provider.pk, provider.updated_at, introspector))
            rows.append(trusted)
            by_issuer.setdefault(provider.issuer, []).append(trusted)
            by_pk[provider.pk] = trusted
            if default is None and provider.is_default:
                default = trusted
        if default is None and len(by_issuer) == 1:
            default = rows[0]
        # Opaque tokens can only be judged by introspection, and only a provider set to "introspection"
        # asks about them (auto never does: each would cost a provider call, for anyone who sends one).
        introspecting = [t for t in rows if t.introspects_only]
        opaque = None
        if default is not None and default in introspecting:
            opaque = default
        elif introspecting and len({t.runtime.provider.issuer for t in introspecting}) == 1:
            opaque = introspecting[0]
        self.by_issuer = {issuer: tuple(found) for issuer, found in by_issuer.items()}
        self.by_pk, self.default, self.opaque = by_pk, default, opaque
        self.built_from = read
        return self


_INTROSPECTION = Provider.AccessTokenValidation.INTROSPECTION
_registry = _Registry()


def trusted_issuers() -> list[str]:
    """Issuers whose access tokens this site accepts (RFC 9728 ``authorization_servers``), each once."""
    return list(_registry.current().by_issuer)
