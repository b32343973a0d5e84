"""Issue 14: Duo's Global Token Introspection (DUO.md 2). A provider row names another row
(``introspect_with``) whose introspection endpoint and client credentials introspect its tokens.

What the checks mean then: the introspecting server answers for every server of the tenant, so its
client is not the token's audience (this row's audiences still decide), and an answer about a token
nothing else ties to an issuer (an opaque token) must name this row's issuer; an answer about another
issuer is refused. The introspecting row may not be the row itself, a circle, or disabled.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from django_duo_oidc.checks import check_providers
from django_duo_oidc.models import Provider
from django_duo_oidc.providers.connection import check_connection
from django_duo_oidc.providers.runtime import ProviderRuntime

from .test_authorization_servers import Tenant, reread_providers, row, serve_tenant, token, who

pytestmark = pytest.mark.django_db

API = "/api/contacts/"


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    yield from serve_tenant()


@pytest.fixture
def servers(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """G: the server Duo Support enabled global introspection on (its own client's credentials);
    B: a client-credentials server whose tokens this site accepts, introspected by G."""
    g = tenant.add("/oauth2/DIGLOBAL00000000001", "DIGLOBALCLIENT00001", rfc8414=True)
    b = tenant.add("/oauth/DIPARTNERB000000001", "DIPARTNERB000000001", oidc=False, rfc8414=True, browser=False)
    b.discovery_overrides["introspection_endpoint"] = None  # B publishes none of its own
    g_row = row(g, "global", monkeypatch, browser_login=False, access_token_validation="off")
    b_row = row(
        b,
        "partner",
        monkeypatch,
        browser_login=False,
        access_token_validation=Provider.AccessTokenValidation.INTROSPECTION,
        introspect_with=g_row,
        is_default=True,
    )
    return {"g": g, "b": b, "g_row": g_row, "b_row": b_row}


def opaque(servers: dict[str, Any], **answer: Any) -> str:
    """An opaque token of B, which G's endpoint (the tenant's global one) calls active with ``answer``."""
    g, b = servers["g"], servers["b"]
    b.access_token_format = "opaque"
    value = b.access_token(b.client_id, "crm.contacts.read")
    extra = {"iss": b.issuer, "client_id": b.client_id, **answer}
    g.tokens[value] = {
        "sub": b.client_id,
        "scope": "crm.contacts.read",
        "active": True,
        "introspection": {k: v for k, v in extra.items() if v is not None},
    }
    return value


def get(client: Client, value: str) -> Any:
    return client.get(API, HTTP_AUTHORIZATION=f"Bearer {value}")


def test_an_opaque_token_is_introspected_by_the_named_row_with_its_credentials(
    servers: dict[str, Any], client: Client
) -> None:
    value = opaque(servers)
    response = get(client, value)
    assert response.status_code == 200, response.content
    assert response.json()["caller"] == {"client_id": "DIPARTNERB000000001"}
    assert servers["g"].count("token_introspection") == 1  # G's endpoint, G's client (it checks them)
    assert servers["b"].count("token_introspection") == 0
    assert who(value).provider == "partner"  # the token's row, not the introspecting one


def test_a_jwt_of_b_is_introspected_by_g_and_its_own_iss_establishes_the_issuer(
    servers: dict[str, Any], client: Client
) -> None:
    value = token(servers["b"], sub=servers["b"].client_id)
    servers["g"].tokens[value] = {"sub": servers["b"].client_id, "scope": "crm.contacts.read", "active": True}
    servers["g"].tokens[value]["introspection"] = {"client_id": servers["b"].client_id}  # no iss in the answer
    assert get(client, value).status_code == 200


def test_an_answer_about_another_issuer_is_refused(servers: dict[str, Any], client: Client) -> None:
    value = opaque(servers, iss="https://sso-fake.sso.duosecurity.test/oauth/DISOMEONEELSE0001")
    assert get(client, value).status_code == 401
    assert who(value).error.claim == "iss"


def test_an_opaque_token_whose_answer_names_no_issuer_is_refused(servers: dict[str, Any], client: Client) -> None:
    # The global endpoint answers for every server of the tenant: "active" alone does not say this
    # site's partner server issued it (any application's token would pass).
    value = opaque(servers, iss=None)
    assert get(client, value).status_code == 401
    assert who(value).error.claim == "iss"


def test_the_introspecting_client_is_not_the_token_audience(servers: dict[str, Any], client: Client) -> None:
    # A token G issued to its own client, labelled with B's issuer: G's client id establishes nothing for B.
    value = opaque(servers, client_id=servers["g"].client_id)
    assert get(client, value).status_code == 401
    assert who(value).error.claim == "aud"


def test_g_credentials_are_sent_to_g_never_b_credentials(servers: dict[str, Any], client: Client) -> None:
    # Were B's credentials sent, G would now accept them; G's own secret no longer matches: a 503.
    servers["g"].other_clients[servers["b"].client_id] = servers["b"].client_secret
    servers["g"].client_secret = "rotated"
    assert get(client, opaque(servers)).status_code == 503


def test_automatic_mode_uses_the_named_row_endpoint(servers: dict[str, Any], client: Client) -> None:
    b_row = servers["b_row"]
    b_row.access_token_validation = Provider.AccessTokenValidation.AUTO
    b_row.save()
    reread_providers()
    value = token(servers["b"], sub=servers["b"].client_id)
    servers["g"].tokens[value] = {"sub": servers["b"].client_id, "scope": "crm.contacts.read", "active": True}
    assert get(client, value).status_code == 200
    assert servers["g"].count("token_introspection") == 1  # jwt+introspection, through G


def test_a_change_to_the_introspecting_row_drops_the_grants_it_proved(servers: dict[str, Any], client: Client) -> None:
    value = opaque(servers)
    assert get(client, value).status_code == 200
    assert get(client, value).status_code == 200
    assert servers["g"].count("token_introspection") == 1
    servers["g_row"].enabled = False  # turned off: B's tokens are no longer judged through it
    servers["g_row"].save()
    reread_providers()
    response = get(client, value)
    assert response.status_code == 503  # fail closed: a misconfiguration, never an acceptance


def test_with_the_introspecting_server_down_the_answer_is_503(servers: dict[str, Any], client: Client) -> None:
    servers["g"].faults["token_introspection"] = "down"
    assert get(client, opaque(servers)).status_code == 503


def test_a_session_introspection_goes_to_the_named_row(servers: dict[str, Any]) -> None:
    value = opaque(servers)
    info = ProviderRuntime(servers["b_row"]).introspect(value)
    assert info is not None and info.active
    assert servers["g"].count("token_introspection") == 1


# Configuration ------------------------------------------------------------------------------------


def test_a_row_cannot_introspect_for_itself_or_in_a_circle(servers: dict[str, Any]) -> None:
    g_row, b_row = servers["g_row"], servers["b_row"]
    b_row.introspect_with = b_row
    with pytest.raises(ValidationError) as refused:
        b_row.full_clean()
    assert "introspect_with" in refused.value.message_dict
    g_row.introspect_with = servers["b_row"]
    b_row.introspect_with = g_row
    b_row.save()
    with pytest.raises(ValidationError) as refused:
        g_row.full_clean()  # G -> B -> G
    assert "circle" in " ".join(refused.value.message_dict["introspect_with"])


def test_the_system_check_reports_a_disabled_or_circular_introspector(servers: dict[str, Any]) -> None:
    assert not [e for e in check_providers(databases=["default"]) if e.id == "duo_oidc.E141"]
    Provider.objects.filter(pk=servers["g_row"].pk).update(enabled=False)
    assert [e.id for e in check_providers(databases=["default"]) if e.id == "duo_oidc.E141"] == ["duo_oidc.E141"]
    Provider.objects.filter(pk=servers["g_row"].pk).update(enabled=True, introspect_with=servers["b_row"])
    assert [e.id for e in check_providers(databases=["default"]) if e.id == "duo_oidc.E141"]


def test_the_command_sets_and_clears_introspect_with(servers: dict[str, Any]) -> None:
    call_command("duo_oidc_provider", "partner", "--introspect-with", "", stdout=io.StringIO())
    assert Provider.objects.get(slug="partner").introspect_with is None
    call_command("duo_oidc_provider", "partner", "--introspect-with", "global", stdout=io.StringIO())
    assert Provider.objects.get(slug="partner").introspect_with_id == servers["g_row"].pk
    with pytest.raises(CommandError, match="No provider"):
        call_command("duo_oidc_provider", "partner", "--introspect-with", "nobody", stdout=io.StringIO())
    with pytest.raises(CommandError, match="introspect_with"):
        call_command("duo_oidc_provider", "partner", "--introspect-with", "partner", stdout=io.StringIO())


def test_check_connection_says_who_introspects(servers: dict[str, Any]) -> None:
    report = check_connection(servers["b_row"])
    assert any("by provider global" in line for line in report.lines), report.lines
    assert not any("cannot be validated" in line for line in report.lines), report.lines
