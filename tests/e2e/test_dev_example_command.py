"""The README's first command, ``python scripts/dev.py example``, run as a newcomer runs it: three times in
one clone, stopped each time another way: ``kill <pid>`` (SIGTERM to the script), Ctrl-C (SIGINT to the
terminal's foreground process group) and a closed terminal (SIGHUP to the process group).

Each run must serve the example site (``/`` answers, ``/contacts/`` sends an anonymous visitor to the
login) and the local provider's discovery, all four servers on 127.0.0.1 only; each stop must leave
nothing behind within a bounded time: every port free, no process of the script's session or of
runserver's (its reloader's child too), the fakes' throwaway CAs removed, exit status 0. The second and
third runs find the first run's database (its second-factor row names a variable only the new fake
sets): they must come up all the same (51784c9 fixed both by hand; this pins them).

And ``nohup python scripts/dev.py provider``: the hang-up it was started to ignore stays ignored.

The clone is a copy of this checkout's files (``git ls-files``, as test_tutorial.py makes it), so the
checkout's own example database is untouched. Nothing is installed: the script's virtualenv is a folder
whose ``bin/python`` runs the interpreter of this test run (and refuses ``pip``), stamped as installed;
``tests/provider/node_modules`` is a link to this checkout's (an ``npm`` first on PATH refuses to run).
Ports: DEV_EXAMPLE_TEST_PORT and the four after it (18900-18904 by default). Linux: processes, signal
dispositions and listening sockets are read from /proc.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from .conftest import ROOT
from .test_example_newcomer import dev_script
from .test_tutorial import copy_checkout

FIRST_PORT = int(os.environ.get("DEV_EXAMPLE_TEST_PORT", "18900"))
PORTS = {
    "EXAMPLE_PORT": FIRST_PORT,
    "OP_PORT": FIRST_PORT + 1,
    "DUO_ADMIN_PORT": FIRST_PORT + 2,
    "DUO_MFA_PORT": FIRST_PORT + 3,
}
SITE = f"http://127.0.0.1:{PORTS['EXAMPLE_PORT']}"
ISSUER = f"http://127.0.0.1:{PORTS['OP_PORT']}"
# Generous: the first run migrates and seeds a new database on a loaded 2-core CI machine.
START_TIMEOUT = 240.0
# Every child is stopped by the script itself; 10 s is the longest it waits for one of them.
STOP_TIMEOUT = 30.0


dev = dev_script()  # this checkout's scripts/dev.py: its port check and its set-up stamp


@dataclass(frozen=True)
class Proc:
    """One process as /proc/<pid>/stat tells it."""

    pid: int
    ppid: int
    session: int
    state: str
    started: int  # clock ticks after boot: with the pid, names the process even once the pid is reused

    def describe(self) -> str:
        try:
            argv = (Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0"))[:6]
        except OSError:
            argv = []
        command = " ".join(shlex.quote(a.decode(errors="replace")) for a in argv if a)
        return f"pid {self.pid} (session {self.session}): {command}"


def processes() -> dict[int, Proc]:
    """Every process of this machine (its Linux /proc), but zombies."""
    found: dict[int, Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended while we looked
        fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and brackets
        state, ppid, session, started = fields[0], int(fields[1]), int(fields[3]), int(fields[19])
        if state != "Z":
            found[int(entry.name)] = Proc(int(entry.name), ppid, session, state, started)
    return found


def loopback_listeners() -> dict[int, set[str]]:
    """For each of PORTS' ports something listens on: the addresses it listens on (IPv4 and IPv6)."""
    listening: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) in PORTS.values():  # 0A: LISTEN
                listening.setdefault(int(port, 16), set()).add(address)
    return listening


@dataclass
class Run:
    """A ``dev.py`` command started by this test in its own session (as a terminal starts a command)."""

    process: subprocess.Popen[bytes]
    log: Path
    seen: dict[tuple[int, int], Proc] = field(default_factory=dict)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def watch(self) -> None:
        """Note the script's process tree as it is now (its children may start their own sessions)."""
        now = processes()
        tree = {self.process.pid}
        grew = True
        while grew:
            children = {p.pid for p in now.values() if p.ppid in tree} - tree
            tree |= children
            grew = bool(children)
        self.seen.update({(pid, now[pid].started): now[pid] for pid in tree if pid in now})

    def left(self) -> list[Proc]:
        """What is still running of what the script started: a process it started (the same pid and start
        time), or any process in a session one of them was in (an orphan re-parented to init included)."""
        sessions = {p.session for p in self.seen.values()} | {self.process.pid}
        return [
            p for p in processes().values() if (p.pid, p.started) in self.seen or p.session in sessions
        ]  # fmt: skip

    def kill_left(self) -> None:
        """SIGKILL, by pid, whatever is left of this run (only when the test already failed)."""
        for proc in self.left():
            with suppress(ProcessLookupError):  # it ended meanwhile
                os.kill(proc.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)


