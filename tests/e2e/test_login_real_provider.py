"""The whole login against a real OpenID provider process, through the example project's contract."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests

from .conftest import Site, login, submit_form, walk_to_callback


def me(session: requests.Session, site: Site) -> dict:
    return session.get(site.base + "/me/").json()


def logout(session: requests.Session, site: Site) -> requests.Response:
    me(session, site)  # the CSRF cookie is set on /me/
    token = session.cookies.get("csrftoken")
    return session.post(site.base + "/oidc/logout/", headers={"X-CSRFToken": token}, allow_redirects=False)


def test_login_lands_on_me_with_claims_groups_and_granted_scopes(site: Site) -> None:
    session = requests.Session()
    assert me(session, site) == {"authenticated": False}
    response = login(session, site)
    assert response.status_code == 302
    assert response.headers["Location"] == "/me/"
    assert me(session, site) == {
        "authenticated": True,
        "username": "alice@example.test",
        "email": "alice@example.test",
        "groups": ["CRM"],
        "scopes": ["email", "groups", "openid", "profile"],
    }


def test_group_rule_does_not_apply_to_a_user_without_the_claim(site: Site) -> None:
    session = requests.Session()
    login(session, site, user="bob")
    assert me(session, site)["groups"] == []
    assert me(session, site)["username"] == "bob@example.test"


def test_client_secret_post_provider(site: Site) -> None:
    session = requests.Session()
    # dave logs in nowhere else: his first login names him after his email (another e2e file may have
    # made carol@example.test already, through the other provider).
    response = login(session, site, "/oidc/login/?provider=duo-post&next=/me/", user="dave")
    assert response.status_code == 302
    assert me(session, site)["username"] == "dave@example.test"


def test_logout_needs_csrf_and_ends_the_session(site: Site) -> None:
    session = requests.Session()
    login(session, site)
    assert session.post(site.base + "/oidc/logout/", allow_redirects=False).status_code == 403
    assert me(session, site)["authenticated"] is True
    response = logout(session, site)
    assert response.status_code == 302
    assert me(session, site) == {"authenticated": False}


def test_replayed_callback_after_logout_is_refused(site: Site) -> None:
    session = requests.Session()
    callback = walk_to_callback(session, site, "/oidc/login/?provider=duo&next=/me/")
    assert session.get(callback, allow_redirects=False).status_code == 302
    logout(session, site)
    response = session.get(callback, allow_redirects=False)
    assert response.status_code == 400
    assert "could not log you in" in response.text
    assert me(session, site) == {"authenticated": False}


def tampered(callback: str, **changes: str) -> str:
    parts = urlsplit(callback)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    params.update(changes)
    return parts._replace(query=urlencode(params)).geturl()


def test_tampered_state_is_refused(site: Site) -> None:
    session = requests.Session()
    callback = walk_to_callback(session, site, "/oidc/login/?provider=duo&next=/me/")
    response = session.get(tampered(callback, state="forged"), allow_redirects=False)
    assert response.status_code == 400
    assert me(session, site) == {"authenticated": False}


def test_mixed_up_issuer_is_refused_rfc9207(site: Site) -> None:
    session = requests.Session()
    callback = walk_to_callback(session, site, "/oidc/login/?provider=duo&next=/me/")
    assert "iss=" in callback  # the real provider sends RFC 9207 iss
    response = session.get(tampered(callback, iss="https://evil.example"), allow_redirects=False)
    assert response.status_code == 400
    assert me(session, site) == {"authenticated": False}


def test_forged_code_is_refused_by_the_provider(site: Site) -> None:
    session = requests.Session()
    callback = walk_to_callback(session, site, "/oidc/login/?provider=duo&next=/me/")
    response = session.get(tampered(callback, code="forged-code"), allow_redirects=False)
    assert response.status_code == 400
    assert "invalid_grant" in response.text
    assert me(session, site) == {"authenticated": False}


def test_cancel_at_the_provider_ends_cleanly(site: Site) -> None:
    session = requests.Session()
    response = session.get(site.base + "/oidc/login/?provider=duo&next=/me/", allow_redirects=False)
    page = session.get(response.headers["Location"], allow_redirects=True)
    assert "/abort" in page.text
    abort = page.url.rstrip("/") + "/abort"
    response = session.get(abort, allow_redirects=False)
    while "Location" in response.headers and "/oidc/callback/" not in response.headers["Location"]:
        response = session.get(response.headers["Location"], allow_redirects=False)
    callback = response.headers["Location"]
    assert "error=access_denied" in callback
    result = session.get(callback, allow_redirects=False)
    assert result.status_code == 403
    assert me(session, site) == {"authenticated": False}


def test_second_login_is_silent_and_prompt_login_asks_again(site: Site) -> None:
    session = requests.Session()
    login(session, site)
    logout(session, site)
    # The provider session survives a Django logout (as Duo's does): no password the second time. The
    # provider may ask for consent again: logout revoked the refresh token (RFC 7009), which ends the
    # grant at oidc-provider (Duo advertises no revocation endpoint, so its grants stay).
    response = session.get(site.base + "/oidc/login/?provider=duo", allow_redirects=False)
    pages = []
    answer = session.get(response.headers["Location"], allow_redirects=False)
    for _ in range(8):
        location = answer.headers.get("Location", "")
        if location.startswith(site.base + "/oidc/callback/"):
            break
        if location:
            answer = session.get(urljoin(answer.url, location), allow_redirects=False)
        else:
            pages.append(answer.text)
            answer = submit_form(session, answer, "alice")
    assert pages == [] or all('name="login"' not in page for page in pages)  # never the password page
    assert answer.headers.get("Location", "").startswith(site.base + "/oidc/callback/")  # the loop got there
    assert session.get(answer.headers["Location"], allow_redirects=False).status_code == 302
    # prompt=login sends the user through the provider's login page again (Duo's MFA prompt).
    response = session.get(site.base + "/oidc/login/?provider=duo&prompt=login", allow_redirects=False)
    page = session.get(response.headers["Location"], allow_redirects=True)
    assert 'name="login"' in page.text


def test_offsite_next_is_refused(site: Site) -> None:
    session = requests.Session()
    response = session.get(site.base + "/oidc/login/?provider=duo&next=https://evil.example/", allow_redirects=False)
    assert response.status_code == 400


def test_log_has_no_token_or_secret(site: Site) -> None:
    session = requests.Session()
    login(session, site)
    text = site.log_path.read_text()  # type: ignore[attr-defined]
    assert "Login of user" in text
    assert "/oidc/callback/?code=[redacted]&state=[redacted]" in text
    assert "sp+ec/ial" not in text
    assert not re.search(r"code=(?!\[redacted\])", text)
