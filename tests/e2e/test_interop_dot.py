"""Interop: the example project against django-oauth-toolkit 3.4 (DOT), a real OpenID provider nobody
here wrote, run as its own process (tests/dot_provider, started by tests/e2e/conftest_dot.py).

What DOT does differently from the provider of the other e2e tests, and what each test shows:

1. a login through DOT's own login and consent pages lands on ``/me/`` as alice;
2. DOT's access tokens are opaque and its RFC 7662 introspection answer names the user by
   ``username`` with no ``sub``: alice's token (of another client, a desktop app) is alice's on
   ``/api/contacts/``, not the client's (interop defect 1);
3. DOT lists its introspection endpoint only in its RFC 8414 metadata: ``--check`` finds it there and
   says so, and introspection works (interop defect 2);
4. DOT logs out without asking only when ``id_token_hint`` names its logged-in user: provider logout
   with the hint ends DOT's session, so the next login asks for the password (interop defect 4);
5. a refresh token revoked at DOT: the next renewal is refused (HTTP 400 ``invalid_grant``) and the
   session ends cleanly, no 503 (interop defect 3's rule: a 4xx on refresh is a refusal).

Around them, what an attacker or a careless setup would try against DOT's tokens: a token not asked
for this site (no RFC 8707 ``resource``, or another API's), a forged one, a refresh token sent as a
bearer token, a token without the scope; a client-credentials token (DOT: one grant type per client);
and DOT down while a renewal is due (an outage, 503, not a logout).
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qs, quote_plus, urlencode, urljoin, urlsplit

import requests

from django_duo_oidc.core.pkce import s256_challenge

from .conftest_dot import (  # noqa: F401  (dot_site_fixture: the dot_site fixture)
    ACCESS_TOKEN_SECONDS,
    SECRET,
    DotSite,
    dot_site_fixture,
    login,
    submit,
    walk,
)

API = "/api/contacts/"
NATIVE_REDIRECT = "http://127.0.0.1/crm-app/callback"  # tests/dot_provider's crm-app client
# RFC 6749 section 2.3.1: form-encoded before Basic (DOT decodes with unquote_plus: a raw "+" is a space).
SITE_AUTH = (quote_plus("duo-site"), quote_plus(SECRET))
SERVICE_AUTH = (quote_plus("crm-service"), quote_plus(SECRET))


def me(session: requests.Session, site: DotSite) -> dict:
    return session.get(site.base + "/me/").json()


def logout(session: requests.Session, site: DotSite) -> requests.Response:
    me(session, site)  # the CSRF cookie is set on /me/
    token = session.cookies.get("csrftoken")
    return session.post(site.base + "/oidc/logout/", headers={"X-CSRFToken": token}, allow_redirects=False)


def app_tokens(session: requests.Session, site: DotSite, scope: str, resource: str | None = "") -> dict:
    """The token response to DOT's ``crm-app`` (a public desktop client, PKCE) for the user logged in
    to DOT in ``session``: what a user's tool would send to the site's API. ``resource`` (RFC 8707;
    default: the site's origin, its RFC 9728 resource; None: not asked) becomes the token's ``aud``."""
    resource = site.base if resource == "" else resource
    verifier = secrets.token_urlsafe(48)
    params = {
        "client_id": "crm-app", "response_type": "code", "redirect_uri": NATIVE_REDIRECT, "scope": scope,
        "state": secrets.token_urlsafe(16), "code_challenge": s256_challenge(verifier),
        "code_challenge_method": "S256", **({"resource": resource} if resource else {}),
    }  # fmt: skip
    first = session.get(site.issuer + "/authorize/?" + urlencode(params), allow_redirects=False)
    done = walk(session, first, NATIVE_REDIRECT)
    code = parse_qs(urlsplit(done.callback).query)["code"][0]
    data = {
        "grant_type": "authorization_code", "code": code, "redirect_uri": NATIVE_REDIRECT,
        "client_id": "crm-app", "code_verifier": verifier, **({"resource": resource} if resource else {}),
    }  # fmt: skip
    answer = requests.post(site.issuer + "/token/", data=data, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def app_token(session: requests.Session, site: DotSite, scope: str, resource: str | None = "") -> str:
    return app_tokens(session, site, scope, resource)["access_token"]


def call(site: DotSite, token: str) -> requests.Response:
    return requests.get(site.base + API, headers={"Authorization": f"Bearer {token}"}, timeout=10)


# 1 ---------------------------------------------------------------------------------------------


def test_login_through_dots_pages_lands_on_me_as_alice(dot_site: DotSite) -> None:
    session = requests.Session()
    assert me(session, dot_site) == {"authenticated": False}
    done = login(session, dot_site)
    assert done.pages == ["password", "consent"]  # DOT's login form, then its consent form
    assert me(session, dot_site) == {
        "authenticated": True,
        # The username and email come from the claims tests/dot_provider adds (get_additional_claims);
        # stock DOT sends only sub, the user's primary key.
        "username": "alice",
        "email": "alice@example.test",
        "groups": [],
        "scopes": ["crm.contacts.read", "email", "openid", "profile"],
    }


# 2 ---------------------------------------------------------------------------------------------


def test_dot_introspection_names_the_user_by_username_without_sub(dot_site: DotSite) -> None:
    """What DOT really answers (RFC 7662 section 2.2): the RP's link below rests on this shape."""
    session = requests.Session()
    login(session, dot_site)
    token = app_token(session, dot_site, "crm.contacts.read")
    answer = requests.post(dot_site.issuer + "/introspect/", data={"token": token}, auth=SITE_AUTH, timeout=5)
    assert answer.status_code == 200
    info = answer.json()
    assert set(info) == {"active", "scope", "exp", "client_id", "username", "aud"}  # no sub
    assert (info["active"], info["client_id"], info["username"]) == (True, "crm-app", "alice")
    assert info["aud"] == [dot_site.base]  # RFC 8707: the resource= the app asked for


def test_alices_opaque_token_from_another_client_is_alices(dot_site: DotSite) -> None:
    session = requests.Session()
    login(session, dot_site)  # links alice's identity on the site (user "alice", from preferred_username)
    token = app_token(session, dot_site, "crm.contacts.read")
    response = call(dot_site, token)
    assert response.status_code == 200, response.text
    assert token not in dot_site.log()
    # Not {"client_id": "crm-app"} (defect 1). DOT names no sub, so the context has none.
    assert response.json()["caller"] == {"sub": None, "username": "alice"}
    assert response.json()["scopes"] == ["crm.contacts.read"]


def test_a_token_of_a_user_who_never_logged_in_here_has_no_user(dot_site: DotSite) -> None:
    session = requests.Session()
    login_page = session.get(urljoin(dot_site.issuer, "/accounts/login/"), allow_redirects=False)
    assert submit(session, login_page, "bob")[1].status_code == 302  # bob logs in at DOT only
    response = call(dot_site, app_token(session, dot_site, "crm.contacts.read"))
    assert response.status_code == 200, response.text
    assert response.json()["caller"] == {"sub": None, "username": None}  # bob's token, but no user here


def test_dot_token_without_the_scope_is_403_and_a_forged_one_401(dot_site: DotSite) -> None:
    session = requests.Session()
    login(session, dot_site)
    token = app_token(session, dot_site, "profile")
    refused = call(dot_site, token)
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    forged = call(dot_site, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert forged.status_code == 401
    assert 'error="invalid_token"' in forged.headers["WWW-Authenticate"]


def test_a_dot_token_not_asked_for_this_site_is_refused(dot_site: DotSite) -> None:
    """RFC 7662 section 4: "active" is not "for this resource". DOT's answer has aud only when the
    app asked with resource=; without it nothing says the token is for this site (its client_id is
    crm-app, not an accepted audience), and a token for another API names another aud."""
    session = requests.Session()
    login(session, dot_site)
    for resource in (None, "https://other-api.example.test/"):
        refused = call(dot_site, app_token(session, dot_site, "crm.contacts.read", resource=resource))
        assert refused.status_code == 401, resource
        assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_a_dot_refresh_token_is_no_bearer_token(dot_site: DotSite) -> None:
    session = requests.Session()
    login(session, dot_site)
    tokens = app_tokens(session, dot_site, "crm.contacts.read")
    assert tokens["refresh_token"]
    refused = call(dot_site, tokens["refresh_token"])  # DOT: not an access token, "active": false
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_a_client_credentials_token_is_the_clients(dot_site: DotSite) -> None:
    """DOT allows one grant type per client: machine callers use their own client (crm-service)."""
    data = {"grant_type": "client_credentials", "scope": "crm.contacts.read", "resource": dot_site.base}
    answer = requests.post(dot_site.issuer + "/token/", data=data, auth=SERVICE_AUTH, timeout=5)
    assert answer.status_code == 200, answer.text
    response = call(dot_site, answer.json()["access_token"])
    assert response.status_code == 200
    assert response.json()["caller"] == {"client_id": "crm-service"}


# 3 ---------------------------------------------------------------------------------------------


def test_the_introspection_endpoint_is_found_in_rfc8414_metadata(dot_site: DotSite) -> None:
    discovery = requests.get(dot_site.issuer + "/.well-known/openid-configuration", timeout=5).json()
    assert "introspection_endpoint" not in discovery  # DOT lists it only in its RFC 8414 document
    origin = dot_site.issuer.rsplit("/o", 1)[0]
    rfc8414 = requests.get(origin + "/.well-known/oauth-authorization-server/o", timeout=5).json()
    assert rfc8414["issuer"] == dot_site.issuer
    assert rfc8414["introspection_endpoint"] == dot_site.issuer + "/introspect/"
    lines = dot_site.check_output.splitlines()
    assert "  Discovery OK (OpenID discovery): issuer " + dot_site.issuer + "." in lines
    assert "  Introspection endpoint: from the RFC 8414 metadata (OpenID discovery lists none)." in lines
    assert "  Bearer tokens: validated as introspection." in lines
    assert not any("fail" in line.lower() for line in lines)


# 4 ---------------------------------------------------------------------------------------------


def test_provider_logout_with_id_token_hint_ends_dots_session(dot_site: DotSite) -> None:
    session = requests.Session()
    login(session, dot_site)
    # DOT's session is alive: logging in again through the site asks no password.
    session.cookies.clear(domain="127.0.0.1", path="/", name="sessionid")  # only the site's session
    again = login(session, dot_site)
    assert again.pages == ["consent"]
    out = logout(session, dot_site)
    assert out.status_code == 302
    end = out.headers["Location"]
    assert end.startswith(dot_site.issuer + "/logout/?")
    params = parse_qs(urlsplit(end).query)
    assert params["client_id"] == ["duo-site"]
    assert params["post_logout_redirect_uri"] == [dot_site.base + "/"]  # registered at DOT
    assert params["id_token_hint"]
    at_dot = session.get(end, allow_redirects=False)
    # No confirmation page: the hint names DOT's logged-in user; back to the site's registered URI.
    assert at_dot.status_code == 302, at_dot.text[:300]
    assert at_dot.headers["Location"] == dot_site.base + "/"
    assert me(session, dot_site) == {"authenticated": False}
    assert login(session, dot_site).pages == ["password", "consent"]  # DOT asks for the password again


def test_without_the_hint_dot_asks_and_its_session_survives(dot_site: DotSite) -> None:
    """The trade-off behind ``--logout-id-token-hint``: without it DOT must ask (RP-Initiated
    Logout 1.0 section 2), and a user who closes that page stays logged in at DOT."""
    dot_site.manage("duo_oidc_provider", "dot", "--no-logout-id-token-hint")
    try:
        session = requests.Session()
        login(session, dot_site)
        end = logout(session, dot_site).headers["Location"]
        assert "id_token_hint" not in parse_qs(urlsplit(end).query)
        at_dot = session.get(end, allow_redirects=False)
        assert at_dot.status_code == 200 and "<form" in at_dot.text  # DOT's "log out?" page
        assert me(session, dot_site) == {"authenticated": False}  # the site's session ended anyway
        assert login(session, dot_site).pages == ["consent"]  # but not DOT's: no password asked
    finally:
        dot_site.manage("duo_oidc_provider", "dot", "--logout-id-token-hint")


# 5 ---------------------------------------------------------------------------------------------


def test_a_refresh_token_revoked_at_dot_ends_the_session(dot_site: DotSite) -> None:
    session = requests.Session()
    login(session, dot_site)
    start = len(dot_site.log())
    # DOT's access tokens live ACCESS_TOKEN_SECONDS; the site renews them after half of that.
    time.sleep(ACCESS_TOKEN_SECONDS / 2 + 0.2)
    assert me(session, dot_site)["username"] == "alice"
    assert "Renewed the access token of a session of provider dot" in dot_site.log()[start:]
    assert dot_site.dot("dot_revoke", "alice", "--client", "duo-site").stdout.strip() != "revoked 0"
    time.sleep(ACCESS_TOKEN_SECONDS / 2 + 0.2)
    assert me(session, dot_site) == {"authenticated": False}
    log = dot_site.log()[start:]
    assert "(provider dot): " in log and "Ended the session of user" in log
    assert "Could not revalidate a session of provider dot" not in log  # never taken for an outage
    # The next request is an anonymous one (login), not a 503.
    page = session.get(dot_site.base + "/contacts/", allow_redirects=False)
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/oidc/login/")


def test_dot_down_a_due_renewal_is_an_outage_not_a_logout(dot_site: DotSite) -> None:
    """The other side of test 5: no answer is no refusal. The session stays (stale: scope-protected
    pages answer 503, ON_PROVIDER_DOWN "deny"), and works again once DOT is back."""
    session = requests.Session()
    login(session, dot_site)
    assert session.get(dot_site.base + "/contacts/").status_code == 200
    dot_site.stop_provider()
    try:
        time.sleep(ACCESS_TOKEN_SECONDS / 2 + 0.2)
        assert session.get(dot_site.base + "/contacts/", allow_redirects=False).status_code == 503
        assert me(session, dot_site)["username"] == "alice"  # not logged out
    finally:
        dot_site.start_provider()
    time.sleep(5.1)  # PROVIDER_DOWN_BACKOFF: the site leaves a failed provider alone this long
    assert session.get(dot_site.base + "/contacts/", allow_redirects=False).status_code == 200
