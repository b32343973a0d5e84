"""Bearer access tokens for API views: who is calling, with which scopes, proven once and then cheap.

A token is validated the first time a process sees it, by the provider that issued it (its ``iss``;
when several enabled rows share an issuer, e.g. two clients of one Duo application, the row whose
audiences the token names, default first), in that provider's mode:

- ``jwt``: signature (JWKS from the shared cache), algorithm allow-list, exact ``iss``, audience,
  ``exp``/``nbf``/``iat``, ``typ``, never an ID token (RFC 9068 section 4, RFC 8725). No provider call.
- ``introspection``: the provider's RFC 7662 endpoint decides, for JWTs and opaque tokens (these go to
  the default provider if it introspects, else to the one provider that does). The answer must show
  the token is for this resource (its ``aud``, its ``client_id``/``azp``, or the JWT's own ``aud``;
  RFC 7662 section 4) unless the row opts out (``access_token_require_audience``). Nothing local
  vouches for such a token, so a token never seen before costs one call from a shared budget
  (``BEARER_INTROSPECTION_BUDGET`` per ``BEARER_INTROSPECTION_WINDOW``, per provider, all workers);
  beyond it: 503 with ``Retry-After``, not remembered.
- ``jwt+introspection`` (``auto`` picks it when discovery advertises introspection): local checks, then
  introspection before the token is first trusted and again once per ``REVALIDATE_SECONDS``, shared by
  all workers through the cache and never kept beyond the token's ``exp``. Only tokens that pass the
  local checks are introspected: ``auto`` never asks about an opaque token.

The provider-down flag (``duo_oidc:down:<slug>``, shared with sessions) is honoured before any call,
and set only when a check of a token proven before fails: never by a token seen for the first time,
so nobody without a valid token can put every session's scope views on 503.

The proven result (an :class:`AccessGrant`, never the token) is kept per process under the token's
SHA-256, so a token already seen costs a hash and a dict lookup; a refused one is refused from
memory for a minute (its error class and description only, never the exception, its traceback or
the token). That memory is bounded in entries and in bytes (``SEEN_MAX``, ``SEEN_MAX_BYTES``), the
oldest entries going first. Only views that opt in (``@bearer_auth``, ``BearerAuthMixin``, the DRF class)
read the header: a token never authenticates a view that did not ask for one.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import FieldDoesNotExist
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.utils.functional import SimpleLazyObject
from django.views.decorators.debug import sensitive_variables

from . import signals
from .conf import conf
from .core import jws as jws_mod
from .core import tokens as tokens_mod
from .core.bearer import (
    AccessGrant,
    audiences_of,
    challenge,
    grant_from_claims,
    grant_from_introspection,
    token_from_header,
)
from .core.errors import (
    CacheUnavailable,
    ConfigurationError,
    DuoOIDCError,
    InsufficientScope,
    InvalidClaim,
    InvalidRequest,
    MalformedToken,
    ProviderResponseError,
    ProviderUnavailable,
    TokenError,
    TokenExpired,
    UnknownKey,
)
from .core.introspection import TokenInfo, introspect
from .core.scopes import format_scopes, missing_scopes
from .models import Identity, Provider
from .providers.runtime import ProviderRuntime
from .state.singleflight import single_flight

logger = logging.getLogger("django_duo_oidc")

__all__ = [
    "BearerContext",
    "authenticate",
    "authenticate_or_refuse",
    "error_response",
    "refusal",
    "reset",
]

# Providers are re-read from the database at most this often per process.
REGISTRY_TTL = 5.0
# Tokens remembered per process (proven or refused), bounded twice: at most SEEN_MAX entries and about
# SEEN_MAX_BYTES of accounted size (a refusal is a fixed ~ENTRY_OVERHEAD; a proven grant adds the size
# of its claims, which a provider may make large). The oldest entries go first. So a flood of forged
# tokens costs a worker at most ~SEEN_MAX * ENTRY_OVERHEAD (about 5 MB), never the tokens themselves.
SEEN_MAX = 10_000
SEEN_MAX_BYTES = 16 * 1024 * 1024
ENTRY_OVERHEAD = 512
# How long a refusal is remembered.
REFUSED_FOR = 60.0


# Providers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Trusted:
    runtime: ProviderRuntime
    # Changes when the provider row changes: grants proven under an older configuration are dropped.
    version: tuple[Any, ...]

    @property
    def introspects_only(self) -> bool:
        """Set to "introspection" (known without discovery: ``auto`` never resolves to it)."""
        return self.runtime.provider.access_token_validation == _INTROSPECTION

    @property
    def mode(self) -> str:
        provider = self.runtime.provider
        mode = provider.access_token_validation
        if mode == Provider.AccessTokenValidation.AUTO:
            endpoint = self.runtime.metadata.introspection_endpoint
            return "jwt+introspection" if provider.introspect and endpoint else "jwt"
        return str(mode)


class _Registry:
    """The enabled providers that accept bearer tokens, re-read at most every ``REGISTRY_TTL``.

    An issuer may have several rows (several clients of one authorization server, e.g. two Duo
    clients of one OAuth application): all are kept, default first, and a token is matched to the
    row whose audience it carries.
    """

    def __init__(self) -> None:
        self.expires = 0.0
        self.by_issuer: dict[str, tuple[_Trusted, ...]] = {}
        self.by_pk: dict[int, _Trusted] = {}
        self.default: _Trusted | None = None
        self.opaque: _Trusted | None = None

    def current(self) -> _Registry:
        if time.monotonic() < self.expires:
            return self
        by_issuer: dict[str, list[_Trusted]] = {}
        by_pk: dict[int, _Trusted] = {}
        default = None
        enabled = Provider.objects.filter(enabled=True).exclude(
            access_token_validation=Provider.AccessTokenValidation.OFF
        )
        rows = []
        for provider in enabled:  # ordered default first
            trusted = _Trusted(ProviderRuntime(provider), (provider.pk, provider.updated_at))
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
        self.expires = time.monotonic() + REGISTRY_TTL
        return self


_INTROSPECTION = Provider.AccessTokenValidation.INTROSPECTION
_registry = _Registry()


def trusted_issuers() -> list[str]:
    """Issuers whose access tokens this site accepts (RFC 9728 ``authorization_servers``), each once."""
    return list(_registry.current().by_issuer)


# Validation --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Seen:
    grant: AccessGrant
    version: tuple[Any, ...]
    # When the provider last confirmed the token by introspection; None in jwt mode (never asked).
    checked_at: float | None
    local: AccessGrant | None  # what the JWT itself said, kept to merge with later introspections
    size: int = 0  # accounted bytes (see SEEN_MAX_BYTES)

    @classmethod
    def of(
        cls, grant: AccessGrant, version: tuple[Any, ...], checked_at: float | None, local: AccessGrant | None
    ) -> _Seen:
        size = ENTRY_OVERHEAD + _approx_size(grant.claims)
        if local is not None and local.claims is not grant.claims:
            size += _approx_size(local.claims)
        return cls(grant, version, checked_at, local, size)


@dataclass(frozen=True, slots=True)
class _Refused:
    """A remembered refusal: only what the answer and the log line need, never the exception itself
    (its traceback holds the request's frames and the token, and grows each time it is raised again)."""

    error: type[TokenError]
    description: str
    claim: str | None
    until: float
    size: int = ENTRY_OVERHEAD

    @classmethod
    def of(cls, exc: TokenError, until: float) -> _Refused:
        error = type(exc)
        while error.__module__ != TokenError.__module__:  # a private subclass: its public base, whose
            error = error.__base__  # type: ignore[assignment]  # constructor exception() knows
        description, claim = exc.description, getattr(exc, "claim", None)
        # The description and claim are accounted too: a description may quote what the sender sent.
        size = ENTRY_OVERHEAD + sys.getsizeof(description) + (sys.getsizeof(claim) if claim else 0)
        return cls(error, description, claim, until, size)

    def exception(self) -> TokenError:
        """A fresh exception, equal to the one refused (raised anew, its traceback starts empty)."""
        if issubclass(self.error, InvalidClaim):
            return self.error(self.claim or "", self.description)
        return self.error(self.description)


def _approx_size(value: Any) -> int:
    """Approximate bytes held by a JSON-like value (claims, an introspection answer); iterative, so a
    deeply nested answer cannot exhaust the stack."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return total


class _UntrustedIssuer(InvalidClaim):
    """No enabled provider has the token's issuer (yet)."""


class _NoIntrospector(MalformedToken):
    """An opaque token, and no enabled provider introspects (yet)."""


# Refusals that depend on this site's configuration or the provider's keys, not on the token alone:
# never remembered, so a provider added or a key rotated in is honoured at the next provider-list
# read (REGISTRY_TTL) or JWKS refetch, not REFUSED_FOR later. Each costs a parse and a dict lookup.
_NOT_REMEMBERED = (UnknownKey, _UntrustedIssuer, _NoIntrospector)

_seen: OrderedDict[bytes, _Seen | _Refused] = OrderedDict()
_seen_bytes = 0  # the sum of the entries' sizes
_seen_lock = threading.Lock()


def reset() -> None:
    """Forget the providers and tokens this process has seen (tests; after changing providers in code)."""
    global _seen_bytes
    _registry.expires = 0.0
    _fetch_failed.clear()
    _users.clear()
    with _seen_lock:
        _seen.clear()
        _seen_bytes = 0


def _remember(digest: bytes, entry: _Seen | _Refused) -> None:
    global _seen_bytes
    with _seen_lock:
        old = _seen.pop(digest, None)
        if old is not None:
            _seen_bytes -= old.size
        if entry.size > SEEN_MAX_BYTES:
            return  # larger than the whole budget: proven again next time rather than evict everything
        while _seen and (len(_seen) >= SEEN_MAX or _seen_bytes + entry.size > SEEN_MAX_BYTES):
            _digest, evicted = _seen.popitem(last=False)  # the oldest entry first
            _seen_bytes -= evicted.size
        _seen[digest] = entry
        _seen_bytes += entry.size


def validate(token: str) -> tuple[AccessGrant, Provider, bool]:
    """Return ``(grant, provider, stale)`` for a bearer token, or raise why it cannot be trusted.

    ``stale`` is True when a due introspection failed and ``ON_PROVIDER_DOWN`` is "allow".

    :raises TokenError: invalid_token.
    :raises ProviderUnavailable, ProviderResponseError, ConfigurationError: the token cannot be judged now.
    """
    now = time.time()
    digest = hashlib.sha256(token.encode("ascii")).digest()
    entry = _seen.get(digest)
    if isinstance(entry, _Refused):
        if now < entry.until:
            raise entry.exception()
        entry = None
    if entry is not None:
        trusted = _registry.current().by_pk.get(entry.version[0])
        if trusted is None or trusted.version != entry.version:
            entry = None  # the provider was disabled or reconfigured: prove the token again
        else:
            grant = entry.grant
            if grant.expires_at is not None and now >= grant.expires_at + conf.leeway:
                _remember(digest, _Refused.of(TokenExpired(), now + REFUSED_FOR))
                raise TokenExpired()
            if entry.checked_at is None or now - entry.checked_at < conf.revalidate_seconds:
                return grant, trusted.runtime.provider, False
            return _introspect_again(digest, token, trusted, entry, now)
    try:
        grant, trusted, checked_at, local = _prove(token, digest, now)
    except TokenError as exc:
        if not isinstance(exc, _NOT_REMEMBERED):
            _remember(digest, _Refused.of(exc, now + REFUSED_FOR))
        raise
    _remember(digest, _Seen.of(grant, trusted.version, checked_at, local))
    return grant, trusted.runtime.provider, False


def _prove(token: str, digest: bytes, now: float) -> tuple[AccessGrant, _Trusted, float | None, AccessGrant | None]:
    registry = _registry.current()
    if not jws_mod.looks_like_jws(token):
        asker = registry.opaque
        if asker is None:
            raise _NoIntrospector("The token is not a JWT and no provider introspects opaque tokens.")
        siblings = registry.by_issuer[asker.runtime.provider.issuer]
        candidates = (asker, *(t for t in siblings if t.introspects_only and t is not asker))
        return _prove_by_introspection(token, digest, now, candidates, ())
    parsed = jws_mod.parse(token)
    issuer = parsed.claims.get("iss")
    rows = registry.by_issuer.get(issuer, ()) if isinstance(issuer, str) else ()
    if not rows:
        raise _UntrustedIssuer("iss", "The token was not issued by a provider this site trusts.")
    # The rows whose audiences the token names first, default first among equals (a stable sort):
    # two clients of one issuer each accept their own tokens.
    token_audiences = audiences_of(parsed.claims.get("aud"))
    ordered = sorted(rows, key=lambda t: set(t.runtime.provider.audience_list).isdisjoint(token_audiences))
    by_introspection = tuple(t for t in ordered if t.introspects_only)
    first = ordered[0]
    named = not set(first.runtime.provider.audience_list).isdisjoint(token_audiences)
    if first.introspects_only or (not named and by_introspection):
        return _prove_by_introspection(token, digest, now, by_introspection, token_audiences)
    # Local checks (RFC 9068 section 4); a token naming no row's audience is refused by them ("aud").
    runtime = first.runtime
    provider = runtime.provider
    with _fetching(first):
        mode = first.mode
        claims = tokens_mod.validate_access_token(
            parsed,
            key_for=runtime.keys.key_for,
            issuer=provider.issuer,
            audiences=provider.audience_list,
            algorithms=runtime.algorithms,
            now=now,
            leeway=conf.leeway,
        )
    local = grant_from_claims(
        provider.issuer, claims, own_client_id=provider.client_id, machine_clients=provider.machine_client_set
    )
    if mode == "jwt":
        return local, first, None, local
    # jwt+introspection: the provider signed this token, so asking about it spends no budget.
    info, checked_at = _shared_introspection(first, token, digest, now, budgeted=False)
    return _merge(first, info, now, local, ()), first, checked_at, local


# Provider pk -> when (monotonic) fetching its discovery document or keys last failed, in this process.
_fetch_failed: dict[int, float] = {}


@contextmanager
def _fetching(trusted: _Trusted) -> Iterator[None]:
    """Spare a provider whose discovery document or keys could not be fetched moments ago.

    Discovery and the JWKS are fetched when the shared cache has none; while the provider fails,
    every bearer request (anyone can forge a token naming a trusted issuer) would fetch again and
    hold a worker for up to ``HTTP_TIMEOUT``. For ``PROVIDER_DOWN_BACKOFF`` seconds after a failure
    this process answers 503 at once instead. Per process, so it never touches the down flag that
    sessions read.
    """
    pk = trusted.version[0]
    failed = _fetch_failed.get(pk)
    if failed is not None and time.monotonic() - failed < conf.provider_down_backoff:
        raise ProviderUnavailable("The identity provider's configuration or keys could not be fetched moments ago.")
    try:
        yield
    except (ProviderUnavailable, ProviderResponseError):
        runtime = trusted.runtime
        # Only when nothing is at hand: a failed refetch for an unknown kid (rate-limited already,
        # and any token can ask for one) must not close the door to tokens with known keys.
        if "metadata" not in runtime.__dict__ or runtime.cache.get(runtime.keys.cache_key) is None:
            _fetch_failed[pk] = time.monotonic()
        raise
    _fetch_failed.pop(pk, None)


def _prove_by_introspection(
    token: str, digest: bytes, now: float, candidates: tuple[_Trusted, ...], token_audiences: tuple[str, ...]
) -> tuple[AccessGrant, _Trusted, float | None, AccessGrant | None]:
    """Ask the first candidate's provider about a token nothing local could verify (budgeted), then
    take the first candidate row the answer shows the token is for (several clients of one issuer)."""
    info, checked_at = _shared_introspection(candidates[0], token, digest, now, budgeted=True)
    grant, trusted = _choose_row(candidates, info, now, token_audiences)
    return grant, trusted, checked_at, None


def _choose_row(
    candidates: tuple[_Trusted, ...], info: TokenInfo, now: float, token_audiences: tuple[str, ...]
) -> tuple[AccessGrant, _Trusted]:
    """The first row whose audiences the answer (or the JWT's own aud) establishes; failing that, the
    first row that explicitly does not require it. Refusals other than the audience are the same for
    every row of an issuer and are raised at once."""
    refused: InvalidClaim | None = None
    for require in (True, False):
        for trusted in candidates:
            if not require and trusted.runtime.provider.access_token_require_audience:
                continue
            try:
                return _merge(trusted, info, now, None, token_audiences, require_audience=require), trusted
            except InvalidClaim as exc:
                if exc.claim != "aud":
                    raise
                refused = refused or exc
    raise refused or InvalidClaim("aud", "No provider row could take the token.")


def _introspect_again(
    digest: bytes, token: str, trusted: _Trusted, entry: _Seen, now: float
) -> tuple[AccessGrant, Provider, bool]:
    provider = trusted.runtime.provider
    try:
        info, checked_at = _shared_introspection(trusted, token, digest, now, budgeted=False)
        token_audiences = () if entry.local is not None else _unverified_audiences(token)
        grant = _merge(
            trusted,
            info,
            now,
            entry.local,
            token_audiences,
            require_audience=provider.access_token_require_audience,
        )
    except TokenError as exc:
        _remember(digest, _Refused.of(exc, now + REFUSED_FOR))
        raise
    except (ProviderUnavailable, ProviderResponseError) as exc:
        # Only a call that failed marks the provider down: a refusal *because* it is marked down (or
        # because the cache failed) must not set the flag again, or steady traffic keeps it down forever.
        if getattr(exc, "provider_asked", True) and not isinstance(exc, CacheUnavailable):
            trusted.runtime.mark_down()  # never raises, even with the cache failing too
        if conf.on_provider_down == "allow":
            logger.warning("Using the last confirmed grant of a bearer token: %s", exc.description)
            return entry.grant, provider, True
        raise
    _remember(digest, _Seen.of(grant, trusted.version, checked_at, entry.local))
    return grant, provider, False


class _IntrospectionBudgetExhausted(ProviderUnavailable):
    """This site's own limit on asking the provider about tokens it has never seen was reached."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__("The budget of introspection calls for unseen tokens is spent for this window.")


class _NotAsked(Exception):
    """Raised inside single_flight's compute to give up before calling the provider.

    Not a DuoOIDCError, so single_flight does not share it with other workers as the token's answer.
    """

    def __init__(self, error: DuoOIDCError) -> None:
        super().__init__()
        self.error = error


def _spend_budget(trusted: _Trusted, now: float) -> None:
    """Take one introspection call from the provider's shared budget for unseen tokens, or raise.

    Counted in the cache (all workers), per provider, per fixed window of
    ``BEARER_INTROSPECTION_WINDOW`` seconds: at most ``BEARER_INTROSPECTION_BUDGET`` calls.
    """
    window, budget = conf.bearer_introspection_window, conf.bearer_introspection_budget
    index = int(now // window)
    retry_after = max(1, int((index + 1) * window - now) + 1)
    cache = trusted.runtime.cache
    key = f"duo_oidc:bearer:budget:{trusted.runtime.provider.slug}:{index}"
    cache.add(key, 0, window + 1)
    try:
        used = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, window + 1)
        used = 1
    if used > budget:
        if used == budget + 1:  # once per window and provider, not once per request
            logger.warning(
                "Bearer introspection budget of provider %s spent (%d unseen tokens in %ds): "
                "answering 503 to unseen tokens until the window ends",
                trusted.runtime.provider.slug,
                budget,
                int(window),
            )
        raise _IntrospectionBudgetExhausted(retry_after)


def _shared_introspection(
    trusted: _Trusted, token: str, digest: bytes, now: float, *, budgeted: bool
) -> tuple[TokenInfo, float]:
    """Ask the provider about ``token`` once per window for all workers; return the answer and its time.

    A provider marked down is not asked. ``budgeted``: the token was not verified locally (an opaque
    token, or a JWT in introspection mode), so anyone can make one up: the call is taken from the
    provider's budget for unseen tokens. An answer another worker already got costs nothing.
    """
    runtime = trusted.runtime
    with _fetching(trusted):
        endpoint = runtime.metadata.introspection_endpoint
    if not endpoint:
        raise ConfigurationError(
            f"Provider {runtime.provider.slug} validates bearer tokens by introspection but advertises no endpoint."
        )
    key = "duo_oidc:bearer:introspection:" + digest.hex()

    def ask() -> dict[str, Any]:
        if runtime.recently_down():
            raise _NotAsked(ProviderUnavailable("The identity provider failed moments ago."))
        if budgeted:
            try:
                _spend_budget(trusted, now)
            except _IntrospectionBudgetExhausted as exc:
                raise _NotAsked(exc) from None
        info = introspect(runtime.http, endpoint, runtime.provider.credentials(), token)
        return {"raw": info.raw, "at": time.time()}

    def keep_for(answer: dict[str, Any]) -> float:
        # Never beyond the window, nor beyond the token's life (RFC 7662 section 4: caching trades
        # freshness for load; an expired token's answer is worthless).
        exp = answer["raw"].get("exp")
        lifetime = float(exp) - now if isinstance(exp, int | float) and not isinstance(exp, bool) else None
        window = conf.revalidate_seconds
        return max(0.0, min(window, lifetime) if lifetime is not None else window)

    try:
        answer = single_flight(runtime.cache, key, ask, ttl=keep_for, lock_timeout=conf.http_timeout + 5)
    except _NotAsked as stop:
        stop.error.provider_asked = False  # type: ignore[attr-defined]  # no call failed: not a reason to mark down
        raise stop.error from None
    return TokenInfo.from_answer(answer["raw"]), float(answer["at"])


def _unverified_audiences(token: str) -> tuple[str, ...]:
    """The ``aud`` of a JWS-shaped token, read without verifying it (see grant_from_introspection)."""
    if not jws_mod.looks_like_jws(token):
        return ()
    try:
        return audiences_of(jws_mod.parse(token).claims.get("aud"))
    except TokenError:
        return ()


def _merge(
    trusted: _Trusted,
    info: TokenInfo,
    now: float,
    local: AccessGrant | None,
    token_audiences: tuple[str, ...],
    *,
    require_audience: bool = True,
) -> AccessGrant:
    provider = trusted.runtime.provider
    return grant_from_introspection(
        provider.issuer,
        info,
        audiences=provider.audience_list,
        now=now,
        leeway=conf.leeway,
        local=local,
        own_client_id=provider.client_id,
        machine_clients=provider.machine_client_set,
        require_audience=require_audience,
        token_audiences=token_audiences,
    )


# The request side --------------------------------------------------------------------------------


class BearerContext:
    """``request.oidc`` on a bearer-authenticated request: the same questions as a session's, answered
    from the token's grant. ``error`` holds why the request is refused, if it is."""

    mode = "bearer"

    def __init__(
        self,
        *,
        grant: AccessGrant | None = None,
        provider: Provider | None = None,
        error: DuoOIDCError | None = None,
        stale: bool = False,
    ) -> None:
        self.grant = grant
        self.error = error
        self.stale = stale
        self._provider = provider

    @property
    def is_authenticated(self) -> bool:
        """True when a valid token was presented (a user's or a client's)."""
        return self.grant is not None

    @property
    def provider(self) -> str | None:
        return self._provider.slug if self._provider is not None else None

    @property
    def sub(self) -> str | None:
        return self.grant.sub if self.grant else None

    @property
    def client_id(self) -> str | None:
        """The OAuth client the token was issued to, when the provider says."""
        return self.grant.client_id if self.grant else None

    @property
    def is_client(self) -> bool:
        """True for a client-credentials token: a server calling, with no user behind it."""
        return bool(self.grant and self.grant.is_client)

    @property
    def scopes(self) -> frozenset[str]:
        return self.grant.scopes if self.grant else frozenset()

    @property
    def expires_at(self) -> float | None:
        return self.grant.expires_at if self.grant else None

    @property
    def auth_time(self) -> float | None:
        return self.grant.auth_time if self.grant else None

    @property
    def claims(self) -> dict[str, Any]:
        """The token's claims (or the introspection answer), for reading; the token itself is not kept."""
        return dict(self.grant.claims) if self.grant else {}

    def require_scopes(self, required: frozenset[str], *, any_of: bool = False, deny_stale: bool = True) -> None:
        """The same decision as a session's (:meth:`OIDCContext.require_scopes`)."""
        if self.stale and deny_stale:
            raise ProviderUnavailable("Your access could not be confirmed with the identity provider right now.")
        if missing_scopes(required, self.scopes, any_of=any_of):
            raise InsufficientScope(required, self.scopes)

    def authenticated_within(self, max_age: int, now: float | None = None) -> bool:
        auth_time = self.auth_time
        return auth_time is not None and (now or time.time()) - auth_time <= max_age

    def __repr__(self) -> str:
        state = "error" if self.error else "client" if self.is_client else "user" if self.grant else "none"
        return f"<BearerContext {state} provider={self.provider} scopes={format_scopes(self.scopes)!r}>"


class _InactiveUser(InvalidClaim):
    """The token's subject is linked to a user who is inactive on this site."""

    def __init__(self) -> None:
        super().__init__("sub", "The user linked to the token's subject is inactive on this site.")


# Which user a user token's subject is linked to, and whether it may log in: remembered per process for
# at most USER_TTL seconds, and forgotten at once in this process when a user or an identity is saved
# or deleted (apps.py connects forget_linked_users). A seen token on a view that never reads
# request.user then costs no database round trip; a user deactivated by another process (a worker, a
# sync job) is refused within USER_TTL, and is never request.user meanwhile (the lazy load re-checks).
USER_TTL = 1.0
USERS_MAX = 10_000
_users: dict[tuple[int, str], tuple[int | None, bool, float]] = {}


def forget_linked_users(**_: Any) -> None:
    """Forget which users token subjects are linked to (a user or an identity changed)."""
    _users.clear()


def _linked_user_pk(grant: AccessGrant, provider: Provider) -> int | None:
    """The pk of the active user linked to a user token's subject, or None (a client, or no link here).

    :raises _InactiveUser: the linked user may not log in (``is_active`` False).
    :raises ProviderUnavailable: the database cannot be read (503, never a 500, never a guess).
    """
    if grant.is_client or grant.sub is None:
        return None  # a server calling for itself is never a logged-in user
    key = (provider.pk, grant.sub)
    now = time.monotonic()
    found = _users.get(key)
    if found is None or now >= found[2]:
        try:
            link = _identity_link(provider, grant.sub)
        except DatabaseError as exc:
            raise ProviderUnavailable("This site's user directory cannot be read right now.") from exc
        # No link: a subject that never logged in here (a valid token, no user).
        found = (link[0], link[1], now + USER_TTL) if link else (None, True, now + USER_TTL)
        if len(_users) >= USERS_MAX:
            _users.clear()
        _users[key] = found
    user_pk, active, _expires = found
    if not active:
        raise _InactiveUser()
    return user_pk


@functools.cache
def _users_have_is_active() -> bool:
    try:
        get_user_model()._meta.get_field("is_active")
    except FieldDoesNotExist:
        return False  # a custom user model without the field: every user may log in (AbstractBaseUser)
    return True


def _identity_link(provider: Provider, sub: str) -> tuple[int, bool] | None:
    """``(user pk, may log in)`` of the identity ``(provider, sub)``, in one indexed query, or None."""
    identities = Identity.objects.filter(provider_id=provider.pk, sub=sub)
    if _users_have_is_active():
        row = identities.values_list("user_id", "user__is_active")[:1]
        return (row[0][0], bool(row[0][1])) if row else None
    pks = identities.values_list("user_id", flat=True)[:1]
    return (pks[0], True) if pks else None


def _load_user(user_pk: int | None) -> Any:
    """The user for ``request.user``: read when first touched, and only while it may still log in."""
    if user_pk is None:
        return AnonymousUser()
    user = get_user_model()._default_manager.filter(pk=user_pk).first()
    if user is None or not getattr(user, "is_active", True):
        return AnonymousUser()  # deactivated since the link was remembered: never served as that user
    return user


@sensitive_variables()  # the token, here and in every function it calls
def authenticate(request: HttpRequest, *, token_only: bool = True) -> BearerContext:
    """Authenticate ``request`` by its bearer token, once; set ``request.oidc`` and ``request.user``.

    Never raises for anything the client sent: the outcome, including a refusal, is in the context.
    A request without a bearer token gets a context with neither grant nor error. With ``token_only``
    (views that answer to tokens only: ``@bearer_auth``, ``BearerAuthMixin``) that empty context is
    set and the user is anonymous, so a session never opens the view. With ``token_only=False``
    (DRF, where the next authentication class may accept the session) a request without bearer
    credentials is left untouched: nothing is set and the empty context is only returned.

    ``request.user`` is the token's linked user, read (one query) when the view first touches it;
    anonymous for a client's token, a subject with no identity here, or a refusal. A linked user who
    is inactive refuses the token (``invalid_token``); see :data:`USER_TTL`.
    """
    existing = getattr(request, "oidc", None)
    if isinstance(existing, BearerContext):
        return existing
    context, user_pk = _authenticate(request)
    if not token_only and context.grant is None and context.error is None:
        return context
    request.oidc = context  # type: ignore[attr-defined]
    loaded: list[Any] = []

    def load() -> Any:
        if not loaded:
            loaded.append(_load_user(user_pk))
        return loaded[0]

    user: Any = SimpleLazyObject(load) if user_pk is not None else AnonymousUser()

    async def auser() -> Any:  # as django.contrib.auth's middleware offers async views
        return await sync_to_async(load)() if user_pk is not None else user

    request.user = user
    request.auser = auser  # type: ignore[attr-defined]
    return context


def _hide_posted_token(request: HttpRequest) -> None:
    """A token posted in a form (refused below) must not show in an error report of this request."""
    hidden = getattr(request, "sensitive_post_parameters", [])
    if hidden != "__ALL__" and "access_token" not in hidden:
        request.sensitive_post_parameters = [*hidden, "access_token"]  # type: ignore[attr-defined]


def _authenticate(request: HttpRequest) -> tuple[BearerContext, int | None]:
    _hide_posted_token(request)
    try:
        token = token_from_header(request.META.get("HTTP_AUTHORIZATION"))
        # RFC 6750 sections 2.2/2.3 are optional and RFC 9700 section 2.5 says not to put tokens in
        # URLs: a token anywhere but the header is refused (invalid_request), never silently ignored.
        if "access_token" in request.GET or (
            request.content_type == "application/x-www-form-urlencoded"
            and request.method in ("POST", "PUT", "PATCH", "DELETE")
            and "access_token" in request.POST
        ):
            raise InvalidRequest("Access tokens are accepted in the Authorization header only.")
        if token is None:
            return BearerContext(), None
        grant, provider, stale = validate(token)
        user_pk = _linked_user_pk(grant, provider)
    except DuoOIDCError as exc:
        _log_refusal(request, exc)
        return BearerContext(error=exc), None
    return BearerContext(grant=grant, provider=provider, stale=stale), user_pk


def _log_refusal(request: HttpRequest, exc: DuoOIDCError) -> None:
    reason = f"{type(exc).__name__}: {exc.description}"
    if isinstance(exc, InvalidClaim):
        reason += f" (claim {exc.claim})"
    level = logging.INFO if isinstance(exc, TokenExpired) else logging.WARNING
    logger.log(level, "Bearer request to %s refused: %s", request.path, reason)


# Responses (RFC 6750 section 3) ------------------------------------------------------------------


def _challenge_base(request: HttpRequest) -> dict[str, str | None]:
    from .resource import metadata_url

    return {"realm": conf.bearer_realm or request.get_host(), "resource_metadata": metadata_url(request)}


@dataclass(frozen=True)
class Refusal:
    """An RFC 6750 refusal: the status, the JSON body and the headers (``WWW-Authenticate`` included)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def refusal(
    request: HttpRequest,
    exc: DuoOIDCError | None,
    *,
    scope: frozenset[str] | None = None,
    max_age: int | None = None,
) -> Refusal:
    """Describe the answer to a refused bearer request; ``exc`` None means no credentials were sent."""
    base = _challenge_base(request)
    headers = {"Cache-Control": "no-store"}
    if exc is None:
        # RFC 6750 section 3: no credentials, so no error code.
        headers["WWW-Authenticate"] = challenge(**base)
        return Refusal(401, {"error_description": "This resource needs a bearer access token."}, headers)
    if max_age is not None:
        # RFC 9470 section 3: the authentication behind the token is too old for this resource.
        description = "A more recent authentication is required."
        error, status = "insufficient_user_authentication", 401
        headers["WWW-Authenticate"] = challenge(**base, error=error, description=description, max_age=max_age)
    elif isinstance(exc, InsufficientScope):
        error, status = "insufficient_scope", 403
        description = "The access token does not carry the scope this resource requires."
        headers["WWW-Authenticate"] = challenge(
            **base, error=error, description=description, scope=scope if scope is not None else exc.required
        )
    elif isinstance(exc, InvalidRequest):
        error, status, description = "invalid_request", 400, exc.description
        headers["WWW-Authenticate"] = challenge(**base, error=error, description=description)
    elif isinstance(exc, TokenError):
        # The description says no more than "expired" or "not valid": which check failed is logged, not told.
        error, status = "invalid_token", 401
        description = (
            "The access token has expired." if isinstance(exc, TokenExpired) else "The access token is not valid."
        )
        headers["WWW-Authenticate"] = challenge(**base, error=error, description=description)
    else:
        # The provider could not be asked (or is misconfigured): fail closed, and say it is temporary.
        error, status = "temporarily_unavailable", 503
        description = "The access token could not be checked with the identity provider right now."
        retry_after = getattr(exc, "retry_after", None) or max(1, int(conf.provider_down_backoff))
        headers["Retry-After"] = str(retry_after)
    return Refusal(status, {"error": error, "error_description": description}, headers)


def error_response(
    request: HttpRequest,
    exc: DuoOIDCError | None,
    *,
    scope: frozenset[str] | None = None,
    max_age: int | None = None,
) -> JsonResponse:
    """The RFC 6750 answer for a refused bearer request, as a JSON response."""
    refused = refusal(request, exc, scope=scope, max_age=max_age)
    return JsonResponse(refused.body, status=refused.status, headers=refused.headers)


def authenticate_or_refuse(request: HttpRequest) -> JsonResponse | None:
    """Authenticate the request by bearer token; return None if it may proceed, else the refusal."""
    context = authenticate(request)
    if context.error is not None:
        return error_response(request, context.error)
    if context.grant is None:
        return error_response(request, None)
    return None


def refuse_scope(request: HttpRequest, exc: InsufficientScope, *, view_name: str = "") -> JsonResponse:
    """Log and signal a bearer request without the scopes, and answer 403 insufficient_scope."""
    note_scope_denied(request, exc, view_name=view_name)
    return error_response(request, exc)


def note_scope_denied(request: HttpRequest, exc: InsufficientScope, *, view_name: str = "") -> None:
    """Log the denial and send ``scope_denied``, as for sessions."""
    context = request.oidc  # type: ignore[attr-defined]
    who = f"client {context.client_id}" if context.is_client else f"sub {context.sub}"
    logger.warning(
        "Scope denied: bearer %s view=%s missing=%s", who, view_name or request.path, format_scopes(exc.missing)
    )
    signals.send_scope_denied(request, exc, view_name=view_name)
