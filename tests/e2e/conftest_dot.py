"""A second real OpenID provider for the e2e tier: django-oauth-toolkit (tests/dot_provider), run by
``runserver`` in its own process with its own SQLite file, and the example project configured
against it as a user would (``duo_oidc_provider dot ...``). Imported by tests/e2e/test_interop_dot.py.

Ports: ``OP_PORT`` and ``EXAMPLE_PORT`` when set (a helper's own range), else free ones.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .conftest import ROOT, Site, database_env, free_port, wait_http

SECRET = "dot+site/secret:with%25=chars-0123456789"  # survives only correct RFC 6749 2.3.1 encoding
PASSWORD = "correct horse battery staple"
# The DOT provider's access tokens live this long: the RP renews them after half of it (REFRESH_MARGIN
# is capped at half a token's lifetime), so a test sees a renewal within seconds.
ACCESS_TOKEN_SECONDS = 4


@dataclass
class DotSite(Site):
    """The example project (``base``) configured against the DOT provider (``issuer``)."""

    dot_env: dict[str, str] = field(default_factory=dict)
    check_output: str = ""
    log_path: Path = Path()
    op_port: int = 0
    op: subprocess.Popen[bytes] | None = None
    op_log: Path = Path()

    def dot(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a management command of the DOT provider project."""
        return subprocess.run(
            [sys.executable, "-m", "django", *args],
            env=self.dot_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def start_provider(self) -> None:
        """Start the DOT provider process (its database and key survive a restart)."""
        args = [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{self.op_port}", "--noreload"]
        self.op = _start(args, self.dot_env, self.op_log)
        wait_http(self.issuer + "/.well-known/openid-configuration", process=self.op)

    def stop_provider(self) -> None:
        if self.op is not None and self.op.poll() is None:
            _stop(self.op)


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "a") as out:
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="module", name="dot_site")
def dot_site_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DotSite]:
    tmp = tmp_path_factory.mktemp("dot")
    op_port = int(os.environ.get("OP_PORT") or free_port())
    site_port = int(os.environ.get("EXAMPLE_PORT") or free_port())
    base = f"http://127.0.0.1:{site_port}"
    issuer = f"http://127.0.0.1:{op_port}/o"
    (tmp / "dot_key.pem").write_text(_rsa_pem())
    dot_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "tests.dot_provider.settings",
        "DOT_DB_PATH": str(tmp / "dot.sqlite3"),
        "DOT_RSA_KEY_FILE": str(tmp / "dot_key.pem"),
        "DOT_ISSUER": issuer,
        "DOT_PASSWORD": PASSWORD,
        "DOT_SITE_SECRET": SECRET,
        "DOT_ACCESS_TOKEN_SECONDS": str(ACCESS_TOKEN_SECONDS),
    }
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "DUO_DOT_SECRET": SECRET,
        # Session checks only when a renewal is due (every ACCESS_TOKEN_SECONDS / 2): a refused
        # renewal, not an introspection answer, is what ends a session in test 5.
        "DUO_OIDC_REVALIDATE_SECONDS": "30",
        # DOT's introspection names the user by username only (no sub): the opt-in link (README).
        "DUO_OIDC_LINK_TOKENS_BY_USERNAME": "1",
        **database_env(tmp),
    }
    site = DotSite(
        base=base, issuer=issuer, env=env, dot_env=dot_env, log_path=tmp / "site.log", op_port=op_port,
        op_log=tmp / "dot.log",
    )  # fmt: skip
    site.dot("migrate", "--verbosity", "0")
    site.dot("dot_bootstrap", "--rp-base", base)
    server = None
    try:
        site.start_provider()
        site.manage("migrate", "--verbosity", "0")
        done = site.manage(
            "duo_oidc_provider", "dot", "--issuer", issuer, "--client-id", "duo-site",
            "--client-secret-env", "DUO_DOT_SECRET", "--scopes", "openid profile email crm.contacts.read",
            # DOT's access tokens are opaque: only introspection can tell whose they are.
            "--access-token-validation", "introspection",
            # DOT's introspection answer has aud only for a token asked for with RFC 8707 resource=;
            # the site's origin is its RFC 9728 resource identifier.
            "--audience", base,
            "--end-session", "--logout-id-token-hint", "--default", "--check",
        )  # fmt: skip
        site.check_output = done.stdout
        server = _start(
            [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{site_port}", "--noreload"],
            env,
            site.log_path,
        )
        wait_http(base + "/me/", process=server)
        yield site
    finally:
        if server is not None:
            _stop(server)
        site.stop_provider()


# The provider's pages, walked as a person would ------------------------------------------------

_FORM = re.compile(r"<form([^>]*)>(.*?)</form>", re.S | re.I)
_INPUT = re.compile(r"<input([^>]*)>", re.I)
_ATTR = re.compile(r"([\w-]+)=\"([^\"]*)\"")


@dataclass
class Walk:
    """Where a walk through the provider ended (``callback``: the RP URL not yet opened) and which
    pages it passed (``"password"``: DOT's login form; ``"consent"``: its authorization form)."""

    callback: str
    pages: list[str]


def submit(session: requests.Session, response: requests.Response, user: str) -> tuple[str, requests.Response]:
    """Fill and submit the page's form: DOT's login (username, password) or consent (allow)."""
    match = _FORM.search(response.text)
    assert match, f"no form on {response.url}: {response.status_code}"
    form_attrs, body = dict(_ATTR.findall(match.group(1))), match.group(2)
    data: dict[str, str] = {}
    for raw in _INPUT.findall(body):
        attrs = dict(_ATTR.findall(raw))
        if "name" in attrs:
            data[attrs["name"]] = unescape(attrs.get("value", ""))
    page = "password" if "password" in data else "consent"
    if page == "password":
        data.update(username=user, password=PASSWORD)
    action = urljoin(response.url, unescape(form_attrs.get("action", ""))) if form_attrs.get("action") else response.url
    return page, session.post(action, data=data, allow_redirects=False)


def walk(session: requests.Session, response: requests.Response, stop_at: str, user: str = "alice") -> Walk:
    """Follow the provider's redirects and forms from ``response`` until a redirect to ``stop_at``."""
    pages: list[str] = []
    for _ in range(12):
        location = response.headers.get("Location")
        if location:
            url = urljoin(response.url, location)
            if url.startswith(stop_at):
                return Walk(url, pages)
            response = session.get(url, allow_redirects=False)
        elif response.status_code == 200 and "<form" in response.text:
            page, response = submit(session, response, user)
            pages.append(page)
        else:
            raise AssertionError(f"stuck at {response.url}: {response.status_code} {response.text[:300]}")
    raise AssertionError("too many steps at the provider")


def login(session: requests.Session, site: DotSite, user: str = "alice") -> Walk:
    """Log in to the site through the DOT provider; return the walk (the callback already opened)."""
    first = session.get(site.base + "/oidc/login/?provider=dot&next=/me/", allow_redirects=False)
    assert first.status_code == 302, first.text
    done = walk(session, first, site.base + "/oidc/callback/", user)
    landed = session.get(done.callback, allow_redirects=False)
    assert landed.status_code == 302 and landed.headers["Location"] == "/me/", landed.text[:500]
    return done
