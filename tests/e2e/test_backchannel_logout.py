"""OpenID Connect Back-Channel Logout 1.0 with the real provider: alice signs out at the provider (its
RP-initiated logout, /session/end), the provider posts a logout token to the site, and her Django
session ends; her other browser (another provider session, another sid) and bob stay logged in."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urljoin

import requests

from .conftest import Site, login


def me(session: requests.Session, site: Site) -> dict:
    return session.get(site.base + "/me/").json()


def sign_out_at_the_provider(session: requests.Session, site: Site) -> requests.Response:
    """What a person does at the provider: open its logout page and confirm "Yes, sign me out"."""
    page = session.get(f"{site.issuer}/session/end", params={"client_id": "django-basic"})
    assert page.status_code == 200, page.text
    form = re.search(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', page.text, re.S)
    assert form, page.text
    action, body = form.groups()
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', body)
    assert xsrf, body
    return session.post(
        urljoin(page.url, unescape(action)), data={"xsrf": xsrf.group(1), "logout": "yes"}, allow_redirects=False
    )


def test_signing_out_at_the_provider_ends_the_django_session(site: Site) -> None:
    alice, alice_elsewhere, bob = requests.Session(), requests.Session(), requests.Session()
    for session, user in ((alice, "alice"), (alice_elsewhere, "alice"), (bob, "bob")):
        assert login(session, site, user=user).status_code == 302
        assert me(session, site)["authenticated"] is True

    done = sign_out_at_the_provider(alice, site)
    assert done.status_code in (302, 303), done.text

    posts = requests.get(f"{site.issuer}/__test__/backchannel", timeout=5).json()
    outcomes = [(p["client"], p["accountId"], p["ok"], p.get("error")) for p in posts]
    assert outcomes == [("django-basic", "alice", True, None)], posts
    assert posts[0]["sid"]  # the session-scoped form: the site ended the one session with that sid

    assert me(alice, site) == {"authenticated": False}
    assert me(alice_elsewhere, site)["authenticated"] is True  # another provider session (sid)
    assert me(bob, site)["authenticated"] is True
    log = site.log_path.read_text()  # type: ignore[attr-defined]
    assert "Back-channel logout from provider duo: 1 session(s) ended" in log


def test_a_forged_logout_post_is_refused_and_ends_nothing(site: Site) -> None:
    carol = requests.Session()
    login(carol, site, user="carol")
    response = requests.post(
        f"{site.base}/oidc/backchannel-logout/duo/", data={"logout_token": "e30.e30.sig"}, timeout=5
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.headers["Cache-Control"] == "no-store"
    assert me(carol, site)["authenticated"] is True
