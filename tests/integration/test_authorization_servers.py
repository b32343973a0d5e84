"""Issue 14, "Duo's authorization servers": several servers trusted at once, each token matched to its
server by ``iss`` and to its client's row by ``aud``; every issuer form Duo uses (DUO.md 0, 1.1, 2):
``/oidc/<client id>`` (generic OIDC application), ``/oauth2/<app id>`` (the OAuth 2.1 / OIDC application:
several clients, custom scopes, RFC 8414 metadata beside discovery) and ``/oauth/<id>`` (client
credentials: RFC 8414 metadata only, no browser login); providers that only issue or validate tokens are
never used for a browser login; Duo's ``api-*`` host is refused as an issuer.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client, RequestFactory

from django_duo_oidc.checks import check_providers
from django_duo_oidc.core.discovery import duo_api_host_refusal
from django_duo_oidc.models import Provider
from django_duo_oidc.outbound.client_credentials import client_token
from django_duo_oidc.providers.connection import check_connection
from django_duo_oidc.resource import registry
from django_duo_oidc.resource.context import authenticate
from tests import fakeop
from tests.fakeop import FakeOP, rsa_key

pytestmark = pytest.mark.django_db

HOST = "https://sso-fake.sso.duosecurity.test"
RFC8414 = "/.well-known/oauth-authorization-server"


class Tenant:
    """One Duo SSO tenant: several authorization servers on one host, each a FakeOP at its issuer path.

    ``oidc``: it publishes OpenID discovery (``/oauth/<id>`` servers need not); ``rfc8414``: RFC 8414
    metadata at the path-inserted URL; ``browser``: it has an authorization endpoint.
    """

    def __init__(self) -> None:
        self.servers: list[FakeOP] = []

    def add(self, path: str, client_id: str, *, oidc: bool = True, rfc8414: bool = False, browser: bool = True) -> Any:
        op: Any = FakeOP()
        op.issuer = HOST + path
        op.client_id = client_id
        op.client_secret = "secret-" + client_id
        op.key = rsa_key(path)  # each server its own signing key and key id
        op.kid = hashlib.sha256(path.encode()).hexdigest()
        op.oidc, op.rfc8414, op.browser = oidc, rfc8414, browser
        if not browser:
            op.discovery_overrides.update(authorization_endpoint=None, userinfo_endpoint=None)
        self.servers.append(op)
        return op

    def handle(self, request: requests.PreparedRequest) -> tuple[int, Any, dict[str, str]]:
        path = urlsplit(request.url).path
        for op in self.servers:
            base = urlsplit(op.issuer).path
            if path == RFC8414 + base:
                op.calls.append((request.method or "", "rfc8414"))
                return (200, op.discovery(), {}) if op.rfc8414 else (404, {"error": "not_found"}, {})
            if path == base + "/.well-known/openid-configuration" and not op.oidc:
                return 404, {"error": "not_found"}, {}
            if path.startswith(base + "/"):
                return op.handle(request)
        return 404, {"error": "not_found"}, {}


def serve_tenant() -> Iterator[Tenant]:
    """A new tenant answering every request to the fake host (for a fixture to yield from)."""
    cache.clear()
    found = Tenant()
    fakeop.CURRENT = found  # type: ignore[assignment]  # the adapter only calls handle()
    yield found
    fakeop.CURRENT = None
    cache.clear()


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    yield from serve_tenant()


def row(op: Any, slug: str, monkeypatch: pytest.MonkeyPatch, **fields: Any) -> Provider:
    variable = "DUO_SECRET_" + slug.upper().replace("-", "_")
    monkeypatch.setenv(variable, op.client_secret)
    fields.setdefault("access_token_validation", Provider.AccessTokenValidation.JWT)
    provider = Provider(slug=slug, name=slug, issuer=op.issuer, client_id=op.client_id, client_secret_env=variable)
    for name, value in fields.items():
        setattr(provider, name, value)
    provider.full_clean()
    provider.save()
    return provider


def token(op: Any, sub: str = "alice-sub", scope: str = "crm.contacts.read", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": op.issuer, "sub": sub, "aud": op.client_id, "exp": now + 600, "iat": now, "scope": scope}
    body.update(jti=secrets.token_hex(8), **claims)
    value = op.sign({k: v for k, v in body.items() if v is not None})
    op.tokens[value] = {"sub": sub, "scope": scope, "active": True}
    return value


def reread_providers() -> None:
    """The provider list is re-read every ENABLED_TTL (providers.enabled) per process: now, as after that time."""
    registry._registry.expires = 0.0


def who(value: str) -> Any:
    """``request.oidc`` after authenticating a request with ``value``: the row it was matched to."""
    request = RequestFactory().get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {value}")
    return authenticate(request)


@pytest.fixture
def duo(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A Duo shop: a generic OIDC app for browser logins, an OAuth 2.1 app with two clients (a web app
    and an API, each its own audience), and a client-credentials server for a partner's machine."""
    generic = tenant.add("/oidc/DIGENERIC000000001", "DIGENERIC000000001")
    app = tenant.add("/oauth2/DIAPP00000000000001", "DICLIENTWEB0000001", rfc8414=True)
    app.other_clients["DICLIENTAPI0000001"] = "secret-DICLIENTAPI0000001"
    partner = tenant.add("/oauth/DIPARTNER000000001", "DIPARTNER000000001", oidc=False, rfc8414=True, browser=False)
    rows = {
        "generic": row(generic, "generic", monkeypatch, is_default=True),
        "web": row(app, "crm-web", monkeypatch),
        "api": row(app, "crm-api", monkeypatch, client_id="DICLIENTAPI0000001", access_token_audiences="urn:crm:api"),
        "partner": row(partner, "partner", monkeypatch, browser_login=False),
    }
    monkeypatch.setenv("DUO_SECRET_CRM_API", "secret-DICLIENTAPI0000001")
    return {"generic": generic, "app": app, "partner": partner, **{f"row_{k}": v for k, v in rows.items()}}


