"""The checks of Duo's 2FA result that ``duo_universal`` leaves to its caller (pure: no Django, no I/O).

What ``Client.exchange_authorization_code_for_2fa_result`` already checks (duo_universal 2.3, read from its
source): the ID token's HS512 signature with the client secret, ``aud`` = client id, ``iss`` = the token
URL, ``exp`` and ``iat`` present (60 s leeway), ``preferred_username`` equal to the username sent, and
``nonce`` when one is passed. What it does not, and :func:`check_result` adds:

- ``auth_result.result`` must be ``allow``: the SDK returns a "deny" as a normal result (REAL.md);
- ``preferred_username`` again (cheap, and this module does not trust a future SDK to keep doing it);
- ``auth_time`` present, and within the attempt (not before the password step, not in the future);
- ``auth_context.factor`` not one the site refuses (bypass codes cannot be turned off per integration in
  Duo, DUO.md section 3); when the site refuses any, a result that names no factor is refused too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..core.errors import InvalidClaim, LoginRefused

__all__ = ["Outcome", "check_result", "device_kind", "factor_of", "normalise_factor"]

# Keywords of a factor (Duo's display names such as "Duo Push", or the Admin API's "duo_push") and the
# kind of device they mean. First match wins; the order puts the more specific words first.
_DEVICE_KINDS = (
    ("bypass", "bypass code"),
    ("remembered", "remembered device"),
    ("webauthn", "security key or passkey"),
    ("security key", "security key or passkey"),
    ("passkey", "security key or passkey"),
    ("touch id", "security key or passkey"),
    ("push", "mobile phone (push)"),
    ("sms", "phone (text message)"),
    ("phone", "phone (call)"),
    ("call", "phone (call)"),
    ("yubikey", "hardware token"),
    ("hardware", "hardware token"),
    ("token", "hardware token"),
    ("passcode", "passcode"),
)


@dataclass(frozen=True)
class Outcome:
    """An accepted second factor: what the audit records (never a secret)."""

    factor: str
    device: str
    auth_time: float


def normalise_factor(factor: str) -> str:
    """``"Bypass Code"``, ``"bypass_code"`` and ``" BYPASS  code "`` all become ``"bypass code"``."""
    return " ".join(factor.replace("_", " ").casefold().split())


def device_kind(factor: str) -> str:
    """The kind of device a factor used ("mobile phone (push)", "hardware token", ...), or "other"."""
    normal = normalise_factor(factor)
    for keyword, kind in _DEVICE_KINDS:
        if keyword in normal:
            return kind
    return "other" if normal else ""


def factor_of(claims: Any) -> str:
    """The factor Duo's answer names (``auth_context.factor``, e.g. "Duo Push"), cut to 64 characters; ""."""
    context = claims.get("auth_context") if isinstance(claims, dict) else None
    factor = context.get("factor") if isinstance(context, dict) else None
    return factor[:64] if isinstance(factor, str) else ""


def check_result(
    claims: dict[str, Any],
    *,
    username: str,
    refused_factors: frozenset[str],
    started_at: float,
    now: float,
    leeway: float,
) -> Outcome:
    """Accept the decoded 2FA result of the attempt started at ``started_at`` for ``username``, or raise.

    :raises LoginRefused: Duo did not allow it (``error="access_denied"``), or the factor is refused
        (``error="factor_refused"``).
    :raises InvalidClaim: the answer is not about this attempt (username, ``auth_time``, shape).
    """
    if not isinstance(claims, dict):
        raise InvalidClaim("auth_result", "Duo's answer could not be read.")
    result = claims.get("auth_result")
    decision = result.get("result") if isinstance(result, dict) else None
    if decision != "allow":
        # Also a missing or malformed auth_result: only an explicit "allow" lets anyone in.
        raise LoginRefused("Duo did not approve this login.", error="access_denied")
    if claims.get("preferred_username") != username:
        raise InvalidClaim("preferred_username", "Duo answered for another user than the one logging in.")
    auth_time = claims.get("auth_time")
    if isinstance(auth_time, bool) or not isinstance(auth_time, int | float) or not math.isfinite(auth_time):
        # pyjwt's JSON parser accepts NaN and Infinity, which every comparison below would let through.
        raise InvalidClaim("auth_time", "Duo's answer does not say when the user authenticated.")
    # OIDC Core 2 (auth_time): the time of this authentication. It cannot predate the password step of
    # this attempt (an older approval is not an answer to this login) nor lie in the future.
    if auth_time < started_at - leeway or auth_time > now + leeway:
        raise InvalidClaim("auth_time", "Duo's answer is not about this login attempt.")
    factor = factor_of(claims)
    if refused_factors and not factor:
        # A site that refuses some factors cannot tell an unnamed one from those: closed.
        raise LoginRefused("Duo did not say which second factor was used; this site must know.", error="factor_refused")
    if normalise_factor(factor) in {normalise_factor(f) for f in refused_factors}:
        raise LoginRefused(
            f"This site does not accept this kind of second factor ({factor[:40]}). Please use another one.",
            error="factor_refused",
        )
    return Outcome(factor=factor, device=device_kind(factor), auth_time=float(auth_time))
