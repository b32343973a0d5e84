"""Is this bearer token valid, for whom and with which scopes: proven once, then cheap (see :mod:`.memory`).

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

Over 300 lines on purpose: one concept, the path of a token from first sight to a grant (which row,
which mode, local checks, the introspection budget, the shared answer, the merge), read top to bottom.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from ..conf import conf
from ..core import jws as jws_mod
from ..core import tokens as tokens_mod
from ..core.bearer import (
    AccessGrant,
    audiences_of,
    grant_from_claims,
    grant_from_introspection,
)
from ..core.errors import (
    CacheUnavailable,
    ConfigurationError,
    DuoOIDCError,
    InvalidClaim,
    ProviderResponseError,
    ProviderUnavailable,
    TokenError,
    TokenExpired,
)
from ..core.introspection import TokenInfo, introspect
from ..models import Provider
from ..state.singleflight import single_flight
from .memory import (
    _NOT_REMEMBERED,
    REFUSED_FOR,
    _NoIntrospector,
    _Refused,
    _remember,
    _Seen,
    _seen,
    _UntrustedIssuer,
)
from .registry import _registry, _Trusted

logger = logging.getLogger("django_duo_oidc")


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
            # Sent again: as cheap as an acceptance (no parse, no query, no call), and logged once per
            # REFUSED_FOR (the first refusal), so a replayed token cannot flood the log either.
            refused = entry.exception()
            refused.remembered = True
            raise refused
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
    _remember(digest, _Seen.of(grant, trusted.version, checked_at, local, token_length=len(token)))
    return grant, trusted.runtime.provider, False


def _prove(token: str, digest: bytes, now: float) -> tuple[AccessGrant, _Trusted, float | None, AccessGrant | None]:
    registry = _registry.current()
    if not jws_mod.looks_like_jws(token):
        asker = registry.opaque
        if asker is None:
            raise _NoIntrospector("The token is not a JWT and no provider introspects opaque tokens.")
        siblings = registry.by_issuer[asker.runtime.provider.issuer]
        candidates = (asker, *(t for t in siblings if t.introspects_only and t is not asker))
        return _prove_by_introspection(token, digest, now, candidates, (), issuer_known=False)
    parsed = jws_mod.parse(token)
    issuer = parsed.claims.get("iss")
    rows = registry.by_issuer.get(issuer, ()) if isinstance(issuer, str) else ()
    if not rows:
        raise _UntrustedIssuer("iss", "The token was not issued by a provider this site trusts.")
    # The rows whose audiences the token names first, default first among equals (a stable sort):
    # two clients of one issuer each accept their own tokens.
    token_audiences = audiences_of(parsed.claims.get("aud"))
    ordered = rows if len(rows) == 1 else sorted(rows, key=lambda t: t.audiences.isdisjoint(token_audiences))
    by_introspection = tuple(t for t in ordered if t.introspects_only)
    first = ordered[0]
    named = not first.audiences.isdisjoint(token_audiences)
    if first.introspects_only or (not named and by_introspection):
        # The token's own iss chose these rows: the exact string the server calls active says it.
        return _prove_by_introspection(token, digest, now, by_introspection, token_audiences, issuer_known=True)
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
    return _merge(first, info, now, local, (), issuer_known=True), first, checked_at, local


# Provider pk -> when (monotonic) fetching its discovery document or keys last failed, in this process.
_fetch_failed: dict[int, float] = {}


class _fetching:
    """Spare a provider whose discovery document or keys could not be fetched moments ago.

    Discovery and the JWKS are fetched when the shared cache has none; while the provider fails,
    every bearer request (anyone can forge a token naming a trusted issuer) would fetch again and
    hold a worker for up to ``HTTP_TIMEOUT``. For ``PROVIDER_DOWN_BACKOFF`` seconds after a failure
    this process answers 503 at once instead. Per process, so it never touches the down flag that
    sessions read. (A class rather than a generator-based context manager: it is on the path of
    every new token, where that costs a few microseconds.)
    """

    __slots__ = ("trusted",)

    def __init__(self, trusted: _Trusted) -> None:
        self.trusted = trusted

    def __enter__(self) -> None:
        failed = _fetch_failed.get(self.trusted.version[0])
        if failed is not None and time.monotonic() - failed < conf.provider_down_backoff:
            raise ProviderUnavailable("The identity provider's configuration or keys could not be fetched moments ago.")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        pk = self.trusted.version[0]
        if kind is None:
            if _fetch_failed:
                _fetch_failed.pop(pk, None)
            return
        if issubclass(kind, ProviderUnavailable | ProviderResponseError):
            runtime = self.trusted.runtime
            # Only when nothing is at hand: a failed refetch for an unknown kid (rate-limited already,
            # and any token can ask for one) must not close the door to tokens with known keys.
            if "metadata" not in runtime.__dict__ or runtime.cache.get(runtime.keys.cache_key) is None:
                _fetch_failed[pk] = time.monotonic()


def _prove_by_introspection(
    token: str,
    digest: bytes,
    now: float,
    candidates: tuple[_Trusted, ...],
    token_audiences: tuple[str, ...],
    *,
    issuer_known: bool,
) -> tuple[AccessGrant, _Trusted, float | None, AccessGrant | None]:
    """Ask the first candidate's provider about a token nothing local could verify (budgeted), then
    take the first candidate row the answer shows the token is for (several clients of one issuer)."""
    info, checked_at = _shared_introspection(candidates[0], token, digest, now, budgeted=True)
    grant, trusted = _choose_row(candidates, info, now, token_audiences, issuer_known=issuer_known)
    return grant, trusted, checked_at, None


def _choose_row(
    candidates: tuple[_Trusted, ...],
    info: TokenInfo,
    now: float,
    token_audiences: tuple[str, ...],
    *,
    issuer_known: bool,
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
                grant = _merge(
                    trusted, info, now, None, token_audiences, require_audience=require, issuer_known=issuer_known
                )
                return grant, trusted
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
            issuer_known=entry.local is not None or jws_mod.looks_like_jws(token),  # its iss chose the row
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
    _remember(digest, _Seen.of(grant, trusted.version, checked_at, entry.local, token_length=len(token)))
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
        introspector = runtime.introspector  # this provider, or the row that introspects for it
        endpoint = introspector.metadata.introspection_endpoint
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
        info = introspect(runtime.http, endpoint, introspector.provider.credentials(), token)
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
        stop.error.provider_asked = False  # no call failed: not a reason to mark down
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
    issuer_known: bool,
) -> AccessGrant:
    """The grant an introspection answer gives for ``trusted``'s row.

    With ``introspect_with`` (Global Token Introspection) the answer comes from another server, which
    answers for every server of the tenant: its client is not the token's audience (the audience is
    still this row's), and an answer about a token whose issuer nothing else establishes (an opaque
    token: ``issuer_known`` False) must name this row's issuer, or any tenant's token would pass.
    """
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
        require_issuer=provider.introspect_with_id is not None and not issuer_known,
    )