# Several servers, several clients -----------------------------------------------------------------


def test_every_issuer_form_is_trusted_at_once_and_each_token_goes_to_its_own_row(duo: dict[str, Any]) -> None:
    cases = [
        (token(duo["generic"]), "generic"),  # /oidc/<client id>
        (token(duo["app"]), "crm-web"),  # /oauth2/<app id>, the web client's audience
        (token(duo["app"], aud="urn:crm:api", scope="crm.contacts.read agent:call"), "crm-api"),  # its API's
        (token(duo["partner"], sub="DIPARTNER000000001"), "partner"),  # /oauth/<id>, RFC 8414 only
    ]
    for value, slug in cases:
        context = who(value)
        assert context.error is None, (slug, context.error)
        assert context.provider == slug
    assert who(cases[2][0]).scopes == {"crm.contacts.read", "agent:call"}  # custom scopes, dots and colons


def test_the_client_credentials_server_is_found_through_rfc8414_only(duo: dict[str, Any]) -> None:
    partner = duo["partner"]
    assert who(token(partner, sub="DIPARTNER000000001")).is_client  # its own client id as sub: a machine
    assert partner.count("rfc8414") == 1  # OpenID discovery 404, then RFC 8414 (and remembered)
    who(token(partner, sub="DIPARTNER000000001"))
    assert partner.count("rfc8414") == 1


def test_the_oauth21_app_publishes_both_documents_and_discovery_is_used(duo: dict[str, Any]) -> None:
    assert who(token(duo["app"])).provider == "crm-web"
    assert duo["app"].count(".well-known/openid-configuration") == 1


def test_a_token_of_server_a_presented_with_server_b_iss_is_refused(duo: dict[str, Any]) -> None:
    # Signed by the OAuth 2.1 app's key, claiming the generic app as issuer (and its client as audience).
    forged = duo["app"].sign(
        {
            "iss": duo["generic"].issuer,
            "sub": "alice-sub",
            "aud": duo["generic"].client_id,
            "exp": int(time.time()) + 600,
            "iat": int(time.time()),
            "scope": "crm.contacts.read",
        }
    )
    context = who(forged)
    assert context.grant is None and context.error is not None
    # Even under the other server's key id: the signature is checked with the issuer's own keys.
    duo["app"].kid = duo["generic"].kid
    context = who(token(duo["app"], iss=duo["generic"].issuer, aud=duo["generic"].client_id))
    assert context.grant is None and context.error is not None


