"""django_duo_oidc.mfa.result: what the app checks in Duo's 2FA result beyond duo_universal (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from django_duo_oidc.core.errors import InvalidClaim, LoginRefused
from django_duo_oidc.mfa.result import check_result, device_kind, normalise_factor

NOW = 1_800_000_000.0
STARTED = NOW - 30


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "auth_result": {"result": "allow", "status": "allow", "status_msg": "Login Successful"},
        "preferred_username": "alice",
        "auth_time": int(NOW - 5),
        "auth_context": {"factor": "Duo Push", "result": "success"},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def check(value: dict[str, Any], refused: frozenset[str] = frozenset()) -> Any:
    return check_result(value, username="alice", refused_factors=refused, started_at=STARTED, now=NOW, leeway=60)


def test_an_allow_for_this_user_now_is_accepted() -> None:
    outcome = check(claims())
    assert (outcome.factor, outcome.device, outcome.auth_time) == ("Duo Push", "mobile phone (push)", NOW - 5)


@pytest.mark.parametrize(
    "auth_result",
    [
        {"result": "deny", "status": "deny"},
        {"result": "Allow"},
        {"result": ["allow"]},
        {"status": "allow"},  # the status alone is not the decision
        "allow",
        None,
    ],
)
def test_anything_but_an_explicit_allow_is_refused(auth_result: Any) -> None:
    with pytest.raises(LoginRefused) as caught:
        check(claims(auth_result=auth_result))
    assert caught.value.error == "access_denied"


@pytest.mark.parametrize("username", ["bob", "Alice", "alice ", None, ["alice"]])
def test_another_username_is_refused(username: Any) -> None:
    value = claims()
    value["preferred_username"] = username
    with pytest.raises(InvalidClaim) as caught:
        check(value)
    assert caught.value.claim == "preferred_username"


@pytest.mark.parametrize(
    "auth_time", [None, "1800000000", True, STARTED - 61, NOW + 61, float("nan"), float("inf"), float("-inf")]
)
def test_an_auth_time_outside_this_attempt_is_refused(auth_time: Any) -> None:
    with pytest.raises(InvalidClaim) as caught:
        check(claims(auth_time=auth_time))
    assert caught.value.claim == "auth_time"


def test_auth_time_within_the_leeway_is_accepted() -> None:
    assert check(claims(auth_time=STARTED - 59)).auth_time == STARTED - 59
    assert check(claims(auth_time=NOW + 59)).auth_time == NOW + 59


@pytest.mark.parametrize("factor", ["Bypass Code", "bypass_code", " BYPASS   code "])
def test_a_refused_factor_is_refused_whatever_its_spelling(factor: str) -> None:
    with pytest.raises(LoginRefused) as caught:
        check(claims(auth_context={"factor": factor}), refused=frozenset({"Bypass Code"}))
    assert caught.value.error == "factor_refused"


def test_other_factors_pass_when_some_are_refused() -> None:
    assert check(claims(), refused=frozenset({"Bypass Code"})).factor == "Duo Push"


@pytest.mark.parametrize("context", [None, "x", {"factor": None}, {"factor": 7}, {}])
def test_a_missing_factor_is_recorded_empty(context: Any) -> None:
    outcome = check(claims(auth_context=context))
    assert (outcome.factor, outcome.device) == ("", "")


@pytest.mark.parametrize("context", [None, {}, {"factor": ""}, {"factor": 7}])
def test_a_missing_factor_is_refused_when_some_factors_are(context: Any) -> None:
    """Duo's answer that names no factor could be a bypass code: a site refusing some cannot accept it."""
    with pytest.raises(LoginRefused) as caught:
        check(claims(auth_context=context), refused=frozenset({"Bypass Code"}))
    assert caught.value.error == "factor_refused"


def test_the_factor_kept_for_the_audit_is_cut() -> None:
    assert len(check(claims(auth_context={"factor": "x" * 500})).factor) == 64


def test_not_a_dict_is_refused() -> None:
    with pytest.raises(InvalidClaim):
        check("allow")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("factor", "kind"),
    [
        ("Duo Push", "mobile phone (push)"),
        ("duo_push", "mobile phone (push)"),
        ("Verified Duo Push", "mobile phone (push)"),
        ("Phone Call", "phone (call)"),
        ("SMS Passcode", "phone (text message)"),
        ("Duo Mobile Passcode", "passcode"),
        ("Hardware Token", "hardware token"),
        ("Yubikey Passcode", "hardware token"),
        ("WebAuthn Security Key", "security key or passkey"),
        ("WebAuthn Chrome Touch ID", "security key or passkey"),
        ("Bypass Code", "bypass code"),
        ("Remembered Device", "remembered device"),
        ("Something New", "other"),
        ("", ""),
    ],
)
def test_device_kind(factor: str, kind: str) -> None:
    assert device_kind(factor) == kind


def test_normalise_factor() -> None:
    assert normalise_factor("  WebAuthn_Security  Key ") == "webauthn security key"
