"""Bearer tokens from the REAL provider on the example project's /api/contacts/ (served by runserver).

The provider issues opaque client-credentials tokens (introspected: the site's rows are set to
``introspection``, as ``auto`` never asks about an opaque token) and, for the resource ``urn:crm``,
RFC 9068 JWTs (``at+jwt``), which a second provider process and a ``jwt``-mode provider row prove
without any introspection.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, quote_plus, urlencode, urljoin, urlsplit

import pytest
import requests

from django_duo_oidc.core.pkce import s256_challenge

from .conftest import SECRET, Site, free_port, login, real_provider, submit_form

API = "/api/contacts/"
AUTH = (quote_plus("django-basic"), quote_plus(SECRET))  # RFC 6749 section 2.3.1 encoding


def client_token(issuer: str, scope: str, resource: str | None = None) -> str:
    data = {"grant_type": "client_credentials", "scope": scope, **({"resource": resource} if resource else {})}
    response = requests.post(issuer + "/token", data=data, auth=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def call(site: Site, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(site.base + API, headers=headers, timeout=5)


def test_the_command_gets_a_client_token_and_calls_the_api(site: Site) -> None:
    done = site.manage("duo_oidc_call", site.base + API, "--scope", "crm.contacts.read")
    assert "HTTP 200" in done.stderr
    assert '"caller": {"client_id": "django-basic"}' in done.stdout


def test_a_client_credentials_token_without_the_scope_is_403(site: Site) -> None:
    response = call(site, client_token(site.issuer, "email"))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert response.headers["WWW-Authenticate"].endswith('scope="crm.contacts.read"')


def test_no_token_and_a_forged_token(site: Site) -> None:
    bare = call(site, None)
    assert bare.status_code == 401
    assert bare.headers["WWW-Authenticate"] == (
        f'Bearer realm="{site.base[7:]}", resource_metadata="{site.base}/.well-known/oauth-protected-resource"'
    )
    forged = call(site, client_token(site.issuer, "crm.contacts.read") + "x")
    assert forged.status_code == 401
    assert 'error="invalid_token"' in forged.headers["WWW-Authenticate"]


def test_a_revoked_token_is_refused_after_the_window(site: Site) -> None:
    token = client_token(site.issuer, "crm.contacts.read")
    assert call(site, token).status_code == 200
    revoked = requests.post(site.issuer + "/token/revocation", data={"token": token}, auth=AUTH, timeout=5)
    assert revoked.status_code == 200
    time.sleep(1.1)  # DUO_OIDC_REVALIDATE_SECONDS=1 in the e2e site
    response = call(site, token)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token", "error_description": "The access token is not valid."}


def user_token(site: Site, user: str, scope: str, resource: str | None = None) -> str:
    """A user's access token, got as a native app would: code flow with PKCE through the login pages
    (for ``resource``, RFC 8707, when given)."""
    verifier = secrets.token_urlsafe(48)
    redirect_uri = site.base + "/oidc/callback/"
    target = {"resource": resource} if resource else {}
    params = {
        "client_id": "django-basic", "response_type": "code", "redirect_uri": redirect_uri, "scope": scope,
        "state": secrets.token_urlsafe(16), "code_challenge": s256_challenge(verifier),
        "code_challenge_method": "S256", **target,
    }  # fmt: skip
    session = requests.Session()
    response = session.get(site.issuer + "/auth?" + urlencode(params), allow_redirects=False)
    for _ in range(12):
        location = response.headers.get("Location")
        if location:
            url = urljoin(response.url, location)
            if url.startswith(redirect_uri):
                code = parse_qs(urlsplit(url).query)["code"][0]
                break
            response = session.get(url, allow_redirects=False)
        else:
            response = submit_form(session, response, user)
    else:
        raise AssertionError("no code")
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    data.update(target)
    tokens = requests.post(site.issuer + "/token", data=data, auth=AUTH, timeout=5).json()
    return tokens["access_token"]


def test_a_users_token_maps_to_the_linked_user(site: Site) -> None:
    browser = requests.Session()
    login(browser, site, "/oidc/login/?provider=duo&next=/me/", user="erin")  # links erin's identity
    username = browser.get(site.base + "/me/").json()["username"]
    response = call(site, user_token(site, "erin", "openid crm.contacts.read"))
    assert response.status_code == 200
    assert response.json()["caller"] == {"sub": "erin", "username": username}
    # A user who never logged in to the site is still the token's subject, but no Django user.
    stranger = call(site, user_token(site, "dave", "openid crm.contacts.read")).json()["caller"]
    assert stranger == {"sub": "dave", "username": None}


def test_the_protected_resource_metadata(site: Site) -> None:
    document = requests.get(site.base + "/.well-known/oauth-protected-resource", timeout=5).json()
    assert document["resource"] == site.base
    assert document["authorization_servers"] == [site.issuer]
    assert document["scopes_supported"] == ["crm.contacts.read"]
    assert document["bearer_methods_supported"] == ["header"]


@pytest.fixture(scope="module")
def jwt_issuer(site: Site) -> Iterator[str]:
    """A second real provider whose urn:crm tokens are JWTs, registered on the site in jwt mode."""
    env = {**os.environ, "OP_PORT": str(free_port()), "OP_CLIENT_SECRET": SECRET, "OP_RP_BASE_URLS": site.base}
    with real_provider(env) as issuer:
        site.manage(
            "duo_oidc_provider", "crm-jwt", "--issuer", issuer, "--client-id", "django-basic",
            "--client-secret-env", "DUO_CLIENT_SECRET", "--access-token-validation", "jwt", "--audience", "urn:crm",
        )  # fmt: skip
        time.sleep(5.2)  # the server re-reads its provider list every 5 s
        yield issuer


def test_jwt_access_tokens_are_validated_locally(site: Site, jwt_issuer: str) -> None:
    token = client_token(jwt_issuer, "crm.contacts.read", resource="urn:crm")
    before = requests.get(jwt_issuer + "/__test__/stats", timeout=5).json()
    for _ in range(10):
        assert call(site, token).status_code == 200
    after = requests.get(jwt_issuer + "/__test__/stats", timeout=5).json()
    assert after["introspection"] == before["introspection"] == 0  # not one provider call per request
    # A JWT for another audience (no resource: the provider's own opaque token is not a JWT) is refused.
    assert call(site, client_token(jwt_issuer, "crm.contacts.read")).status_code == 401