def test_a_token_for_client_x_is_not_accepted_by_client_y_row(duo: dict[str, Any], client: Client) -> None:
    # The partner's client-credentials token names its own client as audience, not the site's API.
    other_client = token(duo["app"], aud="DISOMEOTHERCLIENT01")
    context = who(other_client)
    assert context.grant is None and getattr(context.error, "claim", None) == "aud"
    response = client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {other_client}")
    assert response.status_code == 401
    # With only the API client's row left, the web client's tokens are refused too.
    duo["row_web"].delete()
    reread_providers()
    assert who(token(duo["app"])).error is not None
    assert who(token(duo["app"], aud="urn:crm:api")).provider == "crm-api"


def test_introspection_answers_for_another_client_of_the_same_server_are_refused(
    duo: dict[str, Any], client: Client
) -> None:
    # The API client's row validates by introspection: the server calls the token active, but it was
    # issued to the web client (client_id), which this row does not accept.
    api = duo["row_api"]
    api.access_token_validation = Provider.AccessTokenValidation.INTROSPECTION
    api.save()
    duo["row_web"].delete()
    reread_providers()
    duo["app"].access_token_format = "opaque"
    value = duo["app"].access_token("alice-sub", "crm.contacts.read")
    duo["app"].tokens[value] = {
        "sub": "alice-sub",
        "scope": "crm.contacts.read",
        "active": True,
        "introspection": {"client_id": "DICLIENTWEB0000001"},
    }
    response = client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {value}")
    assert response.status_code == 401
    value2 = duo["app"].access_token("alice-sub", "crm.contacts.read")
    duo["app"].tokens[value2] = {
        "sub": "alice-sub",
        "scope": "crm.contacts.read",
        "active": True,
        "introspection": {"client_id": "DICLIENTAPI0000001", "iss": duo["app"].issuer},
    }
    # The row accepts the audience urn:crm:api only: its own client id is not enough then.
    assert client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {value2}").status_code == 401
    value3 = duo["app"].access_token("alice-sub", "crm.contacts.read")
    duo["app"].tokens[value3] = {
        "sub": "alice-sub",
        "scope": "crm.contacts.read",
        "active": True,
        "introspection": {"client_id": "DICLIENTWEB0000001", "aud": "urn:crm:api", "iss": duo["app"].issuer},
    }
    assert client.get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {value3}").status_code == 200


def test_a_token_only_server_still_gets_client_credentials(duo: dict[str, Any]) -> None:
    issued = client_token("crm.contacts.read", provider="partner")
    assert who(issued.access_token).provider == "partner"


# Browser logins never go to a token-only server ---------------------------------------------------


def test_naming_a_token_only_provider_at_login_is_a_clear_404(duo: dict[str, Any], client: Client) -> None:
    response = client.get("/oidc/login/?provider=partner")
    assert response.status_code == 404
    assert b"only issues or validates access tokens" in response.content
    assert duo["partner"].calls == []  # never asked for anything


