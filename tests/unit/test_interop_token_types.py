"""Issue 14, interop defect 5: access tokens that carry ``nonce`` (Keycloak up to 24, and later versions
with a compatibility mapper) are access tokens when what the specs and providers mark says so: the JOSE
``typ`` header ``at+jwt`` (RFC 9068 section 2.1) or Keycloak's ``typ`` claim ``Bearer``. Real ID tokens
(``nonce`` without such a mark, ``at_hash``/``c_hash``, Keycloak's ``typ: ID``) are still refused, and an
access token is never accepted as an ID token."""

from __future__ import annotations

import pytest

from django_duo_oidc.core import errors

from .helpers import id_claims, sign
from .test_core_tokens import access_claims, validate, validate_at


def test_rfc9068_access_token_with_a_nonce_is_an_access_token() -> None:
    claims = validate_at(sign(access_claims(nonce="n-123"), typ="at+jwt"))
    assert claims["nonce"] == "n-123"


def test_keycloak_access_token_with_a_nonce_is_an_access_token() -> None:
    # Keycloak <= 24: header typ "JWT", claims typ "Bearer", nonce copied from the login, azp the client.
    claims = validate_at(sign(access_claims(nonce="n-123", typ="Bearer", azp="crm-app"), typ="JWT"))
    assert claims["typ"] == "Bearer"


@pytest.mark.parametrize(
    "extra",
    [
        {"nonce": "n-123"},  # an ID token of a provider that marks nothing (Duo's ID tokens)
        {"nonce": "n-123", "typ": "ID"},  # Keycloak's ID token
        {"typ": "ID"},
        {"at_hash": "x" * 22},
        {"c_hash": "x" * 22},
        {"nonce": "n-123", "typ": "Bearer", "at_hash": "x" * 22},  # a Bearer claim does not outweigh at_hash
    ],
)
def test_id_tokens_are_still_refused_as_access_tokens(extra: dict[str, str]) -> None:
    with pytest.raises(errors.InvalidClaim):
        validate_at(sign(access_claims(**extra)))


def test_an_at_jwt_header_does_not_launder_an_at_hash() -> None:
    with pytest.raises(errors.InvalidClaim):
        validate_at(sign(access_claims(at_hash="x" * 22), typ="at+jwt"))


def test_id_token_is_still_refused_with_an_id_typ_claim_and_at_jwt_header() -> None:
    with pytest.raises(errors.InvalidClaim):
        validate_at(sign(access_claims(nonce="n", typ="ID"), typ="at+jwt"))


def test_a_keycloak_access_token_is_never_an_id_token() -> None:
    with pytest.raises(errors.InvalidClaim):
        validate(sign(id_claims(typ="Bearer")))


def test_a_keycloak_id_token_is_an_id_token() -> None:
    assert validate(sign(id_claims(typ="ID")))["typ"] == "ID"
