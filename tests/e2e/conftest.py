"""The end-to-end tier: the example project served by `manage.py runserver` against a REAL OpenID
provider process (panva/oidc-provider, pinned in tests/provider), both started and stopped here.

Only the example project's outside contract is used: migrate, duo_oidc_provider, runserver, and the
URLs /oidc/login/, /oidc/callback/, /oidc/logout/, /me/.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
PROVIDER = ROOT / "tests" / "provider"
SECRET = "sp+ec/ial:chars%25x=0123456789abcdefghij"  # survives only correct RFC 6749 2.3.1 encoding
# Where the browser tests save a screenshot of each page a person sees; named for this run.
RUN_DIR = Path(
    os.environ.get("DUO_OIDC_SCREENSHOTS") or ROOT / "test-artifacts" / "screenshots" / time.strftime("%Y%m%d-%H%M%S")
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RUN_DIR.is_dir():
        count = len(list(RUN_DIR.glob("*.png")))
        terminalreporter.write_line(f"[e2e] {count} screenshots in {RUN_DIR}")


_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, and never one this run has handed out before: the kernel may give
    a port just closed out again, and two servers of one test started on the same port would talk to
    each other."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


def wait_http(url: str, timeout: float = 60, process: subprocess.Popen[Any] | None = None) -> None:
    """Wait until ``url`` answers (any status). The bound is generous: it is reached only when something
    is wrong, and a loaded machine takes its time to start a server. ``process``: the server that should
    answer; if it exits (its port taken since it was chosen, a crash), the wait ends at once and says so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with status {process.returncode} before it answered")
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def database_env(tmp: Path) -> dict[str, str]:
    """A fresh database for a site: a SQLite file, or on the PostgreSQL leg a new database."""
    port = os.environ.get("DJANGO_PG_PORT")
    if not port:
        return {"DJANGO_DB_PATH": str(tmp / "db.sqlite3")}
    import secrets

    import psycopg

    name = f"e2e_{secrets.token_hex(6)}"
    with psycopg.connect(host="127.0.0.1", port=int(port), user="postgres", dbname="postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return {"DJANGO_PG_NAME": name}


@dataclass
class Site:
    base: str
    issuer: str
    env: dict[str, str]

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )


def site_env(base: str, tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a real provider for the site at `base` and of that site (the example project)."""
    return {
        **os.environ,
        "OP_PORT": str(free_port()),
        "OP_RP_BASE_URLS": base,
        "OP_CLIENT_SECRET": SECRET,
        "DUO_CLIENT_SECRET": SECRET,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        **database_env(tmp),
        **extra,
    }


@contextmanager
def real_provider(env: dict[str, str]) -> Iterator[str]:
    """Run the pinned oidc-provider on env's OP_PORT; yield its issuer; stop it by PID."""
    if not (PROVIDER / "node_modules" / "oidc-provider").exists() or shutil.which("node") is None:
        pytest.fail("The real provider is not installed: run `python scripts/dev.py test` (it runs npm ci).")
    op = subprocess.Popen(
        ["node", str(PROVIDER / "provider.mjs")], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        line = op.stdout.readline() if op.stdout else ""
        assert line.startswith("READY"), f"provider did not start: {line!r}"
        yield line.split()[1]
    finally:
        op.terminate()
        op.wait(timeout=10)


@contextmanager
def example_server(port: int, env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Serve the example project (``runserver --noreload``) on 127.0.0.1:``port``, its output in
    ``log_path``; yield its base URL once it answers; stop it by PID."""
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_http(base + "/me/", process=server)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    django_port = free_port()
    base = f"http://127.0.0.1:{django_port}"
    tmp = tmp_path_factory.mktemp("e2e")
    env = site_env(base, tmp, PYTHONUNBUFFERED="1", DUO_OIDC_REVALIDATE_SECONDS="1")
    with real_provider(env) as issuer:
        s = Site(base=base, issuer=issuer, env=env)
        s.manage("migrate", "--verbosity", "0")
        scopes = "openid profile email groups"
        for slug, client_id in (("duo", "django-basic"), ("duo-post", "django-post")):
            extra = (
                ["--default", "--group-rule", "groups=crm-users:CRM"]
                if slug == "duo"
                else ["--token-auth-method", "client_secret_post"]
            )
            s.manage(
                "duo_oidc_provider", slug, "--issuer", issuer, "--client-id", client_id,
                "--client-secret-env", "DUO_CLIENT_SECRET", "--scopes", scopes, "--check", *extra,
                # The real provider's access tokens are opaque: only "introspection" mode asks about
                # them (issue 10 item 9: "auto" introspects only tokens that pass the local JWT checks).
                "--access-token-validation", "introspection",
            )  # fmt: skip
        log = open(tmp / "runserver.log", "w")  # noqa: SIM115
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{django_port}", "--noreload"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(base + "/me/", process=server)
            s.log_path = tmp / "runserver.log"  # type: ignore[attr-defined]
            yield s
        finally:
            server.terminate()
            server.wait(timeout=10)


_FORM = re.compile(r"<form[^>]*action=\"([^\"]+)\"[^>]*>(.*?)</form>", re.S | re.I)
_INPUT = re.compile(r"<input([^>]*)>", re.I)
_ATTR = re.compile(r"(\w+)=\"([^\"]*)\"")


def submit_form(session: requests.Session, response: requests.Response, login: str) -> requests.Response:
    """Fill and submit the provider's login or consent form as a person would."""
    match = _FORM.search(response.text)
    assert match, f"no form on {response.url}"
    action, body = match.groups()
    data: dict[str, str] = {}
    for raw in _INPUT.findall(body):
        attrs = dict(_ATTR.findall(raw))
        if "name" in attrs:
            data[attrs["name"]] = unescape(attrs.get("value", ""))
    if "login" in data:
        data.update(login=login, password="any")  # devInteractions: any login becomes the sub
    return session.post(urljoin(response.url, unescape(action)), data=data, allow_redirects=False)


def walk_to_callback(
    session: requests.Session,
    site: Site,
    start: str = "",
    login: str = "alice",
    first: requests.Response | None = None,
) -> str:
    """From a login URL on the site (or the site's `first` answer to one), pass the provider's pages;
    return the callback URL (not yet opened)."""
    response = first if first is not None else session.get(site.base + start, allow_redirects=False)
    assert response.status_code == 302, response.text
    for _ in range(12):
        location = response.headers.get("Location")
        if location:
            url = urljoin(response.url, location)
            if url.startswith(site.base + "/oidc/callback/"):
                return url
            response = session.get(url, allow_redirects=False)
        elif response.status_code == 200 and "<form" in response.text:
            response = submit_form(session, response, login)
        else:
            raise AssertionError(f"stuck at {response.url}: {response.status_code}")
    raise AssertionError("too many steps at the provider")


def login(
    session: requests.Session, site: Site, start: str = "/oidc/login/?provider=duo&next=/me/", user: str = "alice"
) -> requests.Response:
    callback = walk_to_callback(session, site, start, user)
    return session.get(callback, allow_redirects=False)


def host(url: str) -> str:
    return urlsplit(url).netloc