def wait_until_up(run: Run, url: str = SITE + "/") -> None:
    """Poll ``url`` (the site's home page: the script starts runserver last) until it answers 200."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        code = run.process.poll()
        assert code is None, f"dev.py stopped (exit {code}) before {url} answered:\n{run.output()}"
        run.watch()
        try:
            if requests.get(url, timeout=5).status_code == 200:
                run.watch()  # runserver's reloader started its child by now: it serves
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {START_TIMEOUT:.0f}s:\n{run.output()}")


def check_what_a_newcomer_opens() -> None:
    """The home page (with the provider row's login link), the login for /contacts/, the provider."""
    home = requests.get(SITE + "/", timeout=10)
    assert home.status_code == 200 and "Log in with Duo" in home.text
    contacts = requests.get(SITE + "/contacts/", allow_redirects=False, timeout=10)
    assert contacts.status_code == 302, contacts.text[:2000]
    target = urlsplit(contacts.headers["Location"])
    assert target.path == "/oidc/login/" and target.query == "next=/contacts/", contacts.headers["Location"]
    discovery = requests.get(ISSUER + "/.well-known/openid-configuration", timeout=10)
    assert discovery.status_code == 200 and discovery.json()["issuer"] == ISSUER


def check_loopback_only() -> None:
    """All four servers listen, on 127.0.0.1 only: the provider takes any password, the fakes are Duo."""
    assert loopback_listeners() == {port: {"0100007F"} for port in PORTS.values()}


def assert_all_stopped(run: Run, how: str, ports: dict[str, int] = PORTS) -> None:
    """Within STOP_TIMEOUT: the script has exited 0, nothing it started runs, each of ``ports`` is free."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while True:
        busy = [f"{name} {port}" for name, port in ports.items() if dev.port_in_use(port)]
        left = run.left()
        code = run.process.poll()
        if code is not None and not left and not busy:
            break
        if time.monotonic() > deadline:
            running = "".join(f"\n  {p.describe()}" for p in left)
            raise AssertionError(
                f"{STOP_TIMEOUT:.0f}s after {how}: dev.py {'exit ' + str(code) if code is not None else 'running'}, "
                f"ports in use: {', '.join(busy) or 'none'}, still running:{running or ' nothing'}\n{run.output()}"
            )
        time.sleep(0.2)
    assert code == 0, f"dev.py ended with exit {code} after {how}:\n{run.output()}"


def as_a_terminal_starts_it() -> None:
    """In the child before exec: the signals a terminal's foreground command receives with their default
    action, whatever this test inherited. A suite started as a background job of a script (``cmd &``, as a
    CI runner may) runs with SIGINT ignored, and an ignored signal stays ignored across exec: dev.py and
    its Python children would then ignore the Ctrl-C this test sends (seen in CI)."""
    for number in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)


@contextmanager
def dev_command(clone: Path, env: dict[str, str], log: Path, command: list[str] | None = None) -> Iterator[Run]:
    """Start ``command`` (``python scripts/dev.py example``) in ``clone``, its output in ``log``; whatever
    happens, nothing of it is left after."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command or [sys.executable, "scripts/dev.py", "example"], cwd=clone, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=as_a_terminal_starts_it,
        )  # fmt: skip
    run = Run(process, log)
    try:
        yield run
    finally:
        if run.process.poll() is None:
            run.watch()
        run.kill_left()


def interpreter_as_venv(folder: Path) -> Path:
    """A folder that dev.py takes for its installed virtualenv (DUO_OIDC_VENV): ``bin/python`` runs this
    test's interpreter (whose packages run the suite) and refuses pip, ``.installed`` says set-up is done."""
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then\n'
        '  echo "test_dev_example_command: dev.py tried to install packages; it installs nothing here" >&2\n'
        "  exit 3\nfi\n"
        f'exec {shlex.quote(sys.executable)} "$@"\n'
    )
    python.chmod(0o755)
    (folder / ".installed").write_text(dev.python_env_digest())
    return folder


