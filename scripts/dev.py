#!/usr/bin/env python3
"""The README's two commands, with all the set-up they need on a machine that has only Python (and node).

    python scripts/dev.py example   # the example project + a local OpenID provider: http://127.0.0.1:8000/
                                    # (+ a fake Duo Admin API, for the directory sync and the access review)
    python scripts/dev.py test      # lint-imports, mypy, the docs site, then every test tier (--fast: unit
                                    # and integration only)
    python scripts/dev.py provider [--site URL ...]  # only the local OpenID provider, for your own site

`provider` runs the local OpenID provider alone (tests/provider/provider.mjs) and registers the redirect
addresses of the sites given with --site (default http://127.0.0.1:8000 and http://localhost:8000, where
`manage.py runserver` listens); it prints the issuer, the clients and their (test) secrets, the users and
what to run on your site. docs/howto/local-provider.md describes it.

Every command checks its ports first (EXAMPLE_PORT 8000, OP_PORT 8900, DUO_ADMIN_PORT 8901, DUO_MFA_PORT
8902; `provider` only OP_PORT): a port in use is named with the variable that moves it.

It creates .venv, installs the package with its test, docs and typing extras, installs the pinned provider with
`npm ci`, and then runs. Set-up is skipped when nothing it depends on has changed.

`example` also starts a fake Duo Universal Prompt (tests/fakeduo/universal.py) and turns on Duo's second
factor for the admin login through it (`example_mfa`: the admin account's password is printed).

`test` runs the whole suite twice: on SQLite with the local-memory cache, then on a PostgreSQL and a
Redis it starts on loopback (and stops by PID). The e2e tier needs Debian's chromium and redis-server,
which it installs with apt-get when run as root. `--fast`: unit and integration on SQLite only.
Before the tests, `test` builds the documentation site (Sphinx, warnings are errors) into
test-artifacts/docs/, except on the other legs of the version matrix (DUO_OIDC_DJANGO set): the site
does not depend on the Django version, so CI builds it once.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("DUO_OIDC_VENV", ROOT / ".venv"))
PY = VENV / "bin" / "python"
PROVIDER_DIR = ROOT / "tests" / "provider"


def env_port(name: str, default: int) -> int:
    """The port in the environment variable ``name`` (else ``default``); exit with a clear message when it
    is not a port number."""
    text = os.environ.get(name, str(default)).strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        sys.exit(f"[dev] {name}={text!r} is not a port number (1-65535).")
    return int(text)


EXAMPLE_PORT = env_port("EXAMPLE_PORT", 8000)
OP_PORT = env_port("OP_PORT", 8900)
OP_SECRET = "sp+ec/ial:chars%25x=0123456789abcdefghij"
# The example's fake Duo Admin API (tests/fakeduo/admin_api.py, seeded with alice, bob and carol): its
# port, and its integration and secret keys. Local test values, like OP_SECRET: not secrets.
DUO_ADMIN_PORT = env_port("DUO_ADMIN_PORT", 8901)
DUO_ADMIN_IKEY = "DIEXAMPLE0000000000A"
DUO_ADMIN_SKEY = "example-admin-api-secret-key-not-a-secret0"
# The example's fake Duo Universal Prompt (Duo's second factor after the admin's password): its port.
DUO_MFA_PORT = env_port("DUO_MFA_PORT", 8902)


def log(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def run(*args: str | Path, **kwargs: object) -> None:
    subprocess.run([str(a) for a in args], check=True, **kwargs)  # type: ignore[call-overload]


# For the version matrix: another interpreter for the virtualenv, and a Django requirement.
BASE_PYTHON = os.environ.get("DUO_OIDC_PYTHON", sys.executable)
DJANGO_SPEC = os.environ.get("DUO_OIDC_DJANGO", "")
# The type check (mypy, the typing extra) runs on the first leg only: its stubs are pinned and checked
# against that leg's Django; a leg that picks another Django (DUO_OIDC_DJANGO) skips it and says so.
TYPECHECK = not DJANGO_SPEC


def python_env_digest() -> str:
    """What ``.installed`` in the virtualenv holds once it has this pyproject.toml's packages (and DJANGO_SPEC)."""
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + DJANGO_SPEC.encode()).hexdigest()


