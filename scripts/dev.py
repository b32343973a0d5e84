#!/usr/bin/env python3
"""The README's two commands, with all the set-up they need on a machine that has only Python (and node).

    python scripts/dev.py example   # the example project + a local OpenID provider: http://127.0.0.1:8000/
    python scripts/dev.py test      # every test tier (add --fast for the unit and integration tiers only)

It creates .venv, installs the package with its test extras, installs the pinned provider with
`npm ci`, and then runs. Set-up is skipped when nothing it depends on has changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("DUO_OIDC_VENV", ROOT / ".venv"))
PY = VENV / "bin" / "python"
PROVIDER_DIR = ROOT / "tests" / "provider"
EXAMPLE_PORT = int(os.environ.get("EXAMPLE_PORT", "8000"))
OP_PORT = int(os.environ.get("OP_PORT", "8900"))
OP_SECRET = "sp+ec/ial:chars%25x=0123456789abcdefghij"


def log(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def run(*args: str | Path, **kwargs: object) -> None:
    subprocess.run([str(a) for a in args], check=True, **kwargs)  # type: ignore[call-overload]


# For the version matrix: another interpreter for the virtualenv, and a Django requirement.
BASE_PYTHON = os.environ.get("DUO_OIDC_PYTHON", sys.executable)
DJANGO_SPEC = os.environ.get("DUO_OIDC_DJANGO", "")


def ensure_python_env() -> None:
    stamp = VENV / ".installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + DJANGO_SPEC.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and PY.exists():
        return
    if not PY.exists():
        log(f"creating virtualenv {VENV} with {BASE_PYTHON}")
        run(BASE_PYTHON, "-m", "venv", VENV)
    log(f"installing django-duo-oidc with its test extras {DJANGO_SPEC}")
    extra = [DJANGO_SPEC] if DJANGO_SPEC else []
    run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", f"{ROOT}[test]", *extra)
    stamp.write_text(digest)


def ensure_provider() -> None:
    stamp = PROVIDER_DIR / "node_modules" / ".installed"
    digest = hashlib.sha256((PROVIDER_DIR / "package-lock.json").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("[dev] npm is needed for the local OpenID provider (node >= 20); install Node.js first.")
    log("installing the pinned OpenID provider (npm ci)")
    run(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", cwd=PROVIDER_DIR)
    stamp.write_text(digest)


def ensure_redis() -> None:
    """The multi-worker tests run a real Redis server (Debian's redis-server)."""
    if shutil.which("redis-server"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing redis-server (apt-get)")
        run("apt-get", "update", "-qq")
        run("apt-get", "install", "-y", "-qq", "redis-server", env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        return
    sys.exit("[dev] the multi-worker tests need redis-server on PATH: install it (e.g. apt-get install redis-server).")


def example() -> int:
    ensure_python_env()
    ensure_provider()
    base = f"http://127.0.0.1:{EXAMPLE_PORT}"
    env = {
        **os.environ,
        "OP_PORT": str(OP_PORT),
        "OP_RP_BASE_URLS": f"{base},http://localhost:{EXAMPLE_PORT}",
        "OP_CLIENT_SECRET": OP_SECRET,
        "DUO_CLIENT_SECRET": OP_SECRET,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
    }
    provider = subprocess.Popen(
        ["node", str(PROVIDER_DIR / "provider.mjs")], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        line = provider.stdout.readline() if provider.stdout else ""
        if not line.startswith("READY"):
            log("the OpenID provider did not start")
            return 1
        issuer = line.split()[1]
        log(f"OpenID provider running at {issuer} (log in with any name: alice, bob, carol)")
        manage = [str(PY), str(ROOT / "manage.py")]
        run(*manage, "migrate", "--verbosity", "0", env=env, cwd=ROOT)
        run(
            *manage,
            "duo_oidc_provider",
            "duo",
            "--name",
            "Duo (local test provider)",
            "--issuer",
            issuer,
            "--client-id",
            "django-basic",
            "--client-secret-env",
            "DUO_CLIENT_SECRET",
            "--scopes",
            "openid profile email groups crm.contacts.read",
            "--default",
            "--enable",
            "--group-rule",
            "groups=crm-users:CRM",
            "--staff-rule",
            "groups=admins",
            "--check",
            env=env,
            cwd=ROOT,
        )
        log(f"open {base}/ and click 'Log in with Duo'")
        server = subprocess.Popen([*manage, "runserver", f"127.0.0.1:{EXAMPLE_PORT}"], env=env, cwd=ROOT)
        try:
            return server.wait()
        except KeyboardInterrupt:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=10)
            return 0
    finally:
        provider.terminate()
        provider.wait(timeout=10)


def test(args: list[str]) -> int:
    ensure_python_env()
    fast = "--fast" in args
    args = [a for a in args if a != "--fast"]
    if fast:
        args = ["-m", "not e2e", *args]
    else:
        ensure_provider()
        ensure_redis()
    started = time.monotonic()
    code = subprocess.call([str(PY), "-m", "pytest", *args], cwd=ROOT)
    log(f"tests finished in {time.monotonic() - started:.1f}s with exit code {code}")
    return code


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("example", "test"):
        print(__doc__)
        return 2
    if sys.argv[1] == "example":
        return example()
    return test(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
