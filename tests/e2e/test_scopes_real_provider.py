"""Scope policy against the real provider: the scope granted at login opens /contacts/; a revocation at
the provider closes it on the first request after the freshness window (1 s in this tier)."""

from __future__ import annotations

import re
import time
from html import unescape

import requests

from .conftest import Site, login
from .test_login_real_provider import me


def test_missing_scope_then_request_access_then_revocation(site: Site) -> None:
    session = requests.Session()
    assert session.get(site.base + "/contacts/", allow_redirects=False).headers["Location"] == (
        "/oidc/login/?next=/contacts/"
    )
    login(session, site, "/oidc/login/?provider=duo&next=/contacts/")
    response = session.get(site.base + "/contacts/", allow_redirects=False)
    assert response.status_code == 403
    assert "<code>crm.contacts.read</code>" in response.text

    # "Request access": re-authorize with the missing scope; the provider grants it.
    found = re.search(r'<a [^>]*href="([^"]+)"[^>]*>Request access</a>', response.text)
    assert found, response.text
    link = unescape(found.group(1))
    response = login(session, site, link)
    assert response.headers["Location"] == "/contacts/"
    assert session.get(site.base + "/contacts/").status_code == 200
    assert "crm.contacts.read" in me(session, site)["scopes"]

    # An administrator revokes alice's access at the provider.
    assert requests.post(site.issuer + "/__test__/revoke", params={"sub": "alice"}, timeout=5).status_code == 204
    time.sleep(1.1)  # the freshness window
    response = session.get(site.base + "/contacts/", allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "/oidc/login/?next=/contacts/"
    assert me(session, site) == {"authenticated": False}


def test_step_up_round_trip_through_the_provider_login(site: Site) -> None:
    session = requests.Session()
    login(session, site, "/oidc/login/?provider=duo&scope=crm.contacts.read&next=/contacts/", user="carol")
    assert session.get(site.base + "/contacts/export/").status_code == 200  # just authenticated
    # What the step-up redirect does: max_age and prompt=login. The provider shows its login page again
    # (the walk below fills it in), sends auth_time, and the callback checks it against max_age.
    step_up = "/oidc/login/?provider=duo&scope=crm.contacts.read&max_age=300&prompt=login&next=/contacts/export/"
    response = login(session, site, step_up, user="carol")
    assert response.status_code == 302
    assert response.headers["Location"] == "/contacts/export/"
    assert session.get(site.base + "/contacts/export/").status_code == 200
