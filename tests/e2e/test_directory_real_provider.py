"""Deprovisioning through the Duo Admin API, end to end (issue 12, "Tests"): the example project under
runserver, the REAL OpenID provider, and the fake Duo Admin API process (tests/fakeduo/admin_api.py),
seeded with alice, bob and carol as the provider's accounts, driven by the site's own commands.

alice logs in; Duo disables her; ``duo_oidc_sync`` runs; her session is over (her next request is
refused, ``/me/`` says anonymous) and her bearer token is refused; Duo re-enables her, the sync runs
again, and she can log in again.

The ``site`` is shared with the other e2e modules: this module adds its own connection (slug
``e2e-directory``, groups not mirrored), and removes it at the end, with alice active again and the
identities' remembered Duo ids as they were.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests

from tests.fakeduo.admin_fixtures import FakeDuoAdmin, duo_user_id, start_server, stop_server

from .conftest import ROOT, Site, login
from .test_bearer_real_provider import call, user_token

SLUG = "e2e-directory"
SKEY_ENV = "DUO_E2E_DIRECTORY_SKEY"  # SECRET_ENV_PREFIXES: "DUO_" may hold a secret
ALICE = duo_user_id("alice")

# Run in the site's own Python (manage.py shell): what the teardown needs to leave the site as it was.
SNAPSHOT = """
import json
from django_duo_oidc.models import Identity
print(json.dumps({str(i.pk): i.duo_user_id for i in Identity.objects.filter(provider__slug="duo")}))
"""
RESTORE = """
import json, sys
from django.contrib.auth import get_user_model
from django_duo_oidc.models import DirectoryConnection, Identity
before = json.loads({before!r})
DirectoryConnection.objects.filter(slug={slug!r}).delete()
for identity in Identity.objects.filter(provider__slug="duo"):
    if identity.duo_user_id != before.get(str(identity.pk), ""):
        Identity.objects.filter(pk=identity.pk).update(duo_user_id=before.get(str(identity.pk), ""))
get_user_model().objects.filter(duo_identities__provider__slug="duo", duo_identities__sub="alice").update(
    is_active=True
)
"""


@pytest.fixture(scope="module")
def duo(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, FakeDuoAdmin]]:
    """The fake Admin API (seeded) and the site with a connection to it; all undone at the end."""
    server = start_server(tmp_path_factory.mktemp("fake-duo-admin-e2e"), "--seed-example")
    fake = server.controller
    governed = replace(site, env={**site.env, SKEY_ENV: fake.skey})
    before = governed.manage("shell", "-c", SNAPSHOT).stdout.strip().splitlines()[-1]
    try:
        governed.manage(
            "duo_oidc_directory", SLUG, "--api-host", fake.api_host, "--ikey", fake.ikey, "--skey-env", SKEY_ENV,
            "--provider", "duo", "--match", "email", "--ca-certs", fake.ca_path, "--no-groups", "--check",
        )  # fmt: skip
        yield governed, fake
    finally:
        try:
            governed.manage("shell", "-c", RESTORE.format(before=before, slug=SLUG))
        finally:
            stop_server(server)


def session_stored(site: Site, browser: requests.Session) -> bool:
    """Whether the site's session store still holds the browser's session (database sessions)."""
    key = browser.cookies.get("sessionid")
    assert key, "no session cookie"
    code = "from django.contrib.sessions.models import Session as S; "
    code += f"print(S.objects.filter(session_key={key!r}).exists())"
    return site.manage("shell", "--verbosity", "0", "-c", code).stdout.strip().splitlines()[-1] == "True"


def me(session: requests.Session, site: Site) -> dict[str, object]:
    return session.get(site.base + "/me/", timeout=5).json()


def sync(site: Site) -> str:
    done = site.manage("duo_oidc_sync", SLUG)
    return done.stdout


def test_a_user_disabled_in_duo_loses_her_session_and_her_token_until_duo_enables_her(
    duo: tuple[Site, FakeDuoAdmin],
) -> None:
    site, fake = duo
    browser = requests.Session()
    landed = login(browser, site, "/oidc/login/?provider=duo&next=/me/", user="alice")
    assert landed.status_code == 302
    assert me(browser, site)["authenticated"] is True
    sync(site)  # links alice's identity to her Duo user (by email)
    token = user_token(site, "alice", "openid crm.contacts.read")
    assert call(site, token).status_code == 200

    assert session_stored(site, browser)
    fake.patch_user(ALICE, status="disabled")
    out = sync(site)
    assert "alice" in out, out  # the change is printed, with the reason
    assert not session_stored(site, browser)  # ended by the sync itself, not at her next request

    # Her session was ended at once: the next request is refused, and she is anonymous.
    contacts = browser.get(site.base + "/contacts/", allow_redirects=False, timeout=5)
    assert contacts.status_code == 302
    assert "/oidc/login/" in contacts.headers["Location"]
    assert me(browser, site) == {"authenticated": False}
    # Her bearer token, still active at the provider, is refused: at once, or within the site's
    # memo of a token's user (resource.context.USER_TTL, 1 s), as the sync ran in another process.
    time.sleep(1.1)
    refused = call(site, token)
    assert refused.status_code == 401, refused.text
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    # Logging in again does not help while Duo says disabled.
    again = requests.Session()
    login(again, site, "/oidc/login/?provider=duo&next=/me/", user="alice")
    assert me(again, site) == {"authenticated": False}

    # Duo enables her again: the sync re-activates her (it deactivated her), and she can log in.
    fake.patch_user(ALICE, status="active")
    out = sync(site)
    assert "alice" in out, out
    back = requests.Session()
    login(back, site, "/oidc/login/?provider=duo&next=/me/", user="alice")
    assert me(back, site)["authenticated"] is True
    time.sleep(1.1)
    assert call(site, user_token(site, "alice", "openid crm.contacts.read")).status_code == 200


def test_a_sync_that_fails_half_way_changes_nobody(duo: tuple[Site, FakeDuoAdmin]) -> None:
    site, fake = duo
    browser = requests.Session()
    login(browser, site, "/oidc/login/?provider=duo&next=/me/", user="alice")
    assert me(browser, site)["authenticated"] is True
    fake.patch_user(ALICE, status="disabled")
    fake.faults(page_limit=1, fail_at_offset=1, sticky=True)  # every users page after the first fails
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "duo_oidc_sync", SLUG],
            env=site.env, cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode != 0, done.stdout  # exits non-zero and says why
        assert fake.stats()["failed_pages"] >= 1
        assert me(browser, site)["authenticated"] is True  # nobody's access changed
    finally:
        fake.reset()  # the seeded state again (alice active), no faults
