"""Logout-token validation (OIDC Back-Channel Logout 1.0 section 2.6): each check is a test that fails
when the check is removed."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

from django_duo_oidc.core import errors
from django_duo_oidc.core.jwks import KeySet
from django_duo_oidc.core.tokens import BACKCHANNEL_LOGOUT_EVENT, validate_id_token, validate_logout_token
from tests.fakeop import _hs256, public_jwk, rsa_key

from .helpers import CLIENT_ID, ISSUER, KID, NOW, id_claims, jwks, sign

KEYS = KeySet(jwks(KID))


def logout_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "sid": "08a5019c-17e1-4977-8f42-65a12843ea02",
        "aud": CLIENT_ID,
        "iat": int(NOW),
        "exp": int(NOW) + 120,
        "jti": "bWJq",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def validate(token: str, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "key_for": KEYS.find,
        "issuer": ISSUER,
        "client_id": CLIENT_ID,
        "algorithms": ["RS256"],
        "now": NOW,
        "leeway": 30,
        "max_age": 120,
    }
    options.update(kwargs)
    return validate_logout_token(token, **options)


def test_a_spec_shaped_token_passes() -> None:
    claims = validate(sign(logout_claims(), typ="logout+jwt"))
    assert (claims["sub"], claims["sid"], claims["jti"]) == ("alice", logout_claims()["sid"], "bWJq")


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "logout+jwt", "application/logout+jwt"])
def test_typ_absent_or_a_logout_token_type_passes(typ: str | None) -> None:
    validate(sign(logout_claims(), typ=typ))


@pytest.mark.parametrize("typ", ["at+jwt", "secevent+jwt", 7])
def test_another_typ_is_refused(typ: Any) -> None:
    with pytest.raises(errors.InvalidClaim) as info:
        validate(sign(logout_claims(), typ=typ))
    assert info.value.claim == "typ"


@pytest.mark.parametrize(
    ("overrides", "claim"),
    [
        ({"iss": ISSUER + "/"}, "iss"),
        ({"iss": "https://evil.example/oidc/x"}, "iss"),
        ({"iss": None}, "iss"),
        ({"aud": "someone-else"}, "aud"),
        ({"aud": None}, "aud"),
        ({"aud": [CLIENT_ID, "untrusted"]}, "aud"),
        ({"aud": [7]}, "aud"),
        ({"iat": None}, "iat"),
        ({"iat": "now"}, "iat"),
        ({"iat": int(NOW) + 31}, "iat"),
        ({"jti": None}, "jti"),
        ({"jti": ""}, "jti"),
        ({"jti": 12}, "jti"),
        ({"jti": "j" * 256}, "jti"),
        ({"nonce": "n-0S6_WzA2Mj"}, "nonce"),
        ({"events": None}, "events"),
        ({"events": {}}, "events"),
        ({"events": [BACKCHANNEL_LOGOUT_EVENT]}, "events"),
        ({"events": {BACKCHANNEL_LOGOUT_EVENT: "yes"}}, "events"),
        ({"events": {BACKCHANNEL_LOGOUT_EVENT: None}}, "events"),
        ({"events": {"http://schemas.openid.net/event/other": {}}}, "events"),
        ({"sub": None, "sid": None}, "sub"),
        ({"sub": 5}, "sub"),
        ({"sub": ""}, "sub"),
        ({"sid": ["a"]}, "sid"),
        ({"sid": "s" * 256}, "sid"),
        ({"exp": "later"}, "exp"),
    ],
)
def test_bad_claims_are_refused(overrides: dict[str, Any], claim: str) -> None:
    with pytest.raises(errors.InvalidClaim) as info:
        validate(sign(logout_claims(**overrides)))
    assert info.value.claim == claim


@pytest.mark.parametrize("only", ["sub", "sid"])
def test_sub_or_sid_alone_is_enough(only: str) -> None:
    other = "sid" if only == "sub" else "sub"
    claims = validate(sign(logout_claims(**{other: None})))
    assert only in claims and other not in claims


def test_exp_is_optional_but_checked_when_present() -> None:
    validate(sign(logout_claims(exp=None)))
    with pytest.raises(errors.TokenExpired):
        validate(sign(logout_claims(exp=int(NOW) - 31)))


def test_an_old_iat_is_refused_beyond_max_age_and_leeway() -> None:
    validate(sign(logout_claims(iat=int(NOW) - 150, exp=None)))  # 120 + 30
    with pytest.raises(errors.TokenExpired):
        validate(sign(logout_claims(iat=int(NOW) - 151, exp=None)))
    with pytest.raises(errors.TokenExpired):
        validate(sign(logout_claims(iat=int(NOW) - 151, exp=None)), max_age=120)
    validate(sign(logout_claims(iat=int(NOW) - 500, exp=None)), max_age=600)


def test_nbf_in_the_future_is_refused() -> None:
    with pytest.raises(errors.TokenExpired):
        validate(sign(logout_claims(nbf=int(NOW) + 31)))


def test_a_trusted_second_audience_passes() -> None:
    validate(sign(logout_claims(aud=[CLIENT_ID, "api"])), trusted_audiences=["api"])


def test_forged_signature_is_refused() -> None:
    with pytest.raises(errors.BadSignature):
        validate(sign(logout_claims(), key_name="other"))


def test_a_tampered_payload_is_refused() -> None:
    header, _payload, signature = sign(logout_claims()).split(".")
    other = jwt.utils.base64url_encode(json.dumps(logout_claims(sub="mallory")).encode()).decode()
    with pytest.raises(errors.BadSignature):
        validate(f"{header}.{other}.{signature}")


def test_alg_none_is_refused() -> None:
    token = jwt.encode(logout_claims(), None, algorithm="none", headers={"kid": KID})
    with pytest.raises(errors.TokenError):
        validate(token)
    with pytest.raises(errors.TokenError):
        validate(token, algorithms=["RS256", "none"])  # even when someone allows it


def test_hs256_with_the_public_key_is_refused() -> None:
    token = _hs256(logout_claims(), json.dumps(public_jwk(rsa_key(), KID)).encode(), {"kid": KID})
    with pytest.raises(errors.BadSignature):
        validate(token)
    with pytest.raises(errors.BadSignature):
        validate(token, algorithms=["RS256", "HS256"])


def test_an_algorithm_off_the_providers_list_is_refused() -> None:
    with pytest.raises(errors.BadSignature):
        validate(sign(logout_claims()), algorithms=["ES256"])


@pytest.mark.parametrize("token", ["", "a.b", "x" * 20_000, "a.b.c.d", 42, None])
def test_malformed_and_huge_tokens_are_refused(token: Any) -> None:
    with pytest.raises(errors.TokenError):
        validate(token)


def test_an_id_token_is_not_a_logout_token_and_vice_versa() -> None:
    with pytest.raises(errors.InvalidClaim):
        validate(sign(id_claims(jti="j1", events={BACKCHANNEL_LOGOUT_EVENT: {}})))  # nonce
    with pytest.raises(errors.InvalidClaim):
        validate(sign(id_claims(nonce=None, jti="j1")))  # no events
    logout = sign(logout_claims(nonce=None))
    with pytest.raises(errors.TokenError):
        validate_id_token(
            logout,
            key_for=KEYS.find,
            issuer=ISSUER,
            client_id=CLIENT_ID,
            algorithms=["RS256"],
            now=NOW,
            nonce="n-0S6_WzA2Mj",
        )
