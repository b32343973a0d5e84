"""A real browser (Debian's Chromium, driven by Playwright) walks the example project as a person would,
against the real provider, and saves a screenshot of every page a person sees.

Screenshots go to ``$DUO_OIDC_SCREENSHOTS`` or ``test-artifacts/screenshots/<run time>/``; the path
is printed at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from .conftest import ROOT, RUN_DIR, SECRET, Site

CHROMIUM = "/usr/bin/chromium"
# The launch that works on these machines (REAL.md section 2): never a browser download.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `python scripts/dev.py test` (it installs Debian's chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def shot(page: Any, name: str) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(RUN_DIR / f"{name}.png"), full_page=True)


def provider_login(page: Any, user: str) -> None:
    """Pass the provider's sign-in page, then its consent page if it asks."""
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", user)
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")


def consent_if_asked(page: Any, site: Site, name: str) -> None:
    if page.url.startswith(site.issuer):
        page.wait_for_selector("button[type=submit]")
        shot(page, name)
        page.click("button[type=submit]")


def me_json(page: Any, site: Site) -> Any:
    """/me/ as JSON, in this browser's session (a browser navigating to /me/ gets the page)."""
    page.goto(site.base + "/me/?format=json")
    return page.evaluate("() => JSON.parse(document.body.innerText)")


def test_login_scopes_403_request_access_and_logout(page: Any, site: Site) -> None:
    page.goto(site.base + "/")
    shot(page, "01-home-login-button")
    page.click("text=Log in with Duo >> nth=0")
    assert page.url.startswith(site.issuer)
    shot(page, "02-provider-sign-in")
    provider_login(page, "frank")
    consent_if_asked(page, site, "03-provider-consent")
    page.wait_for_url(site.base + "/me/")
    shot(page, "04-me-logged-in")
    me = me_json(page, site)
    assert me["authenticated"] is True
    assert "crm.contacts.read" not in me["scopes"]

    # Without the scope: the 403 page names it and offers to ask for it.
    response = page.goto(site.base + "/contacts/")
    assert response.status == 403
    assert "crm.contacts.read" in page.inner_text("body")
    shot(page, "05-forbidden-missing-scope")
    page.click("text=Request access")
    consent_if_asked(page, site, "06-provider-consent-new-scope")
    page.wait_for_url(site.base + "/contacts/")
    assert "Ada Lovelace" in page.inner_text("body")
    shot(page, "07-contacts-with-scope")

    # Log out from the home page's button: logged out for real.
    page.goto(site.base + "/")
    page.click("text=Log out")
    page.wait_for_load_state()
    assert me_json(page, site) == {"authenticated": False}
    page.goto(site.base + "/")
    assert page.locator("text=Log out").count() == 0
    assert page.locator("text=Log in with Duo").count() >= 1
    shot(page, "08-logged-out")


def test_a_tampered_callback_shows_the_error_page(page: Any, site: Site) -> None:
    # The browser's last hop to the callback is a redirect, which Playwright cannot intercept; so the
    # consent POST is intercepted, the provider's redirects followed by hand, and the browser sent to
    # the callback with its code changed, as an attacker who holds the URL would.
    seen: list[str] = []

    def tamper(route: Any) -> None:
        if "prompt=consent" not in (route.request.post_data or ""):
            route.continue_()
            return
        response = route.fetch(max_redirects=0)
        location = urljoin(route.request.url, response.headers["location"])
        while not location.startswith(site.base):
            hop = page.context.request.get(location, max_redirects=0)
            location = urljoin(location, hop.headers["location"])
        seen.append(location)
        route.fulfill(status=303, headers={"Location": location.replace("code=", "code=tampered")})

    page.route(f"{site.issuer}/interaction/**", tamper)
    page.goto(site.base + "/oidc/login/?provider=duo&next=/me/")
    provider_login(page, "grace")
    page.wait_for_selector("button[type=submit]")
    shot(page, "09-provider-consent-before-tamper")
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/oidc/callback/**")
    assert seen and "/oidc/callback/" in seen[0], seen
    assert "/oidc/callback/" in page.url
    body = page.inner_text("body")
    assert "could not" in body.lower() or "refused" in body.lower()
    shot(page, "10-error-tampered-code")
    assert me_json(page, site) == {"authenticated": False}

    response = page.goto(site.base + "/oidc/callback/?code=x&state=forged")
    assert response.status == 400
    shot(page, "11-error-unknown-state")
    response = page.goto(site.base + "/oidc/login/?provider=duo&next=https://evil.example/")
    assert response.status == 400
    shot(page, "12-error-offsite-next")


def test_the_admin_provider_list_and_check_connection(page: Any, site: Site) -> None:
    env = {**site.env, "DJANGO_SUPERUSER_PASSWORD": "e2e-admin-password"}
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "createsuperuser", "--noinput", "--username", "admin",
         "--email", "admin@example.test"],
        env=env, cwd=ROOT, check=False, capture_output=True,
    )  # fmt: skip
    page.goto(site.base + "/admin/login/?next=/admin/duo_oidc/provider/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "e2e-admin-password")
    page.click("input[type=submit]")
    page.wait_for_url(site.base + "/admin/duo_oidc/provider/")
    body = page.inner_text("body")
    assert "duo-post" in body
    assert "e2e-admin-password" not in page.content()
    shot(page, "13-admin-provider-list")
    page.check("#result_list tbody tr:first-child input.action-select")
    page.select_option("select[name=action]", "check_connection_action")
    page.click("button[name=index]")
    page.wait_for_load_state()
    messages = page.inner_text("ul.messagelist")
    assert "Duo works" in messages
    assert SECRET not in page.content()
    shot(page, "14-admin-check-connection")
    page.goto(site.base + "/admin/duo_oidc/provider/")
    page.click("#result_list tbody tr:first-child th a")
    page.wait_for_selector("input[name=issuer]")
    assert SECRET not in page.content()  # the secret is write-only
    shot(page, "15-admin-provider-form")
