"""Issue 10, the pure core of bearer tokens: which token is a client's (11), whose audience (10)."""

from __future__ import annotations

from typing import Any

import pytest

from django_duo_oidc.core import errors
from django_duo_oidc.core.bearer import grant_from_claims, grant_from_introspection, is_client_token
from django_duo_oidc.core.introspection import TokenInfo

from .helpers import CLIENT_ID, ISSUER, NOW

DUO_USER_SUB = "b1cee4e5" * 8  # Duo's subjects are 64 hex characters (DUO.md 1.5)
OTHER_DUO_CLIENT = "DIOTHERCLIENT0000002"
KEYCLOAK_SA = "5b1e8c1e-3c55-4a0e-9d6f-0d9f1a7c2b11"  # a service account's user id


def jwt_claims(**claims: Any) -> dict[str, Any]:
    return {"iss": ISSUER, "exp": NOW + 600, "iat": NOW, "scope": "crm.contacts.read", **claims}


def info(**raw: Any) -> TokenInfo:
    return TokenInfo.from_answer({"active": True, **raw})


# 11. The client-credentials rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "machine", "expected"),
    [
        # Duo: a user's token (sub = 64 hex, aud = the client id, no client_id claim).
        ({"sub": DUO_USER_SUB, "aud": CLIENT_ID}, (), False),
        # Duo client credentials, this site's own client: sub == the client id, no client_id claim.
        ({"sub": CLIENT_ID, "aud": CLIENT_ID}, (), True),
        # Duo client credentials of another client of the authorization server, addressed to itself.
        ({"sub": OTHER_DUO_CLIENT, "aud": OTHER_DUO_CLIENT}, (), True),
        # ... addressed to this site: only the provider's machine-client list can tell.
        ({"sub": OTHER_DUO_CLIENT, "aud": CLIENT_ID}, (), False),
        ({"sub": OTHER_DUO_CLIENT, "aud": CLIENT_ID}, (OTHER_DUO_CLIENT,), True),
        # RFC 9068 2.2 shape: sub == client_id.
        ({"sub": "svc", "client_id": "svc", "aud": "https://api"}, (), True),
        # Keycloak: a user's token names the client in azp; a service account's sub is a user id.
        ({"sub": "7d0e-user", "azp": "crm-web", "aud": "account"}, (), False),
        ({"sub": KEYCLOAK_SA, "azp": "svc", "client_id": "svc", "aud": "account"}, (), False),
        ({"sub": KEYCLOAK_SA, "azp": "svc", "client_id": "svc", "aud": "account"}, ("svc",), True),
        ({"sub": KEYCLOAK_SA, "azp": "svc", "aud": "account"}, ("svc",), True),  # azp alone
        ({"sub": KEYCLOAK_SA, "azp": "svc", "aud": "account"}, (KEYCLOAK_SA,), True),  # by its sub
        # Auth0: gty names the grant; sub is "<client>@clients".
        ({"sub": "abc@clients", "azp": "abc", "gty": "client-credentials", "aud": "https://api"}, (), True),
        ({"sub": "auth0|123", "azp": "abc", "aud": ["https://api", "https://t/userinfo"]}, (), False),
        # A client's token names no user at all.
        ({"client_id": "svc", "aud": "https://api"}, (), True),
    ],
)
def test_which_tokens_are_a_clients(claims: dict[str, Any], machine: tuple[str, ...], expected: bool) -> None:
    assert is_client_token(claims, own_client_id=CLIENT_ID, machine_clients=frozenset(machine)) is expected
    if "sub" in claims:
        grant = grant_from_claims(
            ISSUER, jwt_claims(**claims), own_client_id=CLIENT_ID, machine_clients=frozenset(machine)
        )
        assert grant.is_client is expected


def test_client_id_is_read_from_azp_when_client_id_is_absent_or_not_a_string() -> None:
    assert grant_from_claims(ISSUER, jwt_claims(sub="u", azp="web")).client_id == "web"
    assert grant_from_claims(ISSUER, jwt_claims(sub="u", client_id=7, azp="web")).client_id == "web"
    assert grant_from_claims(ISSUER, jwt_claims(sub="u", client_id="api", azp="web")).client_id == "api"


