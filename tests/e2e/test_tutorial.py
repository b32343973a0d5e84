"""docs/tutorial.md, run as a newcomer follows it: its marked blocks, in the order of the page.

The page marks each block with an HTML comment (tests/docblocks.py): ``run`` blocks are typed in a
terminal (bash; the terminal keeps its folder and its exported variables from one block to the next),
``serve`` blocks start a program that keeps the terminal busy (the next block is typed in a new terminal
in the work folder, as the page says), ``write``/``append`` blocks are files (paths from the terminal's
folder), ``output`` blocks are what the page says a command prints. So when the page changes, this test
runs the new page.

The work folder holds a copy of this checkout's files (``git ls-files``: what a clone has) as
``django-duo-oidc/``; ``pip install ../django-duo-oidc`` in the page then builds from it into a fresh
virtualenv (PyPI is needed for Django and the other dependencies). The only change to the page is the
ports: 8000 and 8900 become TUTORIAL_SITE_PORT and TUTORIAL_OP_PORT (this helper's range by default).
Then a real browser logs in as alice and bob, the API is called with tokens from the provider, and
the page's own tests (run by its ``pytest`` block) must have passed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote_plus

import pytest
import requests

from tests.docblocks import Block, labelled_blocks

from .conftest import ROOT, SECRET, Site, wait_http
from .test_bearer_real_provider import user_token
from .test_browser import browser, consent_if_asked, page, provider_login, shot  # noqa: F401 - fixtures

TUTORIAL = ROOT / "docs" / "tutorial.md"
SITE_PORT = int(os.environ.get("TUTORIAL_SITE_PORT", "18623"))
OP_PORT = int(os.environ.get("TUTORIAL_OP_PORT", "18624"))
# What the environment of the newcomer's terminal keeps from ours: where things are, and how pip and npm
# reach their registries. Nothing of this test run (DJANGO_SETTINGS_MODULE, the venv, PYTHONPATH).
KEEP = re.compile(r"^(HOME|LANG|LC_\w+|TMPDIR|TERM|USER|PIP_\w+|NPM_CONFIG_\w+|npm_config_\w+|"
                  r"(HTTP|HTTPS|NO)_PROXY|(http|https|no)_proxy|SSL_CERT_\w+|REQUESTS_CA_BUNDLE)$")  # fmt: skip
AUTH = (quote_plus("django-basic"), quote_plus(SECRET))


def localize(text: str) -> str:
    """The page's ports, moved to this test's."""
    return text.replace("127.0.0.1:8000", f"127.0.0.1:{SITE_PORT}").replace("127.0.0.1:8900", f"127.0.0.1:{OP_PORT}")


@dataclass
class Terminal:
    """A shell the way the page's reader has one: a folder and exported variables, kept between blocks."""

    cwd: Path
    env: dict[str, str]
    state: Path

    def run(self, script: str, log: Path) -> subprocess.CompletedProcess[str]:
        """Type ``script`` (set -e: the first failing command stops it); keep the folder and the variables."""
        wrapped = f'set -e\n{script}\npwd > "{self.state}/cwd"\nenv -0 > "{self.state}/env"\n'
        done = subprocess.run(
            ["bash", "-c", wrapped], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=900
        )
        log.write_text(f"$ {script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
        if done.returncode == 0:
            self.cwd = Path((self.state / "cwd").read_text().strip())
            pairs = (item.split("=", 1) for item in (self.state / "env").read_text().split("\0") if "=" in item)
            self.env = dict(pairs)
        return done

    def serve(self, script: str, log: IO[str]) -> subprocess.Popen[str]:
        """Start ``script`` in its own process group (stopped by its id at the end)."""
        return subprocess.Popen(
            ["bash", "-c", f"set -e\n{script}"], cwd=self.cwd, env=self.env, stdout=log,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip


@dataclass
class Tutorial:
    site: Site
    blocks: dict[str, Block]
    work: Path
    ran: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)


def copy_checkout(target: Path) -> None:
    """The files a clone of this checkout has (tracked, plus new files not ignored), copied to ``target``."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def newcomer_env(bin_dir: Path) -> dict[str, str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: run `python scripts/dev.py test` (the README's command).")
    path = os.pathsep.join([str(bin_dir), str(Path(node).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    return {
        **{k: v for k, v in os.environ.items() if KEEP.match(k)},
        "PATH": path,
        "OP_PORT": str(OP_PORT),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # the group this test started (runserver's reloader child too)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tutorial]:
    blocks = labelled_blocks(TUTORIAL, "tutorial")
    work = tmp_path_factory.mktemp("tutorial-work")
    logs = tmp_path_factory.mktemp("tutorial-logs")
    copy_checkout(work / "django-duo-oidc")
    bin_dir = tmp_path_factory.mktemp("tutorial-bin")
    real_python = os.path.realpath(sys.executable)  # a plain interpreter, as on a newcomer's machine
    for name in ("python", "python3"):
        (bin_dir / name).symlink_to(real_python)
    state = tmp_path_factory.mktemp("tutorial-terminal")
    fresh = Terminal(work, newcomer_env(bin_dir), state)
    terminal = Terminal(fresh.cwd, dict(fresh.env), state)
    servers: list[subprocess.Popen[str]] = []
    result = Tutorial(Site(f"http://127.0.0.1:{SITE_PORT}", f"http://127.0.0.1:{OP_PORT}", {}), blocks, work)
    try:
        for label, block in blocks.items():
            text = localize(block.text)
            if block.action == "run":
                log = logs / f"run-{label}.log"
                result.ran[label] = done = terminal.run(text, log)
                result.logs[label] = log
                assert done.returncode == 0, f"the block {label!r} failed:\n{log.read_text()[-6000:]}"
            elif block.action == "serve":
                log_path = logs / f"serve-{label}.log"
                result.logs[label] = log_path
                servers.append(terminal.serve(text, open(log_path, "w")))  # noqa: SIM115 - closed with the process
                # It keeps its terminal: the page goes on in a new one, in the work folder.
                ready = {"provider": result.site.issuer + "/.well-known/openid-configuration"}
                wait_http(ready.get(label, result.site.base + "/"), timeout=120)
                assert servers[-1].poll() is None, f"{label} stopped:\n{log_path.read_text()[-4000:]}"
                terminal = Terminal(fresh.cwd, dict(fresh.env), state)
            elif block.action in ("write", "append"):
                target = terminal.cwd / label
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "a" if block.action == "append" else "w") as file:
                    file.write(("\n" if block.action == "append" else "") + text)
            else:
                assert block.action == "output", f"{label}: unknown action {block.action!r}"
        yield result
    finally:
        for server in reversed(servers):
            stop(server)


def test_the_page_is_complete_and_its_ports_are_the_ones_moved() -> None:
    blocks = labelled_blocks(TUTORIAL, "tutorial")
    actions = [block.action for block in blocks.values()]
    assert actions.count("serve") == 2 and {"run", "write", "append", "output"} <= set(actions)
    # Every address in a block this test runs is one it moves to its own ports (prose may name others).
    ports = {port for block in blocks.values() for port in re.findall(r"127\.0\.0\.1:(\d+)", block.text)}
    assert ports == {"8000", "8900"}


def test_the_provider_printed_what_the_page_shows(tutorial: Tutorial) -> None:
    printed = tutorial.logs["provider"].read_text()
    for line in localize(tutorial.blocks["provider-prints"].text).splitlines():
        if line.strip():
            assert line.rstrip() in printed


def test_alice_reads_the_contacts_logs_out_and_bob_is_refused(tutorial: Tutorial, page: Any) -> None:  # noqa: F811
    site = tutorial.site
    page.goto(site.base + "/contacts/")
    assert page.url.startswith(site.issuer)  # sent to log in, then to the provider
    provider_login(page, "alice")
    consent_if_asked(page, site, "tutorial-01-consent")
    page.wait_for_url(site.base + "/contacts/")
    assert page.inner_text("body").strip() == "Contacts for alice@example.test: Ada Lovelace, Grace Hopper"
    shot(page, "tutorial-02-contacts-alice")

    page.goto(site.base + "/")
    assert "Signed in as alice@example.test." in page.inner_text("body")
    page.click("text=Log out")
    page.wait_for_url(site.issuer + "/**")
    shot(page, "tutorial-03-provider-logout")
    page.click("text=Yes, sign me out")
    page.wait_for_url(site.base + "/")
    assert page.locator("text=Log in").count() == 1

    # What the provider grants bob (the page says: not crm.contacts.read), asked of the provider itself.
    token = user_token(site, "bob", "openid crm.contacts.read")
    granted = requests.post(site.issuer + "/token/introspection", data={"token": token}, auth=AUTH, timeout=5)
    bob_has_it = "crm.contacts.read" in granted.json()["scope"].split()
    response = page.goto(site.base + "/contacts/")
    assert page.url.startswith(site.issuer)  # logged out at the provider too: it asks who this is
    provider_login(page, "bob")
    consent_if_asked(page, site, "tutorial-04-consent-bob")
    page.wait_for_url(site.base + "/contacts/")
    response = page.reload()
    body = page.inner_text("body")
    if bob_has_it:  # the provider of this branch still grants bob the scope: the site follows the provider
        assert response.status == 200 and body.strip().startswith("Contacts for bob@example.test:")
    else:  # as the page says
        assert response.status == 403
        assert "crm.contacts.read" in body
    shot(page, "tutorial-05-contacts-bob")


def test_the_api_answers_401_403_200_as_the_page_says(tutorial: Tutorial) -> None:
    site, api = tutorial.site, tutorial.site.base + "/api/contacts/"

    def client_token(scope: str) -> str:
        answer = requests.post(
            site.issuer + "/token", data={"grant_type": "client_credentials", "scope": scope}, auth=AUTH, timeout=5
        )
        return str(answer.json()["access_token"])

    bare = requests.get(api, timeout=5)
    assert bare.status_code == 401 and bare.headers["WWW-Authenticate"].startswith("Bearer realm=")
    weak = requests.get(api, headers={"Authorization": f"Bearer {client_token('email')}"}, timeout=5)
    assert weak.status_code == 403 and 'error="insufficient_scope"' in weak.headers["WWW-Authenticate"]
    forged = requests.get(api, headers={"Authorization": f"Bearer {client_token('email')}x"}, timeout=5)
    assert forged.status_code == 401 and 'error="invalid_token"' in forged.headers["WWW-Authenticate"]
    good = requests.get(api, headers={"Authorization": f"Bearer {client_token('crm.contacts.read')}"}, timeout=5)
    assert good.status_code == 200 and good.json()["caller"] == "django-basic"

    # The page's own curl calls: 401, then 200 with exactly the body it shows.
    printed = tutorial.ran["api"].stdout
    assert re.search(r"^HTTP/1\.1 401 Unauthorized", printed, re.M), printed
    assert re.search(r"^HTTP/1\.1 200 OK", printed, re.M), printed
    assert printed.rstrip().endswith(tutorial.blocks["api-prints"].text.strip()), printed


def test_the_pages_own_tests_pass_with_the_kit(tutorial: Tutorial) -> None:
    done = tutorial.ran["tests"]
    assert done.returncode == 0
    assert re.search(r"\b5 passed\b", done.stdout), done.stdout[-3000:]


def test_the_server_log_redacts_the_callback(tutorial: Tutorial) -> None:
    log = tutorial.logs["runserver"].read_text()
    callbacks = re.findall(r"GET /oidc/callback/\?\S+", log)
    assert callbacks, log[-3000:]
    for line in callbacks:
        values = re.findall(r"\b(code|state)=([^&\s\"]+)", line)
        assert values and all(value == "[redacted]" for _, value in values), line
    assert SECRET not in log


# `dev.py provider` itself, with the real provider: stopped by a signal to the script, and a port taken
# between the script's check and node's start still told in one line (no Node stack trace).


def load_dev() -> Any:
    from tests.integration.test_dev_ports import load_dev as load

    return load()


def test_stopping_dev_provider_stops_the_provider(tmp_path: Path) -> None:
    port = int(os.environ.get("TUTORIAL_OP_PORT_2", "18625"))
    env = {**os.environ, "OP_PORT": str(port)}
    script = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "dev.py"), "provider", "--site", "http://127.0.0.1:18626"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    banner = ""
    try:
        assert script.stdout is not None
        for line in script.stdout:
            banner += line
            if line.startswith("Stop it with Ctrl-C"):
                break
        assert f"Issuer            http://127.0.0.1:{port}" in banner, banner
        assert "http://127.0.0.1:18626/oidc/callback/" in banner
        wait_http(f"http://127.0.0.1:{port}/.well-known/openid-configuration")
        script.terminate()  # SIGTERM to the script only: it stops node, by its id
        script.wait(timeout=15)
        dev = load_dev()
        assert not dev.port_in_use(port), "node outlived dev.py provider"
    finally:
        if script.poll() is None:
            script.kill()
            script.wait(timeout=10)
        node = re.search(r"oidc-provider [\d.]+, pid (\d+)\)", banner)
        cmdline = Path(f"/proc/{node.group(1)}/cmdline") if node else None
        if node and cmdline and cmdline.exists() and b"provider.mjs" in cmdline.read_bytes():
            os.kill(int(node.group(1)), signal.SIGTERM)  # left behind by a broken script


def test_a_port_taken_after_the_check_is_told_in_one_line() -> None:
    import socket

    dev = load_dev()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        env = {**os.environ, "OP_PORT": str(port), "OP_RP_BASE_URLS": "http://127.0.0.1:18627"}
        with pytest.raises(SystemExit) as stopped, dev.local_provider(env):
            pytest.fail("the provider cannot have started on a port in use")
    assert str(stopped.value) == f"[dev] port {port} (OP_PORT) is in use; set OP_PORT to a free port and run again."
