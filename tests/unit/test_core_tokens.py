"""ID-token and access-token validation: every check is a test that fails when the check is removed."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from django_duo_oidc.core import errors
from django_duo_oidc.core.jwks import KeySet
from django_duo_oidc.core.tokens import at_hash, validate_access_token, validate_id_token
from tests.fakeop import _hs256, public_jwk, rsa_key

from .helpers import CLIENT_ID, ISSUER, KID, NOW, id_claims, jwks, sign

KEYS = KeySet(jwks(KID))


def validate(token: str, keys: KeySet = KEYS, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "key_for": keys.find,
        "issuer": ISSUER,
        "client_id": CLIENT_ID,
        "algorithms": ["RS256"],
        "now": NOW,
        "leeway": 30,
        "nonce": "n-0S6_WzA2Mj",
    }
    options.update(kwargs)
    return validate_id_token(token, **options)


def test_valid_duo_shaped_token_passes() -> None:
    claims = validate(sign(id_claims()))
    assert claims["sub"] == "b1cee4e5" * 8
    assert claims["email"] == "alice@example.test"


@pytest.mark.parametrize(
    ("overrides", "error", "claim"),
    [
        ({"iss": ISSUER + "/"}, errors.InvalidClaim, "iss"),
        ({"iss": "https://evil.example/oidc/x"}, errors.InvalidClaim, "iss"),
        ({"aud": "someone-else"}, errors.InvalidClaim, "aud"),
        ({"aud": [CLIENT_ID, "untrusted"], "azp": CLIENT_ID}, errors.InvalidClaim, "aud"),
        ({"azp": "another-client"}, errors.InvalidClaim, "azp"),
        ({"nonce": "other"}, errors.InvalidClaim, "nonce"),
        ({"nonce": None}, errors.InvalidClaim, "nonce"),
        ({"sub": None}, errors.InvalidClaim, "sub"),
        ({"sub": "x" * 256}, errors.InvalidClaim, "sub"),
        ({"exp": None}, errors.InvalidClaim, "exp"),
        ({"iat": None}, errors.InvalidClaim, "iat"),
        ({"iat": int(NOW) + 120}, errors.InvalidClaim, "iat"),
        ({"exp": "tomorrow"}, errors.InvalidClaim, "exp"),
    ],
)
def test_bad_claims_are_refused(overrides: dict[str, Any], error: type[Exception], claim: str) -> None:
    with pytest.raises(error) as info:
        validate(sign(id_claims(**overrides)))
    assert info.value.claim == claim


def test_several_audiences_need_azp_even_when_trusted() -> None:
    token = sign(id_claims(aud=[CLIENT_ID, "api"]))
    with pytest.raises(errors.InvalidClaim) as info:
        validate(token, trusted_audiences=["api"])
    assert info.value.claim == "azp"
    token = sign(id_claims(aud=[CLIENT_ID, "api"], azp=CLIENT_ID))
    assert validate(token, trusted_audiences=["api"])["azp"] == CLIENT_ID


def test_expiry_honours_leeway_both_ways() -> None:
    assert validate(sign(id_claims(exp=int(NOW) - 10)), leeway=30)
    with pytest.raises(errors.TokenExpired):
        validate(sign(id_claims(exp=int(NOW) - 31)), leeway=30)


def test_nbf_in_the_future_is_refused() -> None:
    with pytest.raises(errors.TokenExpired):
        validate(sign(id_claims(nbf=int(NOW) + 100)))
    assert validate(sign(id_claims(nbf=int(NOW) + 10)))


def test_max_age_needs_a_recent_auth_time() -> None:
    assert validate(sign(id_claims(auth_time=int(NOW) - 200)), max_age=300)
    with pytest.raises(errors.InvalidClaim) as info:
        validate(sign(id_claims(auth_time=int(NOW) - 400)), max_age=300)
    assert info.value.claim == "auth_time"
    with pytest.raises(errors.InvalidClaim):
        validate(sign(id_claims(auth_time=None)), max_age=300)


def test_at_hash_is_checked_when_present() -> None:
    token = sign(id_claims(at_hash=at_hash("the-access-token", "RS256")))
    assert validate(token, access_token="the-access-token")
    with pytest.raises(errors.InvalidClaim) as info:
        validate(token, access_token="another-access-token")
    assert info.value.claim == "at_hash"


def test_at_hash_matches_the_oidc_core_example() -> None:
    # OIDC Core, Appendix A.3 (id_token token): access token and its at_hash.
    assert at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "RS256") == "77QmUPtjPfzWtF2AnpK9RQ"


def test_alg_none_is_refused() -> None:
    token = jwt.encode(id_claims(), None, algorithm="none", headers={"kid": KID})
    with pytest.raises(errors.BadSignature):
        validate(token)


def test_hmac_with_the_public_key_is_refused() -> None:
    token = _hs256(id_claims(), str(public_jwk(rsa_key(), KID)).encode(), {"kid": KID})
    with pytest.raises(errors.BadSignature):
        validate(token)


def test_hmac_with_the_client_secret_is_refused() -> None:
    token = jwt.encode(id_claims(), "c" * 40, algorithm="HS256", headers={"kid": KID})
    with pytest.raises(errors.BadSignature):
        validate(token)


def test_algorithm_outside_the_allow_list_is_refused() -> None:
    with pytest.raises(errors.BadSignature):
        validate(sign(id_claims()), algorithms=["RS512"])


def test_forged_signature_is_refused() -> None:
    with pytest.raises(errors.BadSignature):
        validate(sign(id_claims(), key_name="attacker"))


def test_tampered_payload_is_refused() -> None:
    header, _payload, signature = sign(id_claims()).split(".")
    other = sign(id_claims(sub="mallory")).split(".")[1]
    with pytest.raises(errors.BadSignature):
        validate(f"{header}.{other}.{signature}")


def test_unknown_kid_is_refused() -> None:
    with pytest.raises(errors.UnknownKey):
        validate(sign(id_claims(), kid="not-published"))


def test_token_without_kid_uses_the_only_key() -> None:
    assert validate(sign(id_claims(), kid=None))


def test_token_without_kid_is_refused_when_ambiguous() -> None:
    keys = KeySet({"keys": [*jwks(KID)["keys"], *jwks("k2", key_name="second")["keys"]]})
    with pytest.raises(errors.MalformedToken):
        validate(sign(id_claims(), kid=None), keys=keys)
    assert validate(sign(id_claims(), kid="k2", key_name="second"), keys=keys)


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "x" * 20000 + ".a.b", "e30.e30.e30"])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(errors.MalformedToken):
        validate(token)


def test_access_token_type_is_refused_as_id_token() -> None:
    with pytest.raises(errors.InvalidClaim) as info:
        validate(sign(id_claims(), typ="at+jwt"))
    assert info.value.claim == "typ"


def access_claims(**overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": ISSUER,
        "sub": "b1cee4e5" * 8,
        "aud": CLIENT_ID,
        "exp": int(NOW) + 3600,
        "iat": int(NOW),
        "scope": "email profile openid",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def validate_at(token: str, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "key_for": KEYS.find,
        "issuer": ISSUER,
        "audiences": [CLIENT_ID],
        "algorithms": ["RS256"],
        "now": NOW,
    }
    options.update(kwargs)
    return validate_access_token(token, **options)


def test_duo_access_token_with_lowercase_jwt_typ_passes() -> None:
    assert validate_at(sign(access_claims()))["scope"] == "email profile openid"


def test_rfc9068_access_token_passes() -> None:
    assert validate_at(sign(access_claims(), typ="at+jwt"))


def test_id_token_is_refused_as_access_token() -> None:
    with pytest.raises(errors.InvalidClaim):
        validate_at(sign(id_claims()))


def test_access_token_for_another_audience_is_refused() -> None:
    with pytest.raises(errors.InvalidClaim):
        validate_at(sign(access_claims(aud="urn:other")))


def test_access_token_with_foreign_typ_is_refused() -> None:
    with pytest.raises(errors.InvalidClaim):
        validate_at(sign(access_claims(), typ="secevent+jwt"))