def test_the_default_login_skips_token_only_providers(
    tenant: Tenant, duo: dict[str, Any], client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    duo["row_web"].delete()
    duo["row_api"].delete()
    duo["row_generic"].is_default = False
    duo["row_generic"].save()
    duo["row_partner"].is_default = True  # the default for client credentials, say
    duo["row_partner"].save()
    response = client.get("/oidc/login/")
    assert response.status_code == 302  # the only browser provider
    assert response["Location"].startswith(duo["generic"].issuer + "/authorize?")


def test_a_provider_without_an_authorization_endpoint_is_a_404_not_a_500(duo: dict[str, Any], client: Client) -> None:
    duo["row_partner"].browser_login = True  # wrongly offered for browser logins
    duo["row_partner"].save()
    response = client.get("/oidc/login/?provider=partner")
    assert response.status_code == 404
    report = check_connection(duo["row_partner"])
    assert not report.ok and any("turn browser login off" in line for line in report.lines)


def test_a_callback_for_a_provider_turned_token_only_meanwhile_is_refused(duo: dict[str, Any], client: Client) -> None:
    started = client.get("/oidc/login/?provider=generic")
    assert started.status_code == 302
    duo["row_generic"].browser_login = False
    duo["row_generic"].save()
    query = duo["generic"].authorize(started["Location"])
    response = client.get("/oidc/callback/?" + query)
    assert response.status_code == 400 and "_auth_user_id" not in client.session
    assert duo["generic"].count("token") == 0  # the code was never redeemed


def test_the_example_home_lists_only_browser_providers(duo: dict[str, Any], client: Client) -> None:
    page = client.get("/").content.decode()
    assert "provider=generic" in page and "provider=partner" not in page


def test_the_command_switches_browser_login(duo: dict[str, Any]) -> None:
    call_command("duo_oidc_provider", "generic", "--no-browser-login", stdout=None)
    assert not Provider.objects.get(slug="generic").browser_login
    call_command("duo_oidc_provider", "generic", "--browser-login")
    assert Provider.objects.get(slug="generic").browser_login


# Duo's api-* host is not an OpenID provider -------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://api-1a2b3c4d.duosecurity.com",
        "https://API-1A2B3C4D.DuoSecurity.com/oauth/v1",
        "https://api-1a2b3c4d.duosecurity.com./",
        "https://api-1a2b3c4d.duofederal.com",
    ],
)
def test_duo_api_hosts_are_refused_with_the_application_to_use(url: str) -> None:
    refusal = duo_api_host_refusal(url)
    assert refusal is not None
    assert "Generic OIDC Relying Party" in refusal and "sso-<tenant>.sso.duosecurity.com" in refusal


@pytest.mark.parametrize(
    "url",
    [
        "https://sso-abc1def2.sso.duosecurity.com/oidc/DIABC123678901234567",
        "https://sso-abc.sso.duosecurity.com/oauth2/DIAPP",
        "https://api-1a2b3c4d.duosecurity.com.example.test/oidc/x",
        "https://myapi-1.duosecurity.com/oidc/x",
    ],
)
def test_other_hosts_are_not_refused(url: str) -> None:
    assert duo_api_host_refusal(url) is None


def test_the_model_refuses_an_api_host_as_issuer_or_endpoint(tenant: Tenant) -> None:
    provider = Provider(slug="mfa", name="x", issuer="https://api-1a2b3c4d.duosecurity.com", client_id="DIX")
    with pytest.raises(ValidationError) as refused:
        provider.full_clean()
    assert "Generic OIDC Relying Party" in str(refusal_of(refused.value, "issuer"))
    provider.issuer = "https://sso-x.sso.duosecurity.com/oidc/DIX"
    provider.authorization_endpoint = "https://api-1a2b3c4d.duosecurity.com/oauth/v1/authorize"
    with pytest.raises(ValidationError) as refused:
        provider.full_clean()
    assert refusal_of(refused.value, "authorization_endpoint")


def refusal_of(error: ValidationError, field: str) -> list[str]:
    return error.message_dict.get(field, [])


def test_a_row_written_around_validation_fails_the_system_check_and_check_connection(tenant: Tenant) -> None:
    provider = Provider.objects.create(
        slug="mfa", name="x", issuer="https://api-1a2b3c4d.duosecurity.com", client_id="DIX"
    )
    errors = check_providers(databases=["default"])
    assert [e.id for e in errors if e.id == "duo_oidc.E140"] == ["duo_oidc.E140"]
    report = check_connection(provider)
    assert not report.ok and "Generic OIDC Relying Party" in report.lines[0]


def test_the_command_refuses_an_api_host(tenant: Tenant) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Generic OIDC Relying Party"):
        call_command(
            "duo_oidc_provider", "mfa", "--issuer", "https://api-1a2b3c4d.duosecurity.com", "--client-id", "DIX"
        )