def refusing_npm(folder: Path) -> Path:
    """A ``bin`` folder whose ``npm`` refuses: the provider's packages are this checkout's, installed."""
    folder.mkdir()
    npm = folder / "npm"
    npm.write_text(
        "#!/bin/sh\necho 'test_dev_example_command: dev.py ran npm; run python scripts/dev.py test first "
        "(its npm ci installs the provider)' >&2\nexit 3\n"
    )
    npm.chmod(0o755)
    return folder


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A copy of this checkout as a clone has it, with this checkout's installed provider linked in."""
    installed = ROOT / "tests" / "provider" / "node_modules"
    if not (installed / "oidc-provider").exists():
        pytest.fail("The real provider is not installed: run `python scripts/dev.py test` (it runs npm ci).")
    copy = tmp_path / "django-duo-oidc"
    copy_checkout(copy)
    (copy / "tests" / "provider" / "node_modules").symlink_to(installed.resolve(), target_is_directory=True)
    return copy


def newcomer_env(tmp_path: Path) -> dict[str, str]:
    """This run's environment without its database and cache settings (the example's SQLite file in the
    clone, as a newcomer has it), with this test's ports, interpreter and temporary folder."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
        **{name: str(port) for name, port in PORTS.items()},
        "DUO_OIDC_VENV": str(interpreter_as_venv(tmp_path / "venv")),
        "PATH": f"{refusing_npm(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
        "TMPDIR": str(temporary),
        "PYTHONUNBUFFERED": "1",
    }


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)  # the script only, not its process group


def ctrl_c(pid: int) -> None:
    os.killpg(pid, signal.SIGINT)  # a terminal's Ctrl-C: its foreground process group


def close_terminal(pid: int) -> None:
    os.killpg(pid, signal.SIGHUP)  # a closed terminal (or ssh session): the shell hangs up each job's group


# Each run of the same clone is stopped another way; the first run's database (with its second-factor
# row) is still there for the second and the third.
STOPS = [
    ("kill <pid> (SIGTERM to dev.py)", kill),
    ("Ctrl-C (SIGINT to the process group)", ctrl_c),
    ("closing the terminal (SIGHUP to the process group)", close_terminal),
]


def test_three_runs_in_one_clone_come_up_and_each_stop_leaves_nothing(clone: Path, tmp_path: Path) -> None:
    busy = [f"{name} {port}" for name, port in PORTS.items() if dev.port_in_use(port)]
    assert not busy, f"this test's ports are taken before it starts: {busy} (move them: DEV_EXAMPLE_TEST_PORT)"
    env = newcomer_env(tmp_path)
    for number, (how, stop) in enumerate(STOPS, start=1):
        with dev_command(clone, env, tmp_path / f"run-{number}.log") as run:
            wait_until_up(run)
            check_what_a_newcomer_opens()
            check_loopback_only()
            stop(run.process.pid)
            assert_all_stopped(run, how)
        assert (clone / "example_project" / "db.sqlite3").exists()
        assert list(Path(env["TMPDIR"]).iterdir()) == [], how  # the fakes' throwaway CAs (their keys) are gone


def handled(pid: int) -> dict[str, set[int]]:
    """The signals process ``pid`` ignores ("SigIgn") and catches ("SigCgt"), from /proc/<pid>/status."""
    masks = dict(line.split(":\t") for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
    return {key: {n for n in range(1, 65) if int(masks[key], 16) >> (n - 1) & 1} for key in ("SigIgn", "SigCgt")}


def test_under_nohup_a_hang_up_stays_ignored_and_kill_still_stops_everything(tmp_path: Path) -> None:
    """``nohup python scripts/dev.py provider &``: closing the terminal must not stop it (dev.py catches
    SIGHUP only when it was not started to ignore it); ``kill <pid>`` stops the provider with it."""
    ports = {"OP_PORT": FIRST_PORT + 4}
    assert not dev.port_in_use(ports["OP_PORT"]), f"this test's port {ports} is taken (DEV_EXAMPLE_TEST_PORT)"
    npm = refusing_npm(tmp_path / "bin")
    env = {**os.environ, "OP_PORT": str(ports["OP_PORT"]), "PATH": f"{npm}{os.pathsep}{os.environ['PATH']}"}
    nohup = ["nohup", sys.executable, "scripts/dev.py", "provider"]
    with dev_command(ROOT, env, tmp_path / "provider.log", nohup) as run:
        wait_until_up(run, f"http://127.0.0.1:{ports['OP_PORT']}/.well-known/openid-configuration")
        signals = handled(run.process.pid)
        assert signal.SIGHUP in signals["SigIgn"] and signal.SIGTERM in signals["SigCgt"], signals
        kill(run.process.pid)
        assert_all_stopped(run, "kill <pid> (SIGTERM to dev.py provider)", ports)
