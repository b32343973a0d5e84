"""Fixtures for the fake Duo Admin API server (tests/fakeduo/admin_api.py): see its module docstring.

- ``fake_duo_admin_server`` (session): one server process on a free loopback port, HTTPS with a throwaway
  CA (``tests/fakeduo/tls.py``), random credentials;
- ``fake_duo_admin`` (function): the same server, reset (empty, no faults, zero statistics), as a
  ``FakeDuoAdmin`` controller: ``.api_host`` (``"127.0.0.1:PORT"``), ``.host``, ``.port``, ``.ikey``,
  ``.skey``, ``.ca_path`` (str), ``.set_state(users=, groups=)``, ``.patch_user(user_id, **fields)``,
  ``.delete_user(user_id)``, ``.faults(**kw)``, ``.stats()``, ``.reset()``, ``.admin_client()``.

Builders for the state, with ids derived from names so a test can predict them: ``duo_user(...)``,
``duo_group(name)``, ``duo_user_id(username)``, ``duo_group_id(name)``.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import select
import signal
import ssl
import string
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.fakeduo import admin_api
from tests.fakeduo.tls import make_pki

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0

__all__ = [
    "FakeDuoAdmin",
    "duo_group",
    "duo_group_id",
    "duo_user",
    "duo_user_id",
    "fake_duo_admin",
    "fake_duo_admin_server",
    "start_server",
]


def pytest_configure(config: pytest.Config) -> None:
    # duo_client 5.7's https_wrapper builds ssl.SSLContext(ssl.PROTOCOL_TLS), deprecated since Python 3.10; the
    # suite turns DeprecationWarning into errors, so every duo_client call would fail. Only that message, and
    # only from duo_client's module, is ignored.
    config.addinivalue_line(
        "filterwarnings", "ignore:ssl.PROTOCOL_TLS is deprecated:DeprecationWarning:duo_client.https_wrapper"
    )


def duo_user_id(username: str) -> str:
    """The ``user_id`` ``duo_user(username)`` gets."""
    return admin_api.duo_id("DU", username)


def duo_group_id(name: str) -> str:
    """The ``group_id`` ``duo_group(name)`` gets."""
    return admin_api.duo_id("DG", name)


def duo_group(name: str, group_id: str | None = None) -> dict[str, Any]:
    """A Duo group object (``group_id`` from the name unless given)."""
    return admin_api.group_object(name, group_id)


def duo_user(
    username: str,
    *,
    email: str | None = None,
    status: str = "active",
    groups: Iterable[str | dict[str, Any]] = (),
    phones: int = 1,
    tokens: int = 0,
    webauthn: int = 0,
    desktop: int = 0,
    is_enrolled: bool = True,
    last_login: int | None = None,
    user_id: str | None = None,
    realname: str | None = None,
) -> dict[str, Any]:
    """A Duo user object as the Admin API returns it, groups and devices embedded.

    ``groups`` are names (made into ``duo_group(name)``) or group objects; ``phones``, ``tokens``,
    ``webauthn`` and ``desktop`` are counts of devices. ``email=None`` means ``<username>@example.test``;
    ``""`` is a user without an email. ``status`` is ``active``, ``bypass``, ``disabled`` or ``locked out``.
    """
    return admin_api.user_object(
        username,
        email=email,
        status=status,
        groups=[duo_group(g) if isinstance(g, str) else dict(g) for g in groups],
        phones=phones,
        tokens=tokens,
        webauthn=webauthn,
        desktop=desktop,
        is_enrolled=is_enrolled,
        last_login=last_login,
        user_id=user_id,
        realname=realname,
    )


_DEVICE_BUILDERS = {
    "phones": ("phones", admin_api.phone_objects),
    "tokens": ("tokens", admin_api.token_objects),
    "webauthn": ("webauthncredentials", admin_api.webauthn_objects),
    "webauthncredentials": ("webauthncredentials", admin_api.webauthn_objects),
    "desktop": ("desktoptokens", admin_api.desktop_objects),
    "desktoptokens": ("desktoptokens", admin_api.desktop_objects),
}


@dataclass
class FakeDuoAdmin:
    """A handle on the running fake: its address, credentials and test-control calls."""

    host: str
    port: int
    ikey: str
    skey: str
    ca_path: str
    _context: ssl.SSLContext = field(repr=False)

    @property
    def api_host(self) -> str:
        """``"127.0.0.1:PORT"``: what an administrator would type as the API hostname."""
        return f"{self.host}:{self.port}"

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        conn = http.client.HTTPSConnection(self.host, self.port, context=self._context, timeout=30)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise AssertionError(f"fake Duo Admin API control {method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data)

    def set_state(
        self, users: Iterable[dict[str, Any]] = (), groups: Iterable[dict[str, Any] | str] = ()
    ) -> dict[str, int]:
        """Replace every user and group (groups a user embeds are added to the group list)."""
        group_list = [duo_group(g) if isinstance(g, str) else g for g in groups]
        return self._call("POST", "/__test__/state", {"users": list(users), "groups": group_list})

    def state(self) -> dict[str, list[dict[str, Any]]]:
        """Every user and group the fake holds."""
        return self._call("GET", "/__test__/state")

    def patch_user(self, user_id: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into a user. ``groups`` may be names; device fields may be counts."""
        if "groups" in fields:
            fields["groups"] = [duo_group(g) if isinstance(g, str) else g for g in fields["groups"]]
        username = None
        for key in list(fields):
            if key in _DEVICE_BUILDERS and isinstance(fields[key], int):
                if username is None:
                    username = next(u["username"] for u in self.state()["users"] if u["user_id"] == user_id)
                target, build = _DEVICE_BUILDERS[key]
                fields[target] = build(username, fields.pop(key))
        return self._call("PATCH", f"/__test__/users/{quote(user_id, safe='')}", fields)

    def delete_user(self, user_id: str) -> None:
        """Remove a user, as deleting them in Duo does."""
        self._call("DELETE", f"/__test__/users/{quote(user_id, safe='')}")

    def faults(self, **faults: Any) -> dict[str, Any]:
        """Set faults (``rate_limit``, ``fail_at_offset``, ``fail_mode``, ``sticky``, ``down``, ``delay``,
        ``page_limit``, ``delete_during_listing``, ``next_offset_loop``: see admin_api's docstring); returns
        all current faults."""
        return self._call("POST", "/__test__/faults", faults)

    def stats(self) -> dict[str, Any]:
        """Request counts since the last reset (see the server's module docstring)."""
        return self._call("GET", "/__test__/stats")

    def reset(self) -> None:
        """Back to an empty fake: no users, no faults, zero statistics."""
        self._call("POST", "/__test__/reset")

    def admin_client(self, **kwargs: Any) -> Any:
        """A real ``duo_client.Admin`` pointed at the fake (keyword arguments override the defaults)."""
        import duo_client

        options: dict[str, Any] = {
            "ikey": self.ikey,
            "skey": self.skey,
            "host": self.host,
            "port": self.port,
            "ca_certs": self.ca_path,
            "timeout": 10,
        }
        options.update(kwargs)
        return duo_client.Admin(**options)


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass
class _Process:
    process: subprocess.Popen[str]
    controller: FakeDuoAdmin
    log_path: Path


