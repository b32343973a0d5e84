"""Issue 10, item 4: a token's ``auth_time`` (and every time claim) must be a finite number whenever present."""

from __future__ import annotations

from typing import Any

import pytest

from django_duo_oidc.core import errors

from .helpers import NOW, id_claims, sign
from .test_core_tokens import access_claims, validate, validate_at

# JSON allows no NaN, but Python's json (and PyJWT's encoder) writes and reads NaN/Infinity literals.
HOSTILE_TIMES: list[Any] = ["yesterday", True, False, [int(NOW)], {"t": 1}, "NaN", "nan", "1e999", ""]
HOSTILE_TIMES += [float("nan"), 10**400]


@pytest.mark.parametrize("value", HOSTILE_TIMES, ids=repr)
def test_id_token_auth_time_must_be_a_number(value: Any) -> None:
    # Without max_age too: the claim is stored and later compared by step-up views.
    with pytest.raises(errors.InvalidClaim) as info:
        validate(sign(id_claims(auth_time=value)))
    assert info.value.claim == "auth_time"


@pytest.mark.parametrize("value", HOSTILE_TIMES, ids=repr)
def test_access_token_auth_time_must_be_a_number(value: Any) -> None:
    with pytest.raises(errors.InvalidClaim) as info:
        validate_at(sign(access_claims(auth_time=value)))
    assert info.value.claim == "auth_time"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**400], ids=str)
@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_non_finite_times_are_refused(claim: str, value: float) -> None:
    # exp = NaN compared false with every clock: a token that never expired.
    with pytest.raises(errors.InvalidClaim) as info:
        validate(sign(id_claims(**{claim: value})))
    assert info.value.claim == claim
    with pytest.raises(errors.InvalidClaim):
        validate_at(sign(access_claims(**{claim: value})))


def test_numeric_auth_time_still_passes() -> None:
    assert validate(sign(id_claims(auth_time=int(NOW) - 10)))["auth_time"] == int(NOW) - 10
    assert validate(sign(id_claims(auth_time=NOW - 10.5)))["auth_time"] == NOW - 10.5
    assert validate_at(sign(access_claims(auth_time=int(NOW) - 10)))


# Item 6: the renewal margin shared by sessions (freshness) and the outbound client ------------------------


def test_renewal_margin_is_at_most_half_the_lifetime() -> None:
    from django_duo_oidc.core.lifetimes import renewal_margin

    assert renewal_margin(30, 3600) == 30
    assert renewal_margin(30, 20) == 10
    assert renewal_margin(30, None) == 30  # unknown lifetime (a session stored by an earlier version)
    assert renewal_margin(30, -5) == 30
