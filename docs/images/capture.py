"""Retake the screenshots of docs/images from a running example project (not part of the package or tests).

Start the example first (``python scripts/dev.py example``; any ports through ``EXAMPLE_PORT``, ``OP_PORT``,
``DUO_ADMIN_PORT``, ``DUO_MFA_PORT``), then::

    python docs/images/capture.py http://127.0.0.1:8000 <the admin password the example printed>

Debian's Chromium through Playwright (never a browser download), launched as the e2e tests launch it.
Element screenshots keep each PNG small.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def save(page: Any, name: str, selector: str | None = None) -> None:
    """One PNG of the page (or of one element of it), made small."""
    path = HERE / f"{name}.png"
    if selector:
        page.locator(selector).first.screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=True)
    print(path)


def provider_login(page: Any, site: str, user: str) -> None:
    """The local provider's sign-in page (any password), then its consent pages until back on the site."""
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", user)
    page.fill("input[name=password]", "any")
    for _ in range(3):
        before = page.url
        page.click("button[type=submit]")
        page.wait_for_url(lambda url, before=before: url != before)
        if page.url.startswith(site):
            return
        page.wait_for_selector("button[type=submit]")


def main(base: str, admin_password: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_context(viewport={"width": 900, "height": 600}).new_page()
        page.set_default_timeout(15_000)

        page.goto(base + "/")
        save(page, "example-home")
        page.click("text=Log in with Duo >> nth=0")
        provider_login(page, base, "bob")
        response = page.goto(base + "/contacts/")
        if response is not None and response.status == 403:
            save(page, "example-forbidden")
        page.goto(base + "/")
        page.click("text=Log out")
        page.wait_for_load_state()

        # The fake Universal Prompt serves HTTPS with a throwaway CA: this profile accepts its certificate.
        page = browser.new_context(viewport={"width": 1000, "height": 800}, ignore_https_errors=True).new_page()
        page.set_default_timeout(15_000)
        page.goto(base + "/admin/login/?next=/admin/duo_oidc/provider/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", admin_password)
        page.click("input[type=submit]")
        page.wait_for_selector("#approve")
        page.click("#approve")
        page.wait_for_url(base + "/admin/duo_oidc/provider/")
        save(page, "admin-provider-list", "#content")
        page.check("#result_list tbody tr:first-child input.action-select")
        page.select_option("select[name=action]", "check_connection_action")
        page.click("button[name=index]")
        page.wait_for_load_state()
        save(page, "admin-check-connection", "ul.messagelist")
        page.goto(base + "/admin/duo_oidc/provider/")
        page.click("#result_list tbody tr:first-child th a")
        page.wait_for_selector("input[name=issuer]")
        save(page, "admin-provider-connection", "fieldset >> nth=1")
        save(page, "admin-provider-login-request", "fieldset >> nth=2")
        save(page, "admin-provider-logout", "fieldset >> nth=3")
        save(page, "admin-provider-group-rules", ".inline-group >> nth=0")
        page.goto(base + "/admin/duo_oidc/directoryconnection/")
        page.click("#result_list tbody tr:first-child th a")
        page.wait_for_load_state()
        save(page, "admin-directory-connection", "fieldset >> nth=1")
        page.goto(base + "/admin/duo_oidc/directoryuser/")
        save(page, "admin-access-review", "#content")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), sys.argv[2])