def start_server(directory: Path, *extra_args: str) -> _Process:
    """Start ``python -m tests.fakeduo.admin_api`` on a free port; wait for its READY line."""
    pki = make_pki(directory / "pki")
    ikey = "DI" + _random(string.ascii_uppercase + string.digits, 18)
    skey = _random(string.ascii_letters + string.digits, 40)
    env = {**os.environ, "FAKE_DUO_IKEY": ikey, "FAKE_DUO_SKEY": skey, "PYTHONUNBUFFERED": "1"}
    log_path = directory / "fake-duo-admin.log"
    command = [sys.executable, "-m", "tests.fakeduo.admin_api", "--port", "0"]
    command += ["--cert", str(pki.cert_path), "--key", str(pki.key_path), *extra_args]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    line = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline()
            if line.startswith("READY ") or not line:
                break
        if process.poll() is not None:
            break
    if not line.startswith("READY https://127.0.0.1:"):
        process.kill()
        process.wait(5)
        raise RuntimeError(f"fake Duo Admin API did not start: {line!r}; log: {log_path.read_text()[-2000:]}")
    port = int(line.strip().rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(pki.ca_path))
    controller = FakeDuoAdmin("127.0.0.1", port, ikey, skey, str(pki.ca_path), context)
    return _Process(process, controller, log_path)


def stop_server(server: _Process) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within five seconds."""
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(5)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(5)
    if server.process.stdout:
        server.process.stdout.close()


@pytest.fixture(scope="session")
def fake_duo_admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeDuoAdmin]:
    """The fake Admin API process for the whole test session (started on first use)."""
    server = start_server(tmp_path_factory.mktemp("fake-duo-admin"))
    try:
        yield server.controller
    finally:
        stop_server(server)


@pytest.fixture
def fake_duo_admin(fake_duo_admin_server: FakeDuoAdmin) -> FakeDuoAdmin:
    """The fake Admin API, reset for this test: no users, no groups, no faults, zero statistics."""
    fake_duo_admin_server.reset()
    return fake_duo_admin_server
