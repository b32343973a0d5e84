"""scripts/dev.py checks its ports and its inputs before it starts anything (issue 15: a busy port gave
a Node stack trace), and says what Node.js the local provider needs.

No node is needed here: a port held busy by the test stops `dev.py provider` and `dev.py example`
before any set-up (the virtualenv and the interpreter are pointed at nothing, so a broken check fails
fast instead of installing), and a fake ``node`` stands in for the version check.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "scripts" / "dev.py"


def load_dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("duo_oidc_dev_script", DEV)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dev = load_dev()


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something listens on (this test)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` different free ports (all held at once while they are picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_dev(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run scripts/dev.py as a user would, with set-up pointed at nothing: a check that lets it through
    fails at once (no virtualenv is made, no package installed, nothing started for long)."""
    safe = {
        **os.environ,
        "DUO_OIDC_VENV": str(tmp_path / "no-venv"),
        "DUO_OIDC_PYTHON": "/bin/false",
        "PATH": str(tmp_path / "no-bin"),  # no node, no npm: the provider cannot start either
        **env,
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(DEV), *args], cwd=ROOT, env=safe, capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - started < 30
    return done


def test_a_busy_port_is_named_with_the_variable_that_moves_it(busy_port: int) -> None:
    (problem,) = dev.port_problems({"OP_PORT": busy_port}, "provider")
    assert problem.startswith(f"port {busy_port} (OP_PORT) is in use; set OP_PORT to a free port, e.g. OP_PORT=")
    suggested = int(problem.rsplit("OP_PORT=", 1)[1].split()[0])
    assert suggested != busy_port and not dev.port_in_use(suggested)
    assert problem.endswith(" python scripts/dev.py provider")


def test_free_ports_pass_and_one_port_for_two_variables_does_not() -> None:
    one, two = free_ports(2)
    assert dev.port_problems({"EXAMPLE_PORT": one, "OP_PORT": two}, "example") == []
    assert dev.port_problems({"EXAMPLE_PORT": one, "OP_PORT": one}, "example") == [
        f"OP_PORT and EXAMPLE_PORT are both {one}: give each its own port."
    ]


def test_a_port_in_time_wait_is_not_busy() -> None:
    # A connection closed by the server side leaves the server's port in TIME_WAIT; node and runserver
    # bind it again (SO_REUSEADDR), so the check must not refuse it.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as node and runserver do
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = int(server.getsockname()[1])
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its side goes to TIME_WAIT
        client.close()
    assert dev.port_in_use(port) is False


def test_dev_provider_with_a_busy_op_port_says_so_and_starts_nothing(tmp_path: Path, busy_port: int) -> None:
    done = run_dev(tmp_path, "provider", "--site", "http://127.0.0.1:8000", OP_PORT=str(busy_port))
    assert done.returncode == 1
    assert f"[dev] port {busy_port} (OP_PORT) is in use; set OP_PORT to a free port, e.g. OP_PORT=" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "npm" not in done.stderr + done.stdout  # checked before any set-up


@pytest.mark.parametrize("name", ["EXAMPLE_PORT", "OP_PORT", "DUO_ADMIN_PORT", "DUO_MFA_PORT"])
def test_dev_example_checks_its_four_ports_before_anything(tmp_path: Path, busy_port: int, name: str) -> None:
    names = ("EXAMPLE_PORT", "OP_PORT", "DUO_ADMIN_PORT", "DUO_MFA_PORT")
    ports = {n: str(port) for n, port in zip(names, free_ports(4), strict=True)}
    ports[name] = str(busy_port)
    done = run_dev(tmp_path, "example", **ports)
    assert done.returncode == 1
    assert done.stderr.startswith(f"[dev] port {busy_port} ({name}) is in use; set {name} to a free port")
    assert "Traceback" not in done.stderr and "creating virtualenv" not in done.stdout
    assert not (tmp_path / "no-venv").exists()


def test_a_port_that_is_not_a_number_is_refused_in_one_line(tmp_path: Path) -> None:
    for value in ("abc", "0", "70000", "-1"):
        done = run_dev(tmp_path, "provider", OP_PORT=value)
        assert done.returncode == 1
        assert done.stderr == f"[dev] OP_PORT={value!r} is not a port number (1-65535).\n"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "http://localhost:8000/",
        "https://my.example.test",
        "http://127.0.0.1:8000/prefix",
    ],
)
def test_a_site_base_url(url: str) -> None:
    assert dev.site_base(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:8000",  # no scheme
        "ftp://127.0.0.1",
        "http://",
        "http://127.0.0.1:8000,http://evil.test",  # would register a second site: OP_RP_BASE_URLS is a list
        "http://127.0.0.1:8000/?next=x",
        "http://127.0.0.1:8000/#x",
        "http://user:pw@127.0.0.1:8000",
        "http://127.0.0.1:80 00",
        "http://127.0.0.1:8000/\nREADY",
        "http://127.0.0.1:99999",
        " http://127.0.0.1:8000",
    ],
)
def test_what_is_not_a_site_base_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        dev.site_base(url)


def test_dev_provider_refuses_a_bad_site_before_anything(tmp_path: Path) -> None:
    done = run_dev(
        tmp_path, "provider", "--site", "http://127.0.0.1:8000,http://evil.test", OP_PORT=str(free_ports(1)[0])
    )
    assert done.returncode == 2
    assert "a base URL has no user, query, fragment, comma or spaces" in done.stderr
    assert "Traceback" not in done.stderr


def fake_node(tmp_path: Path, version: str) -> Path:
    bin_dir = tmp_path / f"bin-{version}"
    bin_dir.mkdir()
    node = bin_dir / "node"
    node.write_text(f"#!/bin/sh\necho {version}\n")
    node.chmod(0o755)
    return bin_dir


def test_node_below_20_is_refused_and_20_gets_a_truthful_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    check = dev.ensure_node.__wrapped__  # the version check, without the once-per-run cache
    monkeypatch.setenv("PATH", str(fake_node(tmp_path, "v18.20.0")))
    with pytest.raises(SystemExit) as exc:
        check()
    assert str(exc.value) == (
        "[dev] Node.js v18.20.0 is too old for the local OpenID provider: install Node.js 22 LTS or later."
    )
    monkeypatch.setenv("PATH", str(fake_node(tmp_path, "v20.20.2")))
    assert check().endswith("/node")
    note = capsys.readouterr().out
    assert f"oidc-provider {dev.provider_version()} supports Node.js 22 LTS and later" in note
    monkeypatch.setenv("PATH", str(fake_node(tmp_path, "v22.12.0")))
    check()
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(SystemExit, match=r"Node\.js 22 LTS"):
        check()


def test_the_node_versions_said_agree_with_the_pinned_provider() -> None:
    # README's "Two commands" and the provider's own runtime check must say the same thing.
    installed = ROOT / "tests" / "provider" / "node_modules" / "oidc-provider"
    readme = (ROOT / "README.md").read_text()
    assert f"Node.js {dev.NODE_SUPPORTED} LTS" in readme
    assert dev.provider_version() in readme
    if installed.exists():  # after npm ci: the installed provider is the pinned one and wants 22
        assert f'"version": "{dev.provider_version()}"' in (installed / "package.json").read_text()
        assert f"Node.js v{dev.NODE_SUPPORTED}.x LTS" in (installed / "lib" / "index.js").read_text()
