"""The example as a newcomer meets it (issue 15), in a real browser against the real provider, with the
provider row that ``scripts/dev.py example`` creates (its ``EXAMPLE_PROVIDER_OPTIONS``) and the access
review's permissions it grants (``GRANT_REVIEW``):

- alice opens Contacts; bob is never granted ``crm.contacts.read``: the 403 page and "Request access"
  (which cannot get it for him either), and his bearer token lacks it too;
- "Log out" ends the provider's session as well, says "You are logged out", and the next login asks
  who you are: alice, then bob; "Log in as someone else" asks even when the provider session stayed;
- carol (group admins) finds the access review in the admin; alice (not staff) does not get in;
- "Export" downloads the contacts as CSV, after the provider asked again (the step-up).
"""

from __future__ import annotations

import csv
import importlib.util
import io
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import jwt
import pytest
import requests

from .conftest import ROOT, Site, example_server, free_port, real_provider, site_env
from .test_bearer_real_provider import AUTH, call, user_token
from .test_browser import browser, consent_if_asked, page, provider_login, shot  # noqa: F401 - browser, page: fixtures


def dev_script() -> ModuleType:
    """``scripts/dev.py`` as a module (it runs nothing when imported)."""
    spec = importlib.util.spec_from_file_location("duo_oidc_dev_script", ROOT / "scripts" / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The example project configured as ``scripts/dev.py example`` configures it (without the fake Duo
    Admin API and second factor, which tests/e2e/test_directory_real_provider.py and test_mfa_browser.py
    drive)."""
    dev = dev_script()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tmp = tmp_path_factory.mktemp("e2e-example")
    env = site_env(base, tmp, PYTHONUNBUFFERED="1")
    with real_provider(env) as issuer:
        site = Site(base=base, issuer=issuer, env=env)
        site.manage("migrate", "--verbosity", "0")
        site.manage("duo_oidc_provider", "duo", "--issuer", issuer, *dev.EXAMPLE_PROVIDER_OPTIONS)
        site.manage("shell", "--verbosity", "0", "-c", dev.GRANT_REVIEW)
        with example_server(port, env, tmp / "runserver.log"):
            yield site


@pytest.fixture
def tab(request: pytest.FixtureRequest) -> Any:
    """A page in a fresh browser context: test_browser.py's ``page`` fixture."""
    return request.getfixturevalue("page")


def log_in(tab: Any, site: Site, user: str, link: str = "Log in with Duo", name: str = "") -> None:
    """From the home page, through the provider's sign-in (and consent) pages, to /me/."""
    tab.goto(site.base + "/")
    tab.click(f"text={link} >> nth=0")
    assert tab.url.startswith(site.issuer), "the provider did not ask who is logging in"
    provider_login(tab, user)
    consent_if_asked(tab, site, f"{name or 'newcomer'}-consent-{user}")
    tab.wait_for_url(site.base + "/me/")


def who(tab: Any) -> str:
    return str(tab.inner_text("dl dd >> nth=0"))


def test_alice_has_the_scope_and_bob_meets_the_403_page(tab: Any, example: Site) -> None:
    log_in(tab, example, "alice")
    assert tab.goto(example.base + "/contacts/").status == 200
    assert "Ada Lovelace" in tab.inner_text("main")
    tab.context.clear_cookies()

    log_in(tab, example, "bob")
    assert who(tab) == "bob@example.test" and "crm.contacts.read" not in tab.inner_text("main")
    shot(tab, "newcomer-01-bob-me")
    response = tab.goto(example.base + "/contacts/")
    assert response.status == 403
    assert "crm.contacts.read" in tab.inner_text("body")
    shot(tab, "newcomer-02-bob-forbidden")
    assert "Upstream" in tab.inner_text("nav")  # the site's layout, with its way back
    # Asking again goes through the provider, which still withholds it: the same page, not a loop.
    tab.click("text=Request access")
    tab.wait_for_url(example.base + "/contacts/")
    assert "Request access" in tab.inner_text("body")
    # Someone who has it: log out (here and at the provider), and alice logs in.
    tab.click("text=Log out")
    tab.wait_for_url(example.issuer + "/**")
    tab.click("text=Yes, sign me out")
    tab.wait_for_url(example.base + "/")
    log_in(tab, example, "alice", name="newcomer-again")
    assert tab.goto(example.base + "/contacts/").status == 200


def test_bobs_token_lacks_the_scope_even_when_asked_directly(example: Site) -> None:
    alice = user_token(example, "alice", "openid crm.contacts.read")
    bob = user_token(example, "bob", "openid crm.contacts.read")
    assert call(example, alice).status_code == 200
    refused = call(example, bob)
    assert refused.status_code == 403 and 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    introspected = requests.post(example.issuer + "/token/introspection", data={"token": bob}, auth=AUTH, timeout=5)
    introspected = introspected.json()
    assert introspected["active"] is True and "crm.contacts.read" not in introspected["scope"].split()


@pytest.mark.parametrize(("user", "granted"), [("alice", True), ("bob", False)])
def test_the_api_resource_withholds_it_from_bob_too(example: Site, user: str, granted: bool) -> None:
    """RFC 8707: a token for the resource urn:crm (a JWT) carries the scope as the resource's."""
    token = user_token(example, user, "openid crm.contacts.read", resource="urn:crm")
    claims = jwt.decode(token, options={"verify_signature": False})  # only read here; the site verifies
    assert claims["aud"] == "urn:crm"
    assert ("crm.contacts.read" in claims.get("scope", "").split()) is granted


def test_log_out_then_log_in_as_someone_else(tab: Any, example: Site) -> None:
    log_in(tab, example, "alice")
    assert who(tab) == "alice@example.test"
    tab.click("text=Log out")
    tab.wait_for_url(example.issuer + "/**")  # logout goes on to end the provider's session
    shot(tab, "newcomer-03-provider-logout")
    tab.click("text=Yes, sign me out")
    tab.wait_for_url(example.base + "/")
    assert "You are logged out." in tab.inner_text("body")
    shot(tab, "newcomer-04-logged-out")
    log_in(tab, example, "bob")  # the provider asks again: the session there ended too
    assert who(tab) == "bob@example.test"
    assert "bob@example.test" in tab.inner_text("nav")


def test_log_in_as_someone_else_when_the_provider_session_stayed(tab: Any, example: Site) -> None:
    log_in(tab, example, "alice")
    tab.click("text=Log out")
    tab.wait_for_url(example.issuer + "/**")
    tab.click("text=No, stay signed in")
    tab.wait_for_url(example.base + "/")
    log_in(tab, example, "carol", link="Log in as someone else")
    assert who(tab) == "carol@example.test"


def test_carol_finds_the_access_review_and_alice_no_admin(tab: Any, example: Site) -> None:
    log_in(tab, example, "carol")
    tab.click("nav >> text=Admin")
    tab.wait_for_url(example.base + "/admin/")
    body = tab.inner_text("body")
    assert "Directory users" in body and "permission" not in body.lower()
    shot(tab, "newcomer-05-carol-admin")
    tab.click("text=Directory users")
    tab.wait_for_url(example.base + "/admin/duo_oidc/directoryuser/")
    assert "Access review" in tab.inner_text("body")
    tab.context.clear_cookies()

    log_in(tab, example, "alice")
    tab.goto(example.base + "/admin/")
    assert tab.url.startswith(example.base + "/admin/login/")


def test_export_downloads_a_csv(tab: Any, example: Site) -> None:
    log_in(tab, example, "alice")
    tab.click("nav >> text=Export")
    # The step-up: the provider asks again (prompt=login, max_age=300), then the download starts.
    tab.wait_for_url(example.issuer + "/**")
    with tab.expect_download() as download:
        provider_login(tab, "alice")
    path = download.value.path()
    assert download.value.suggested_filename == "contacts.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert rows[0] == ["name", "email"] and ["Ada Lovelace", "ada@example.test"] in rows