def ensure_python_env() -> None:
    stamp = VENV / ".installed"
    digest = python_env_digest()
    if stamp.exists() and stamp.read_text() == digest and PY.exists():
        return
    if not PY.exists():
        log(f"creating virtualenv {VENV} with {BASE_PYTHON}")
        run(BASE_PYTHON, "-m", "venv", VENV)
    extras = "test,docs,typing" if TYPECHECK else "test,docs"
    log(f"installing django-duo-oidc with its {extras} extras {DJANGO_SPEC}")
    extra = [DJANGO_SPEC] if DJANGO_SPEC else []
    run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", f"{ROOT}[{extras}]", *extra)
    stamp.write_text(digest)


def ensure_provider() -> None:
    stamp = PROVIDER_DIR / "node_modules" / ".installed"
    digest = hashlib.sha256((PROVIDER_DIR / "package-lock.json").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    ensure_node()
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("[dev] npm is needed for the local OpenID provider (it comes with Node.js): install it first.")
    log("installing the pinned OpenID provider (npm ci)")
    run(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", cwd=PROVIDER_DIR)
    stamp.write_text(digest)


# The pinned provider (oidc-provider, tests/provider/package.json) supports Node.js 22 LTS and later: on an
# older release it prints "Unsupported runtime. Use Node.js v22.x LTS" and runs all the same (this project's
# own e2e tier runs on Node.js 20). Below 20 it is not tried.
NODE_SUPPORTED = 22
NODE_MINIMUM = 20


def provider_version() -> str:
    """The oidc-provider version pinned in tests/provider/package.json."""
    package = json.loads((PROVIDER_DIR / "package.json").read_text())
    return str(package["dependencies"]["oidc-provider"])


@functools.cache
def ensure_node() -> str:
    """The path of ``node``, after checking its version (exit below NODE_MINIMUM, a note below NODE_SUPPORTED)."""
    node = shutil.which("node")
    if node is None:
        sys.exit(f"[dev] Node.js {NODE_SUPPORTED} LTS (or {NODE_MINIMUM}+) is needed for the local OpenID provider: "
                 "install Node.js first.")  # fmt: skip
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    major = int(version.lstrip("v").split(".")[0]) if version.lstrip("v")[:1].isdigit() else 0
    if major < NODE_MINIMUM:
        sys.exit(f"[dev] Node.js {version or '(unknown version)'} is too old for the local OpenID provider: "
                 f"install Node.js {NODE_SUPPORTED} LTS or later.")  # fmt: skip
    if major < NODE_SUPPORTED:
        log(f"Node.js {version}: oidc-provider {provider_version()} supports Node.js {NODE_SUPPORTED} LTS and later, "
            f"so it prints 'Unsupported runtime' on {version}; it works (this project's tests run on Node.js "
            f"{NODE_MINIMUM}).")  # fmt: skip
    return node


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on ``host:port`` (what node, runserver and the fakes would bind).

    SO_REUSEADDR, as node and Python's servers set it, so a port left in TIME_WAIT counts as free."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def port_problems(ports: Mapping[str, int], command: str) -> list[str]:
    """One message per port of ``ports`` (environment variable -> port) that cannot be used: in use, or
    given to two variables. Each names the variable that moves it, and a free port to try."""
    problems: list[str] = []
    owner: dict[int, str] = {}
    for name, port in ports.items():
        if port in owner:
            problems.append(f"{name} and {owner[port]} are both {port}: give each its own port.")
            continue
        owner[port] = name
        if port_in_use(port):
            taken = set(ports.values())
            nearby = range(port + 1, min(port + 200, 65536))
            spare = next((p for p in nearby if p not in taken and not port_in_use(p)), None)
            hint = f"{name}={spare} python scripts/dev.py {command}" if spare else f"{name}=<a free port>"
            problems.append(f"port {port} ({name}) is in use; set {name} to a free port, e.g. {hint}")
    return problems


def require_free_ports(ports: Mapping[str, int], command: str) -> None:
    """Exit with a clear message, before anything is started, when a port of ``ports`` cannot be used."""
    problems = port_problems(ports, command)
    if problems:
        sys.exit("\n".join(f"[dev] {problem}" for problem in problems))


def relay(stream: IO[str]) -> None:
    """Copy what a child process prints to our output, so a full pipe never blocks it."""
    for line in stream:
        print(line, end="", flush=True)


@contextmanager
def local_provider(env: Mapping[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run tests/provider/provider.mjs with ``env`` (OP_PORT, OP_RP_BASE_URLS, OP_CLIENT_SECRET); yield its
    issuer and process; stop it by PID at the end.

    What node prints is passed through (its runtime warning, say); when it stops before saying READY, the
    cause is told in one line (a busy OP_PORT, most often) instead of node's stack trace."""
    node = ensure_node()
    process = subprocess.Popen(
        [node, str(PROVIDER_DIR / "provider.mjs")], env=dict(env), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        said: list[str] = []
        issuer = ""
        for line in process.stdout:
            if line.startswith("READY "):
                issuer = line.split()[1]
                break
            said.append(line)
            if len(said) <= 5:  # e.g. "Unsupported runtime"; a stack trace is summed up below
                print(line, end="", flush=True)
        if not issuer:
            process.wait(timeout=10)
            if any("EADDRINUSE" in text for text in said):
                port = env.get("OP_PORT", "8900")
                sys.exit(f"[dev] port {port} (OP_PORT) is in use; set OP_PORT to a free port and run again.")
            error = next((t.strip() for t in reversed(said) if "Error" in t), said[-1].strip() if said else "")
            sys.exit(f"[dev] the OpenID provider stopped before it was ready (exit {process.returncode}): {error}")
        threading.Thread(target=relay, args=(process.stdout,), daemon=True).start()
        yield issuer, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


# The clients, users and scopes of tests/provider/provider.mjs: test values, known to anyone who reads this.
OP_CLIENTS = {"django-basic": "client_secret_basic", "django-post": "client_secret_post"}
OP_SCOPES = "openid profile email groups offline_access crm.contacts.read"
OP_USERS = {"alice": "crm-users", "bob": "(no group)", "carol": "crm-users, admins"}
DEFAULT_SITES = [f"http://127.0.0.1:{EXAMPLE_PORT}", f"http://localhost:{EXAMPLE_PORT}"]


def site_base(url: str) -> str:
    """The base URL of a site for its redirect URIs (``<base>/oidc/callback/``), checked: http(s), a host, no
    user, query, fragment, comma or white space. Raises ValueError saying what is wrong."""
    if "," in url or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError(f"{url!r}: a base URL has no user, query, fragment, comma or spaces")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"{url!r}: the port is not a number from 0 to 65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not a site's base URL (like http://127.0.0.1:8000)")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: a base URL has no user, query, fragment, comma or spaces")
    return url.rstrip("/")


def provider_banner(issuer: str, sites: list[str], pid: int) -> str:
    """What a user needs to point a site at the local provider (printed by `provider`)."""
    first = sites[0]
    clients = "\n".join(
        f"                    {cid}  ({method}{', the default' if method == 'client_secret_basic' else ''})"
        for cid, method in OP_CLIENTS.items()
    )
    users = "\n".join(f"                    {name:6s} groups: {groups}" for name, groups in OP_USERS.items())
    redirects = "\n".join(f"                    {site}/oidc/callback/" for site in sites)
    return f"""
The local OpenID provider is running (oidc-provider {provider_version()}, pid {pid}). Test values only:
its WARNING lines above are expected (in-memory storage, built-in sign-in pages).

  Issuer            {issuer}
  Discovery         {issuer}/.well-known/openid-configuration
  Client ids
{clients}
  Client secret     {OP_SECRET}
                    (both clients; in your shell put it in single quotes)
  Redirect URIs     (registered for you; your site's /oidc/ URLs must be at one of these)
{redirects}
  After logout      {first}/  (post_logout_redirect_uri)
  Back-channel      {first}/oidc/backchannel-logout/duo/  (django-basic; name your provider row "duo")
  Scopes            {OP_SCOPES}
  Users             any name and any password at the sign-in page; these have groups (the "groups" claim):
{users}
                    alice and carol are granted crm.contacts.read; bob is not.
  Access tokens     opaque: set --access-token-validation introspection on your provider row

On your site:

  export DUO_CLIENT_SECRET='{OP_SECRET}'
  python manage.py duo_oidc_provider duo --issuer {issuer} --client-id django-basic \\
      --client-secret-env DUO_CLIENT_SECRET --scopes "openid profile email groups crm.contacts.read" \\
      --access-token-validation introspection --end-session --default --check

Stop it with Ctrl-C (or: kill {pid}). More: docs/howto/local-provider.md
"""


def provider(args: list[str]) -> int:
    """``dev.py provider [--site URL ...]``: the local OpenID provider alone, for a site of your own."""
    parser = argparse.ArgumentParser(
        prog="python scripts/dev.py provider",
        description="Run the local OpenID provider (a real oidc-provider standing in for Duo) for your own site.",
        epilog="Its port is OP_PORT (default 8900). See docs/howto/local-provider.md.",
    )
    parser.add_argument(
        "--site", action="append", metavar="URL",
        help="Base URL of a site that logs in with it, e.g. http://127.0.0.1:8000 (repeatable; default: "
             f"{' and '.join(DEFAULT_SITES)}). Its <URL>/oidc/callback/ is registered as a redirect URI.",
    )  # fmt: skip
    options = parser.parse_args(args)
    try:
        sites = list(dict.fromkeys(site_base(url) for url in options.site or DEFAULT_SITES))
    except ValueError as exc:
        parser.error(str(exc))
    require_free_ports({"OP_PORT": OP_PORT}, "provider")
    ensure_provider()
    env = {**os.environ, "OP_PORT": str(OP_PORT), "OP_RP_BASE_URLS": ",".join(sites), "OP_CLIENT_SECRET": OP_SECRET}
    stop_children_on_signals()
    with local_provider(env) as (issuer, process):
        print(provider_banner(issuer, sites, process.pid), flush=True)
        try:
            return process.wait()
        except KeyboardInterrupt:
            return 0


SYSTEM_PACKAGES = {"redis-server": "redis-server", "/usr/bin/chromium": "chromium"}


def ensure_system_packages() -> None:
    """Redis (multi-worker and PostgreSQL legs) and Chromium (browser tests), from Debian, in one apt run."""
    missing = [pkg for path, pkg in SYSTEM_PACKAGES.items() if not (shutil.which(path) or Path(path).exists())]
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing {' '.join(missing)} (apt-get)")
        run("apt-get", "update", "-qq")
        run("apt-get", "install", "-y", "-qq", *missing, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        return
    sys.exit(f"[dev] the e2e tier needs {' '.join(missing)}: install them (e.g. apt-get install {' '.join(missing)}).")


def pg_binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        sys.exit(f"[dev] PostgreSQL's {name} is not installed (e.g. apt-get install postgresql).")
    return str(found)


def as_postgres(*args: str) -> list[str]:
    """Run PostgreSQL's tools as the postgres user when we are root (it refuses to run as root)."""
    if os.geteuid() != 0:
        return list(args)
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *args]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Services:
    """A PostgreSQL and a Redis on loopback for the second leg, stopped by PID whatever happens."""

    def __init__(self) -> None:
        import tempfile

        self.dir = Path(tempfile.mkdtemp(prefix="duo-oidc-services-"))
        self.pg_port, self.redis_port = free_port(), free_port()
        self.redis: subprocess.Popen[bytes] | None = None
        self.pg_data = self.dir / "pg"

    def __enter__(self) -> dict[str, str]:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            as_postgres(pg_binary("initdb"), "-D", str(self.pg_data), "-A", "trust", "-U", "postgres",
                        "-E", "UTF8", "--no-sync", "--locale=C.UTF-8"),
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {self.pg_port} -c unix_socket_directories={self.dir} -c fsync=off"
        subprocess.run(
            as_postgres(pg_binary("pg_ctl"), "-D", str(self.pg_data), "-l", str(self.dir / "pg.log"), "-w",
                        "-o", options, "start"),
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.redis = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "", "--appendonly",
             "no", "--dir", str(self.dir), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        pid = (self.pg_data / "postmaster.pid").read_text().split()[0]
        log(f"PostgreSQL on 127.0.0.1:{self.pg_port} (pid {pid}), Redis on 127.0.0.1:{self.redis_port} "
            f"(pid {self.redis.pid})")  # fmt: skip
        return {"DJANGO_PG_PORT": str(self.pg_port), "DJANGO_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0"}

    def __exit__(self, *exc: object) -> None:
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(timeout=10)
        pid_file = self.pg_data / "postmaster.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)  # fast shutdown
            deadline = time.monotonic() + 15
            while pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def fake_duo_admin(env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """The fake Duo Admin API on DUO_ADMIN_PORT, seeded with alice, bob and carol, behind a throwaway CA
    (tests/fakeduo/tls.py); yield (API host, CA file); stop it by PID and remove the CA."""
    pki_dir = Path(tempfile.mkdtemp(prefix="duo-oidc-example-pki-"))
    server: subprocess.Popen[str] | None = None
    try:
        make = f"from pathlib import Path; from tests.fakeduo.tls import make_pki; make_pki(Path({str(pki_dir)!r}))"
        run(PY, "-c", make, cwd=ROOT)
        server = subprocess.Popen(
            [str(PY), "-m", "tests.fakeduo.admin_api", "--port", str(DUO_ADMIN_PORT), "--seed-example",
             "--cert", str(pki_dir / "server.pem"), "--key", str(pki_dir / "server-key.pem")],
            env={**env, "FAKE_DUO_IKEY": DUO_ADMIN_IKEY, "FAKE_DUO_SKEY": DUO_ADMIN_SKEY},
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = server.stdout.readline() if server.stdout else ""
        if not line.startswith("READY https://127.0.0.1:"):
            raise RuntimeError(f"the fake Duo Admin API did not start (is port {DUO_ADMIN_PORT} taken?)")
        yield f"127.0.0.1:{line.strip().rsplit(':', 1)[1]}", pki_dir / "ca.pem"
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(pki_dir, ignore_errors=True)


# Carol (in the provider's group "admins") is staff through the staff rule; the group rule admins ->
# "Access reviewers" gives her this group's permissions: to view the access review and the connections.
GRANT_REVIEW = """
from django.contrib.auth.models import Group, Permission
group = Group.objects.get_or_create(name="Access reviewers")[0]
group.permissions.add(*Permission.objects.filter(
    content_type__app_label="duo_oidc", codename__in=["view_directoryuser", "view_directoryconnection"]))
"""


def configure_directory(manage: list[str], env: dict[str, str], api_host: str, ca_path: Path) -> None:
    """The directory connection "example" (the fake Admin API governs provider "duo", users matched by
    email), the access review's permission for "Access reviewers", and a first sync."""
    run(*manage, "duo_oidc_directory", "example", "--api-host", api_host, "--ikey", DUO_ADMIN_IKEY,
        "--skey-env", "DUO_ADMIN_SKEY", "--provider", "duo", "--match", "email", "--ca-certs", str(ca_path),
        "--check", env=env, cwd=ROOT)  # fmt: skip
    run(*manage, "shell", "--verbosity", "0", "-c", GRANT_REVIEW, env=env, cwd=ROOT)
    if subprocess.run([*manage, "duo_oidc_sync", "example"], env=env, cwd=ROOT, check=False).returncode:
        log("the first directory sync failed (see above); run it again with the command below")


EXAMPLE_PORTS = {"EXAMPLE_PORT": EXAMPLE_PORT, "OP_PORT": OP_PORT, "DUO_ADMIN_PORT": DUO_ADMIN_PORT,
                 "DUO_MFA_PORT": DUO_MFA_PORT}  # fmt: skip

# The example's provider row "duo" (after --issuer): the example's users show every path of the README:
# alice (group crm-users) gets crm.contacts.read, bob never does (the provider withholds it), carol (group
# admins) is staff and an access reviewer. Logout also ends the provider's session (--end-session), so the
# next login asks who you are.
EXAMPLE_PROVIDER_OPTIONS = [
    "--name", "Duo (local test provider)", "--client-id", "django-basic", "--client-secret-env", "DUO_CLIENT_SECRET",
    "--scopes", "openid profile email groups crm.contacts.read", "--default", "--enable",
    "--group-rule", "groups=crm-users:CRM", "--group-rule", "groups=admins:Access reviewers",
    "--staff-rule", "groups=admins", "--end-session",
    # The local provider's access tokens are opaque: only "introspection" mode asks about them.
    "--access-token-validation", "introspection", "--check",
]  # fmt: skip
EXAMPLE_USERS = """who to log in as (any password at the local provider):
  alice   group crm-users, granted crm.contacts.read: /contacts/ opens
  bob     never granted crm.contacts.read: /contacts/ shows the 403 page and "Request access"
  carol   group admins: staff, and the access review at {base}/admin/duo_oidc/directoryuser/
  admin   a password account at {base}/admin/ (password {password}), then Duo's second factor
  Log out also ends the provider's session: the next login asks who you are."""


def stop_children_on_signals() -> None:
    """`kill <pid of this script>` and closing its terminal stop what it started too: SIGTERM and SIGHUP
    become SystemExit, which runs the clean-up of every `with` block and `finally` on the way out (Ctrl-C
    in a terminal reaches them all). SIGHUP goes to the terminal's process groups only, and runserver has
    its own: without this, a closed terminal left runserver and its reloader holding EXAMPLE_PORT. A
    signal this script was started to ignore (`nohup`: SIGHUP) stays ignored."""
    for stop in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(stop) is not signal.SIG_IGN:
            signal.signal(stop, lambda *_: sys.exit(0))


def example() -> int:
    require_free_ports(EXAMPLE_PORTS, "example")
    stop_children_on_signals()
    ensure_python_env()
    ensure_provider()
    base = f"http://127.0.0.1:{EXAMPLE_PORT}"
    env = {
        **os.environ,
        "OP_PORT": str(OP_PORT),
        "OP_RP_BASE_URLS": f"{base},http://localhost:{EXAMPLE_PORT}",
        "OP_CLIENT_SECRET": OP_SECRET,
        "DUO_CLIENT_SECRET": OP_SECRET,
        "DUO_ADMIN_SKEY": DUO_ADMIN_SKEY,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
    }
    with local_provider(env) as (issuer, _process):
        log(f"OpenID provider running at {issuer} (log in with any name; see 'who to log in as' below)")
        manage = [str(PY), str(ROOT / "manage.py")]
        # --skip-checks: a second run's database still holds the last run's second-factor row, whose secret
        # variable exists only once example_mfa has started a fresh fake (E103 would stop migrate); the
        # rows are rewritten just below, and runserver runs every check at the end.
        run(*manage, "migrate", "--verbosity", "0", "--skip-checks", env=env, cwd=ROOT)
        password = example_mfa(env, manage)  # Duo's second factor after the admin's password, through a fake Duo
        run(*manage, "duo_oidc_provider", "duo", "--issuer", issuer, *EXAMPLE_PROVIDER_OPTIONS, env=env, cwd=ROOT)
        with fake_duo_admin(env) as (api_host, ca_path):
            log(f"fake Duo Admin API running at https://{api_host} (alice, bob, carol): directory connection 'example'")
            configure_directory(manage, env, api_host, ca_path)
            log(f"open {base}/ and click 'Log in with Duo'")
            log(f"sync from Duo again: DUO_ADMIN_SKEY='{DUO_ADMIN_SKEY}' {PY} manage.py duo_oidc_sync")
            log(EXAMPLE_USERS.format(base=base, password=password))
            # Its own process group: runserver's reloader child is stopped with it, whatever stopped this script.
            server = subprocess.Popen(
                [*manage, "runserver", f"127.0.0.1:{EXAMPLE_PORT}"], env=env, cwd=ROOT, start_new_session=True
            )
            try:
                return server.wait()
            except KeyboardInterrupt:
                return 0
            finally:
                if server.poll() is None:
                    os.killpg(server.pid, signal.SIGTERM)  # SIGINT may be ignored (a script started with &)
                    server.wait(timeout=10)


# The example's fake Duo Universal Prompt (tests/fakeduo/universal.py): Duo's second factor after the admin's
# password. "Remember me" days (0: Duo at every login); its port is DUO_MFA_PORT, above.
DUO_MFA_REMEMBER_DAYS = os.environ.get("DUO_MFA_REMEMBER_DAYS", "0")
# Creates (or resets the password of) the example's admin account, from the environment.
EXAMPLE_ADMIN = """
import os
from django.contrib.auth import get_user_model
user = get_user_model().objects.get_or_create(username="admin", defaults={"email": "admin@example.test"})[0]
user.is_staff = user.is_superuser = user.is_active = True
user.set_password(os.environ["DUO_EXAMPLE_ADMIN_PASSWORD"])
user.save()
"""


def example_mfa(env: dict[str, str], manage: list[str]) -> str:
    """Duo's second factor for the example's admin login, through the fake Web SDK v4 server.

    Starts the fake on DUO_MFA_PORT with fresh credentials and a throwaway CA (stopped and removed at exit),
    puts its secret in ``env`` as DUO_MFA_CLIENT_SECRET (read by the site through ``--client-secret-env``),
    configures the site with ``duo_oidc_mfa ... --check`` and gives the account "admin" a new password,
    which it returns.
    """
    import atexit
    import secrets
    import string
    import tempfile

    alphabet = string.ascii_uppercase + string.digits
    client_id = "DI" + "".join(secrets.choice(alphabet) for _ in range(18))
    client_secret = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
    pki_dir = Path(tempfile.mkdtemp(prefix="duo-oidc-example-mfa-"))
    fake = subprocess.Popen(
        [str(PY), "-m", "tests.fakeduo.universal", "--port", str(DUO_MFA_PORT), "--pki-dir", str(pki_dir)],
        env={**env, "FAKE_DUO_CLIENT_ID": client_id, "FAKE_DUO_CLIENT_SECRET": client_secret},
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip

    def stop() -> None:
        fake.terminate()
        fake.wait(timeout=10)
        shutil.rmtree(pki_dir, ignore_errors=True)

    atexit.register(stop)
    line = fake.stdout.readline() if fake.stdout else ""
    if not line.startswith("READY https://127.0.0.1:"):
        raise RuntimeError(f"the fake Duo Universal Prompt did not start (is port {DUO_MFA_PORT} taken?)")
    api_host = line.split()[1].removeprefix("https://")
    env["DUO_MFA_CLIENT_SECRET"] = client_secret
    run(*manage, "duo_oidc_mfa", "--client-id", client_id, "--client-secret-env", "DUO_MFA_CLIENT_SECRET",
        "--api-host", api_host, "--ca-certs", str(pki_dir / "ca.pem"), "--fail-mode", "closed", "--enable",
        "--remember-days", DUO_MFA_REMEMBER_DAYS, "--check", env=env, cwd=ROOT)  # fmt: skip
    password = secrets.token_urlsafe(12)
    run(*manage, "shell", "-c", EXAMPLE_ADMIN, env={**env, "DUO_EXAMPLE_ADMIN_PASSWORD": password}, cwd=ROOT)
    log(f"fake Duo Universal Prompt at https://{api_host}: the admin login (/admin/, user admin, password "
        f"{password}) asks for Duo's second factor there (Approve or Deny)")  # fmt: skip
    return password


def pytest_leg(name: str, slug: str, args: list[str], env: dict[str, str]) -> dict[str, object]:
    import xml.etree.ElementTree as ET

    leg = f"{VENV.name.lstrip('.')}-{slug}"  # one name per matrix leg and database: venv-sqlite, ...
    report = ROOT / "test-artifacts" / f"junit-{leg}.xml"
    report.parent.mkdir(exist_ok=True)
    # The browser tests' screenshots, one folder per leg of this run (unless the caller chose one).
    shots = ROOT / "test-artifacts" / "screenshots" / f"{time.strftime('%Y%m%d-%H%M%S')}-{leg}"
    env = {"DUO_OIDC_SCREENSHOTS": os.environ.get("DUO_OIDC_SCREENSHOTS") or str(shots), **env}
    log(f"== {name}")
    started = time.monotonic()
    code = subprocess.call(
        [str(PY), "-m", "pytest", f"--junitxml={report}", *args], cwd=ROOT, env={**os.environ, **env}
    )
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    tiers: dict[str, int] = {}
    if report.exists():
        suite = ET.parse(report).getroot()  # noqa: S314 - our own pytest's report
        suite = suite if suite.tag == "testsuite" else suite[0]
        counts = {k: int(suite.get(k, 0)) for k in counts}
        for case in suite.iter("testcase"):  # classname: tests.<tier>.test_module[.Class]
            tier = case.get("classname", "").split(".")[1:2] or ["?"]
            tiers[tier[0]] = tiers.get(tier[0], 0) + 1
    return {"name": name, "code": code, "seconds": time.monotonic() - started, "tiers": tiers, **counts}


def lint_imports() -> int:
    """The layers of ARCHITECTURE.md, as import-linter contracts in pyproject.toml: no cycle, no layer
    importing one above it, no Django in the core."""
    log("lint-imports (the layers of ARCHITECTURE.md)")
    done = subprocess.run([str(VENV / "bin" / "lint-imports"), "--no-cache"], cwd=ROOT, check=False)
    return done.returncode


def typecheck() -> int:
    """mypy --strict over the package and tests/typecheck ([tool.mypy] in pyproject.toml), on the first leg."""
    if not TYPECHECK:
        log(f"mypy skipped on this leg (DUO_OIDC_DJANGO={DJANGO_SPEC}): the types are checked on the first leg")
        return 0
    mypy = VENV / "bin" / "mypy"
    if not mypy.exists():
        log(f"mypy is not installed in {VENV}: the typing extra is missing (pip install -e '.[typing]')")
        return 1
    log("mypy --strict (the package and tests/typecheck/usage.py)")
    started = time.monotonic()
    done = subprocess.run([str(mypy)], cwd=ROOT, check=False)
    log(f"mypy took {time.monotonic() - started:.1f}s")
    return done.returncode


def build_docs() -> int:
    """The documentation site, as a reader gets it: any Sphinx warning fails the build."""
    if DJANGO_SPEC:
        log(f"docs: not built on this leg ({DJANGO_SPEC}): the site does not depend on the Django version "
            "and the first leg built it")  # fmt: skip
        return 0
    out = ROOT / "test-artifacts" / "docs"
    log(f"docs: sphinx-build -W --keep-going -b html docs {out.relative_to(ROOT)}")
    started = time.monotonic()
    done = subprocess.run(
        [str(PY), "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(out)], cwd=ROOT, check=False
    )
    log(f"docs: {'built' if done.returncode == 0 else 'FAILED'} in {time.monotonic() - started:.1f}s")
    return done.returncode


def test(args: list[str]) -> int:
    ensure_python_env()
    layers = lint_imports()
    types = typecheck()
    docs = build_docs()
    fast = "--fast" in args
    args = [a for a in args if a != "--fast"]
    if fast:
        legs = [
            pytest_leg("unit + integration, SQLite + local-memory cache (--fast)", "fast", ["-m", "not e2e", *args], {})
        ]
    else:
        ensure_provider()
        ensure_system_packages()
        legs = [pytest_leg("all tiers, SQLite + local-memory cache", "sqlite", args, {})]
        with Services() as env:
            legs.append(pytest_leg("all tiers, PostgreSQL + Redis", "postgres", args, env))
    versions = subprocess.run(
        [str(PY), "-c", "import sys, django; print(f'Django {django.get_version()}, Python {sys.version.split()[0]}')"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    lines = [f"{versions}:"]
    for leg in legs:
        passed = int(leg["tests"]) - int(leg["failures"]) - int(leg["errors"]) - int(leg["skipped"])
        lines.append(
            f"  {leg['name']:58s} {passed:4d} passed  {leg['failures']} failed  {leg['errors']} errors  "
            f"{leg['skipped']} skipped  {leg['seconds']:.1f}s  exit {leg['code']}"
        )
        tiers: dict[str, int] = leg["tiers"]  # type: ignore[assignment]
        order = ["unit", "integration", "e2e"]
        ran = sorted(tiers, key=lambda t: order.index(t) if t in order else len(order))
        lines.append("    ran: " + ", ".join(f"{tiers[t]} {t}" for t in ran))
    log("summary")
    print("\n".join(lines))
    # Kept for .ci/run, which prints every matrix leg's summary at the end.
    (ROOT / "test-artifacts" / f"summary{VENV.name}.txt").write_text("\n".join(lines) + "\n")
    if layers:
        print("lint-imports: a contract is broken (see above)")
    if types:
        print("mypy: the type check failed (see above)")
    if docs:
        print("docs: the documentation site did not build cleanly (see the warnings above)")
    return next((int(leg["code"]) for leg in legs if leg["code"]), layers or types or docs)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("example", "test", "provider"):
        print(__doc__)
        return 2
    if sys.argv[1] == "example":
        return example()
    if sys.argv[1] == "provider":
        return provider(sys.argv[2:])
    return test(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
