"""A real browser (Debian's Chromium, through Playwright) logs in to the example project's admin with a
password and then Duo's Universal Prompt, served by the fake Duo Web SDK v4 process
(tests/fakeduo/universal.py), as a person would; a screenshot of every page a person sees.

Only the example project's outside contract is used: migrate, ``duo_oidc_mfa``, ``runserver``, and the
URLs /admin/, /admin/login/, /me/. The site talks to the fake through Duo's own ``duo_universal`` SDK,
over HTTPS with the fake's test CA (``--ca-certs``); the browser is told to accept the fake's certificate
(the browser's trust is not what is tested here, the site's is).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakeduo.universal_fixtures import UniversalController, UniversalServer

from .conftest import ROOT, RUN_DIR, database_env, free_port, wait_http

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
REMEMBER_COOKIE = "duo_oidc_mfa_remember"
# Two staff accounts (the admin login always asks Duo for staff) and their passwords.
USERS = {"ada": "ada-e2e-password-1", "bea": "bea-e2e-password-1"}
CREATE_USER = """
import os
from django.contrib.auth import get_user_model
user = get_user_model().objects.get_or_create(username=os.environ["E2E_USER"])[0]
user.email = user.username + "@example.test"
user.is_staff = user.is_superuser = user.is_active = True
user.set_password(os.environ["E2E_PASSWORD"])
user.save()
"""


@dataclass
class MFASite:
    base: str
    env: dict[str, str]
    duo: UniversalServer
    passwords: dict[str, str] = field(default_factory=lambda: dict(USERS))

    def manage(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env={**self.env, **(env or {})}, cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    def configure(self, remember_days: int, refuse_factor: str = "") -> str:
        """The example's second factor, as its README says: ``duo_oidc_mfa ... --check``."""
        return self.manage(
            "duo_oidc_mfa", "--client-id", self.duo.client_id, "--client-secret-env", "DUO_MFA_CLIENT_SECRET",
            "--api-host", self.duo.base_url.removeprefix("https://"), "--ca-certs", self.duo.ca_path,
            "--fail-mode", "closed", "--enable", "--remember-days", str(remember_days),
            "--refuse-factor", refuse_factor, "--check",
        )  # fmt: skip

    def set_password(self, username: str, password: str) -> None:
        self.manage("shell", "-c", CREATE_USER, env={"E2E_USER": username, "E2E_PASSWORD": password})
        self.passwords[username] = password


@pytest.fixture(scope="module")
def mfa_site(tmp_path_factory: pytest.TempPathFactory, fake_duo_universal_server: UniversalServer) -> Iterator[MFASite]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tmp = tmp_path_factory.mktemp("e2e-mfa")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "DUO_MFA_CLIENT_SECRET": fake_duo_universal_server.client_secret,
        "PYTHONUNBUFFERED": "1",
        **database_env(tmp),
    }
    site = MFASite(base=base, env=env, duo=fake_duo_universal_server)
    site.manage("migrate", "--verbosity", "0")
    site.configure(remember_days=0)
    for username, password in USERS.items():
        site.set_password(username, password)
    log_path = tmp / "runserver.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_http(base + "/me/", process=server)
        site.log_path = log_path  # type: ignore[attr-defined]
        yield site
    finally:
        server.terminate()
        server.wait(timeout=10)


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
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies) that accepts the fake Duo's test certificate."""
    context = browser.new_context(viewport={"width": 1000, "height": 700}, ignore_https_errors=True)
    context.set_default_timeout(30_000)
    yield context
    context.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


def shot(page: Any, name: str) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(RUN_DIR / f"mfa-{name}.png"), full_page=True)


def me(page: Any, site: MFASite) -> dict[str, Any]:
    """The site's /me/ as this browser sees it, in a second tab (the first one stays where it is)."""
    other = page.context.new_page()
    try:
        other.goto(site.base + "/me/?format=json")  # a browser navigating to /me/ gets the page
        return other.evaluate("() => JSON.parse(document.body.innerText)")  # type: ignore[no-any-return]
    finally:
        other.close()


def password_step(page: Any, site: MFASite, username: str, name: str | None = None, start: str = "/admin/") -> None:
    """Open the admin (or ``start``), get its login form, and give the password."""
    page.goto(site.base + start)
    page.wait_for_url(f"{site.base}/admin/login/**")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", site.passwords[username])
    if name:
        shot(page, name)
    page.click("input[type=submit]")


