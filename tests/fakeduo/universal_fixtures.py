"""Fixtures for the fake Duo Web SDK v4 server (tests/fakeduo/universal.py): see its module docstring.

- ``fake_duo_universal_server`` (session): the server process on a free loopback port, over HTTPS with a
  throwaway CA (``tests/fakeduo/tls.py``); stopped by PID at the end of the session.
- ``fake_duo_universal`` (function): that server, reset (no faults, counts at zero), as a
  :class:`UniversalController`: ``.api_host`` ("127.0.0.1:PORT", what ``duo_universal.Client(host=)``
  takes), ``.client_id``, ``.client_secret``, ``.ca_path`` (for ``duo_certs=``), ``.faults(**kw)``,
  ``.stats()``, ``.reset()``, ``.approve(authorize_url)`` / ``.deny(authorize_url)`` (drive the prompt
  page as a person would; return the callback URL with ``state`` and ``duo_code``).

``.other_app_client_id`` is a well-formed client id the fake does not know: it stands for the credentials of
another Duo application type, answered with ``unauthorized_request`` everywhere.

Write ``fake_duo_universal.faults(decision="allow")`` for tests without a browser: the authorize URL then
redirects straight to the callback (``.approve()`` works either way).
"""

from __future__ import annotations

import os
import secrets
import signal
import string
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from tests.fakeduo.tls import make_pki

ROOT = Path(__file__).resolve().parents[2]
_ALPHABET = string.ascii_uppercase + string.digits


def _random(length: int, alphabet: str = _ALPHABET) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass
class UniversalServer:
    process: subprocess.Popen[str]
    base_url: str  # https://127.0.0.1:PORT
    client_id: str
    client_secret: str
    ca_path: str
    log_path: Path


class UniversalController:
    """Drive the fake Duo Universal Prompt server from a test."""

    def __init__(self, server: UniversalServer) -> None:
        self._server = server
        self.base_url = server.base_url
        self.api_host = server.base_url.removeprefix("https://")
        self.client_id = server.client_id
        self.client_secret = server.client_secret
        self.ca_path = server.ca_path
        # Well formed (20 characters, as the SDK demands) but not a Web SDK application of this fake.
        self.other_app_client_id = "DI" + _random(18)
        self.other_app_client_secret = _random(40, string.ascii_letters + string.digits)
        self.http = requests.Session()
        # Not the environment's CA bundle or proxies (REQUESTS_CA_BUNDLE would override a session's verify).
        self.http.trust_env = False
        self.http.verify = server.ca_path

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, self.base_url + path, json=body, timeout=10)
        if response.status_code != 200:
            raise AssertionError(f"fake Duo {method} {path}: {response.status_code} {response.text}")
        return response.json()

    def faults(self, **changes: Any) -> dict[str, Any]:
        """Set faults (see tests/fakeduo/universal.py): down, delay, decision ("allow"|"deny"|None),
        wrong_username, factor, health ("ok"|"fail"), broken, claims ({name: value or None}), bad_signature."""
        return self._control("POST", "/__test__/faults", changes)  # type: ignore[no-any-return]

    def stats(self) -> dict[str, int]:
        return self._control("GET", "/__test__/stats")  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._control("POST", "/__test__/reset", {})

    def prompt(self, authorize_url: str) -> requests.Response:
        """Open an authorize URL as the browser would: the prompt page, or the early redirect of a decision
        fault, or the fake's error answer."""
        response = self.http.get(authorize_url, allow_redirects=False, timeout=30)
        if response.status_code == 302 and "/frame/v4/prompt/" in response.headers["Location"]:
            response = self.http.get(urljoin(authorize_url, response.headers["Location"]), timeout=30)
        return response

    def _decide(self, authorize_url: str, decision: str) -> str:
        response = self.prompt(authorize_url)
        if response.status_code == 302:  # a decision fault: already redirected to the callback
            return str(response.headers["Location"])
        if response.status_code != 200 or 'name="decision"' not in response.text:
            raise AssertionError(f"no Duo prompt at {authorize_url}: {response.status_code} {response.text[:300]}")
        answer = self.http.post(response.url, data={"decision": decision}, allow_redirects=False, timeout=30)
        if answer.status_code != 302:
            raise AssertionError(f"the prompt did not redirect: {answer.status_code} {answer.text[:300]}")
        return str(answer.headers["Location"])

    def approve(self, authorize_url: str) -> str:
        """Press "Approve" on the prompt for ``authorize_url``; return the callback URL (state, duo_code)."""
        return self._decide(authorize_url, "allow")

    def deny(self, authorize_url: str) -> str:
        """Press "Deny" on the prompt for ``authorize_url``; return the callback URL (state, duo_code)."""
        return self._decide(authorize_url, "deny")


def start_universal_server(directory: Path, port: int = 0) -> UniversalServer:
    """Start the fake (``port=0``: a free port) with fresh credentials and a fresh CA in ``directory``."""
    pki = make_pki(directory)
    client_id = "DI" + _random(18)
    client_secret = _random(40, string.ascii_letters + string.digits)
    env = {**os.environ, "FAKE_DUO_CLIENT_ID": client_id, "FAKE_DUO_CLIENT_SECRET": client_secret}
    log_path = directory / "fake-duo-universal.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakeduo.universal", "--port", str(port),
             "--cert", str(pki.cert_path), "--key", str(pki.key_path)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith("READY "):
        process.kill()
        process.wait(timeout=10)
        raise RuntimeError(f"the fake Duo Universal server did not start: {line!r}; see {log_path}")
    return UniversalServer(process, line.split()[1], client_id, client_secret, str(pki.ca_path), log_path)


def stop_universal_server(server: UniversalServer) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


@pytest.fixture(scope="session")
def fake_duo_universal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UniversalServer]:
    server = start_universal_server(tmp_path_factory.mktemp("fake-duo-universal"))
    try:
        yield server
    finally:
        stop_universal_server(server)


@pytest.fixture
def fake_duo_universal(fake_duo_universal_server: UniversalServer) -> Iterator[UniversalController]:
    controller = UniversalController(fake_duo_universal_server)
    controller.reset()
    yield controller
    controller.reset()
    controller.http.close()