def test_introspection_answers_follow_the_same_rule() -> None:
    def grant(answer: TokenInfo, machine: tuple[str, ...] = ()) -> Any:
        return grant_from_introspection(
            ISSUER,
            answer,
            audiences=[CLIENT_ID],
            now=NOW,
            leeway=0,
            own_client_id=CLIENT_ID,
            machine_clients=frozenset(machine),
        )

    # Duo: a user's token is answered with the client it was issued to; the sub is the user's.
    assert not grant(info(sub=DUO_USER_SUB, client_id=CLIENT_ID)).is_client
    assert grant(info(sub=CLIENT_ID, client_id=CLIENT_ID)).is_client
    # An answer with azp and no client_id (some servers): the client is read from azp.
    kc = grant(info(sub=KEYCLOAK_SA, azp="svc", aud=CLIENT_ID), ("svc",))
    assert kc.is_client and kc.client_id == "svc"
    assert grant(info(sub="abc@clients", client_id=CLIENT_ID, gty="client-credentials")).is_client
    # Merged with a JWT: the answer's sub missing does not turn a user's token into a client's.
    local = grant_from_claims(ISSUER, jwt_claims(sub=DUO_USER_SUB, aud=CLIENT_ID), own_client_id=CLIENT_ID)
    merged = grant_from_introspection(
        ISSUER, info(scope="a"), audiences=[CLIENT_ID], now=NOW, leeway=0, local=local, own_client_id=CLIENT_ID
    )
    assert not merged.is_client and merged.sub == DUO_USER_SUB


def test_a_client_token_stays_a_client_when_the_answer_names_no_client() -> None:
    local = grant_from_claims(ISSUER, jwt_claims(sub=CLIENT_ID, aud=CLIENT_ID), own_client_id=CLIENT_ID)
    merged = grant_from_introspection(
        ISSUER, info(sub=CLIENT_ID), audiences=[CLIENT_ID], now=NOW, leeway=0, local=local, own_client_id=CLIENT_ID
    )
    assert merged.is_client


# 10. Introspection: whose audience --------------------------------------------------------------


def _judge(answer: TokenInfo, **kw: Any) -> Any:
    return grant_from_introspection(ISSUER, answer, audiences=[CLIENT_ID], now=NOW, leeway=0, **kw)


@pytest.mark.parametrize(
    ("raw", "kw", "accepted"),
    [
        ({"sub": "u", "aud": CLIENT_ID}, {}, True),
        ({"sub": "u", "aud": [OTHER_DUO_CLIENT, CLIENT_ID]}, {}, True),
        ({"sub": "u", "aud": OTHER_DUO_CLIENT, "client_id": CLIENT_ID}, {}, False),  # aud said otherwise
        ({"sub": "u", "aud": 7}, {}, False),
        ({"sub": "u", "client_id": CLIENT_ID}, {}, True),  # Duo's shape: no aud, client_id
        ({"sub": "u", "azp": CLIENT_ID}, {}, True),
        ({"sub": "u", "client_id": OTHER_DUO_CLIENT}, {}, False),  # another client's token
        ({"sub": "u"}, {}, False),  # nothing says whom it is for
        ({"sub": "u"}, {"token_audiences": (CLIENT_ID,)}, True),  # the JWT's own aud
        ({"sub": "u"}, {"token_audiences": (OTHER_DUO_CLIENT,)}, False),
        ({"sub": "u", "client_id": OTHER_DUO_CLIENT}, {"require_audience": False}, True),  # explicit opt-out
        ({"sub": "u", "aud": OTHER_DUO_CLIENT}, {"require_audience": False}, False),  # an explicit other aud
    ],
)
def test_the_audience_must_be_established(raw: dict[str, Any], kw: dict[str, Any], accepted: bool) -> None:
    if accepted:
        assert _judge(info(**raw), **kw).sub == "u"
    else:
        with pytest.raises(errors.InvalidClaim) as refused:
            _judge(info(**raw), **kw)
        assert refused.value.claim == "aud"


def test_a_verified_jwt_established_its_audience_already() -> None:
    local = grant_from_claims(ISSUER, jwt_claims(sub="u", aud=CLIENT_ID))
    assert _judge(info(sub="u"), local=local).sub == "u"