def at_prompt(page: Any, duo: UniversalController, username: str) -> None:
    page.wait_for_url(f"{duo.base_url}/frame/v4/prompt/**")
    assert page.inner_text("#username") == username


def admin_index(page: Any, site: MFASite) -> None:
    page.wait_for_url(site.base + "/admin/")
    assert "Site administration" in page.inner_text("body")


def log_out(page: Any, site: MFASite) -> None:
    page.click("#logout-form button[type=submit]")
    page.wait_for_load_state()
    assert me(page, site) == {"authenticated": False}


def test_password_then_duo_then_the_admin_and_duo_asks_every_time(
    page: Any, mfa_site: MFASite, fake_duo_universal: UniversalController
) -> None:
    site, duo = mfa_site, fake_duo_universal
    site.configure(remember_days=0)
    password_step(page, site, "ada", "01-admin-password")
    at_prompt(page, duo, "ada")
    shot(page, "02-duo-prompt")
    # The password alone gave this browser no session: only a pending, single-use attempt.
    assert me(page, site) == {"authenticated": False}
    page.click("#approve")
    admin_index(page, site)
    shot(page, "03-admin-index-after-duo")
    assert me(page, site)["username"] == "ada"
    assert REMEMBER_COOKIE not in {c["name"] for c in page.context.cookies()}

    # "Every time": the next login asks Duo again.
    log_out(page, site)
    password_step(page, site, "ada")
    at_prompt(page, duo, "ada")
    page.click("#approve")
    admin_index(page, site)
    stats = duo.stats()
    assert (stats["prompts"], stats["decisions"], stats["tokens"]) == (2, 2, 2)


def test_deny_ends_on_a_clear_page_with_no_session(
    page: Any, mfa_site: MFASite, fake_duo_universal: UniversalController
) -> None:
    site, duo = mfa_site, fake_duo_universal
    site.configure(remember_days=30)
    password_step(page, site, "ada")
    at_prompt(page, duo, "ada")
    with page.expect_response(lambda r: "/oidc/mfa/callback/" in r.url) as answer:
        page.click("#deny")
    assert answer.value.status == 403
    callback = answer.value.url
    body = page.inner_text("body")
    assert "not logged in" in body and "access_denied" in body
    assert "duo_code" not in page.content()
    shot(page, "04-duo-denied")
    assert me(page, site) == {"authenticated": False}
    assert REMEMBER_COOKIE not in {c["name"] for c in page.context.cookies()}  # a deny remembers nothing
    page.goto(site.base + "/admin/")
    page.wait_for_url(f"{site.base}/admin/login/**")
    # The callback URL again (the back button, or a copied URL replayed): its state is spent, so it is
    # refused before Duo is asked; still no session.
    replay = page.goto(callback)
    assert replay.status == 400
    assert "not logged in" in page.inner_text("body")
    assert me(page, site) == {"authenticated": False}
    assert duo.stats()["tokens"] == 1


def test_duo_down_fails_closed_on_a_clear_page(
    page: Any, mfa_site: MFASite, fake_duo_universal: UniversalController
) -> None:
    site, duo = mfa_site, fake_duo_universal
    site.configure(remember_days=0)
    duo.faults(down=True)

    def password_post(response: Any) -> bool:
        return response.url.startswith(site.base + "/admin/login/") and response.request.method == "POST"

    with page.expect_response(password_post) as answer:
        password_step(page, site, "ada")
    assert answer.value.status == 503
    assert "not logged in" in page.inner_text("body")
    shot(page, "05-duo-unreachable-fail-closed")
    assert me(page, site) == {"authenticated": False}
    assert duo.stats()["prompts"] == 0


