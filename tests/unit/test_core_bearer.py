"""The core of bearer tokens: strict JWS parsing, the Authorization header, challenges, grants."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from django_duo_oidc.core import errors, jws
from django_duo_oidc.core.bearer import challenge, grant_from_claims, grant_from_introspection, token_from_header
from django_duo_oidc.core.introspection import TokenInfo

from .helpers import CLIENT_ID, ISSUER, NOW, sign


def b64(data: object) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


GOOD = sign({"iss": ISSUER, "sub": "a"})


def test_parse_returns_header_claims_and_signature_once() -> None:
    parsed = jws.parse(GOOD)
    assert parsed.header["alg"] == "RS256"
    assert parsed.claims == {"iss": ISSUER, "sub": "a"}
    assert parsed.signing_input == GOOD.rsplit(".", 1)[0].encode()
    assert len(parsed.signature) == 256


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        ".e30.AA",
        b64({"alg": "RS256"}) + "..AA",
        b64({"alg": "RS256"}) + "." + b64({}) + "=.AA",  # padding is not base64url (RFC 7515 section 2)
        b64({"alg": "RS256"}) + "." + b64({}) + ".A+/A",
        b64({"alg": "RS256"}) + "." + b64([1, 2]) + ".AA",  # payload not an object
        b64([]) + "." + b64({}) + ".AA",
        b64({"typ": "JWT"}) + "." + b64({}) + ".AA",  # no alg
        b64({"alg": "RS256", "kid": 7}) + "." + b64({}) + ".AA",
        b64({"alg": "RS256"}) + "." + b64(b"\xff\xfe") + ".AA",  # not UTF-8
        b64({"alg": "RS256"}) + "." + "A" + ".AA",  # impossible base64 length
        b64({"alg": "RS256"}) + "." + b64({}) + "." + "A" * 20_000,
    ],
)
def test_parse_refuses_malformed(token: str) -> None:
    with pytest.raises(errors.MalformedToken):
        jws.parse(token)


def test_a_critical_extension_is_refused() -> None:
    # RFC 7515 section 4.1.11: an extension we do not implement, marked critical, must be rejected.
    token = b64({"alg": "RS256", "crit": ["b64"], "b64": False}) + "." + b64({"sub": "a"}) + ".AA"
    with pytest.raises(errors.MalformedToken):
        jws.parse(token)


def test_verify_with_the_right_key_and_not_another() -> None:
    from tests.fakeop import rsa_key

    parsed = jws.parse(GOOD)
    jws.verify(parsed, rsa_key("main").public_key(), "RS256")
    with pytest.raises(errors.BadSignature):
        jws.verify(parsed, rsa_key("other").public_key(), "RS256")
    with pytest.raises(errors.BadSignature):
        jws.verify(parsed, rsa_key("main").public_key(), "ES256")  # a key of the wrong type


def test_an_ec_key_must_be_on_the_algorithms_curve() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    token = jwt.encode({"sub": "a"}, key, algorithm="ES384")
    jws.verify(jws.parse(token), key.public_key(), "ES384")
    forged = jws.parse(token)
    with pytest.raises(errors.BadSignature):
        jws.verify(forged, key.public_key(), "ES256")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Basic abc", None),
        ("Bearerabc", None),
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),  # the scheme is case-insensitive
        ("BEARER   a-b.c_d~e+f/g==", "a-b.c_d~e+f/g=="),
    ],
)
def test_token_from_header(header: str | None, token: str | None) -> None:
    assert token_from_header(header) == token


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer  ", "Bearer a b", "Bearer a=b", "Bearer é", "Bearer " + "a" * 16_385]
)
def test_token_from_a_malformed_header(header: str) -> None:
    with pytest.raises(errors.InvalidRequest):
        token_from_header(header)


def test_challenges() -> None:
    assert challenge() == "Bearer"
    assert challenge(realm="api", resource_metadata="https://rs/.well-known/oauth-protected-resource") == (
        'Bearer realm="api", resource_metadata="https://rs/.well-known/oauth-protected-resource"'
    )
    assert challenge(realm="api", error="insufficient_scope", description="d", scope={"b", "a"}) == (
        'Bearer realm="api", error="insufficient_scope", error_description="d", scope="a b"'
    )
    # Characters RFC 6750 does not allow in a quoted value are never echoed.
    assert challenge(realm='a"b\\c\x01') == 'Bearer realm="a?b?c?"'


def test_a_client_credentials_grant_is_a_client() -> None:
    claims = {"iss": ISSUER, "sub": CLIENT_ID, "client_id": CLIENT_ID, "exp": NOW + 60, "scope": "x y"}
    grant = grant_from_claims(ISSUER, claims)
    assert grant.is_client
    assert grant.scopes == {"x", "y"}
    user = grant_from_claims(ISSUER, {**claims, "sub": "alice"})
    assert not user.is_client


def _info(**raw: object) -> TokenInfo:
    raw = {"active": True, **raw}
    return TokenInfo(
        active=bool(raw["active"]),
        scope=raw.get("scope"),  # type: ignore[arg-type]
        sub=raw.get("sub"),  # type: ignore[arg-type]
        client_id=raw.get("client_id"),  # type: ignore[arg-type]
        exp=raw.get("exp"),  # type: ignore[arg-type]
        raw=raw,
    )


def test_introspection_is_authoritative() -> None:
    local = grant_from_claims(ISSUER, {"sub": "alice", "exp": NOW + 600, "scope": "a b"})
    merged = grant_from_introspection(
        ISSUER, _info(sub="alice", scope="a", exp=NOW + 60), audiences=[CLIENT_ID], now=NOW, leeway=0, local=local
    )
    assert merged.scopes == {"a"}
    assert merged.expires_at == NOW + 60
    for bad in (
        _info(active=False),
        _info(sub="mallory"),
        _info(iss="https://other"),
        _info(aud="someone-else"),
        _info(token_type="refresh_token"),
        _info(exp=NOW - 10),
    ):
        with pytest.raises(errors.TokenError):
            grant_from_introspection(ISSUER, bad, audiences=[CLIENT_ID], now=NOW, leeway=0, local=local)


def test_an_opaque_client_token_without_sub_is_a_client() -> None:
    # aud: issue 10 item 10 requires the answer to establish the audience (client_id "svc" is not ours).
    grant = grant_from_introspection(
        ISSUER,
        _info(client_id="svc", scope="a", token_type="Bearer", aud=CLIENT_ID),
        audiences=[CLIENT_ID],
        now=NOW,
        leeway=0,
    )
    assert grant.is_client
    assert grant.sub is None
    assert grant.expires_at is None