def test_a_remembered_browser_skips_duo_until_the_cookie_expires_or_the_password_changes(
    page: Any, mfa_site: MFASite, fake_duo_universal: UniversalController
) -> None:
    site, duo = mfa_site, fake_duo_universal
    site.configure(remember_days=30)
    password_step(page, site, "bea")
    at_prompt(page, duo, "bea")
    page.click("#approve")
    admin_index(page, site)
    cookie = next(c for c in page.context.cookies() if c["name"] == REMEMBER_COOKIE)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    assert cookie["expires"] > time.time() + 29 * 86400  # persistent, for the configured days

    # Remembered: the password alone is enough in this browser now.
    log_out(page, site)
    password_step(page, site, "bea")
    admin_index(page, site)
    shot(page, "06-remembered-no-prompt")
    assert duo.stats()["authorizes"] == 1

    # ... but not for another account in the same browser: the cookie is bound to its user.
    log_out(page, site)
    password_step(page, site, "ada")
    at_prompt(page, duo, "ada")
    shot(page, "07-other-user-still-asked")
    page.goto(site.base + "/admin/")  # walk away from the prompt: the attempt is abandoned, no session
    page.wait_for_url(f"{site.base}/admin/login/**")

    # The cookie expired (the browser drops it): Duo again.
    page.context.add_cookies([{**cookie, "expires": 1}])
    assert REMEMBER_COOKIE not in {c["name"] for c in page.context.cookies()}
    password_step(page, site, "bea")
    at_prompt(page, duo, "bea")
    page.click("#approve")
    admin_index(page, site)

    # The password changed: the remembered browser is forgotten, and Duo asks again.
    log_out(page, site)
    site.set_password("bea", "bea-e2e-password-2")
    password_step(page, site, "bea")
    at_prompt(page, duo, "bea")
    shot(page, "08-password-changed-asked-again")
    page.click("#approve")
    admin_index(page, site)
    assert duo.stats()["decisions"] == 3


def refused_at_callback(page: Any, site: MFASite, status: int, error: str, name: str) -> None:
    """Approve on the prompt; the site's callback refuses with ``status``/``error``; no session."""
    with page.expect_response(lambda r: "/oidc/mfa/callback/" in r.url) as answer:
        page.click("#approve")
    assert answer.value.status == status
    body = page.inner_text("body")
    assert "not logged in" in body and error in body
    shot(page, name)
    assert me(page, site) == {"authenticated": False}
    assert REMEMBER_COOKIE not in {c["name"] for c in page.context.cookies()}


def test_duo_answering_for_another_user_is_refused(
    page: Any, mfa_site: MFASite, fake_duo_universal: UniversalController
) -> None:
    site, duo = mfa_site, fake_duo_universal
    site.configure(remember_days=30)
    duo.faults(wrong_username=True)
    password_step(page, site, "ada")
    at_prompt(page, duo, "ada")
    refused_at_callback(page, site, 502, "another user", "09-duo-answered-for-another-user")


def test_a_refused_factor_is_refused(page: Any, mfa_site: MFASite, fake_duo_universal: UniversalController) -> None:
    site, duo = mfa_site, fake_duo_universal
    site.configure(remember_days=30, refuse_factor="Bypass Code")
    duo.faults(factor="Bypass Code")
    password_step(page, site, "ada")
    at_prompt(page, duo, "ada")
    refused_at_callback(page, site, 403, "factor_refused", "10-bypass-code-refused")


@pytest.mark.parametrize("fault", [{"down": True}, {"broken": True}], ids=["down", "html-502"])
def test_duo_down_between_the_prompt_and_the_exchange(
    page: Any, mfa_site: MFASite, fake_duo_universal: UniversalController, fault: dict[str, bool]
) -> None:
    site, duo = mfa_site, fake_duo_universal
    site.configure(remember_days=0)
    password_step(page, site, "ada")
    at_prompt(page, duo, "ada")

    # The browser's hop to the callback is a redirect, which Playwright cannot intercept: so the Approve
    # POST is answered here (sent on to the fake), and Duo goes down before the browser follows its redirect.
    def approve_then_duo_goes_down(route: Any) -> None:
        answer = route.fetch(max_redirects=0)
        duo.faults(**fault)
        route.fulfill(status=302, headers={"Location": answer.headers["location"]})

    page.route(f"{duo.base_url}/frame/v4/prompt/**", approve_then_duo_goes_down)
    refused_at_callback(page, site, 503, "duo_unavailable", f"11-duo-{next(iter(fault))}-at-the-exchange")


def test_an_off_site_next_ends_on_this_site(
    page: Any, mfa_site: MFASite, fake_duo_universal: UniversalController
) -> None:
    site, duo = mfa_site, fake_duo_universal
    site.configure(remember_days=0)
    password_step(page, site, "ada", start="/admin/login/?next=https://evil.example.test/")
    at_prompt(page, duo, "ada")
    page.click("#approve")
    page.wait_for_url(site.base + "/me/")  # LOGIN_REDIRECT_URL, not the other site
    assert me(page, site)["username"] == "ada"
