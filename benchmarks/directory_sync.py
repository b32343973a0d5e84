"""What a directory sync of 10,000 Duo users costs, against the fake Duo Admin API (issue 12).

    .venv/bin/python benchmarks/directory_sync.py [--users 10000] [--groups 20]

Starts the fake Admin API (tests/fakeduo/admin_api.py, HTTPS with a throwaway CA) itself, fills it with
``--users`` users (each in one to three of ``--groups`` groups, with phones, WebAuthn credentials and
hardware tokens embedded as Duo does), makes as many Django users linked to the provider (their last
login's email claim is the join key), and runs ``django_duo_oidc.directory.sync.sync_connection`` through
Duo's own client (duo_client: signing, paging 300 users a page), on SQLite with the local-memory cache:

- the first sync (every identity gets linked, every Duo group mirrored, every membership added),
- a dry run of the next one (plans everything, writes nothing),
- a sync with nothing to change (what a nightly cron run costs),
- a sync after Duo disabled 0.5% of the users (they are deactivated and signed out).

For each: requests made to the Admin API (counted by the fake), wall-clock seconds (without tracemalloc),
and the peak of Python allocations during the run (tracemalloc, in a second identical run: tracing slows
Python down). The fake answers on loopback with no delay: a real tenant adds a network round trip per
request (one page of groups, one per 300 users) and its rate limits (DUO.md 4.4).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import django  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from django.conf import settings  # noqa: E402

TMP = Path(tempfile.mkdtemp(prefix="duo-oidc-bench-sync-"))

settings.configure(
    DEBUG=False,
    SECRET_KEY="benchmark",
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django_duo_oidc",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(TMP / "bench.sqlite3")}},
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    SESSION_ENGINE="django.contrib.sessions.backends.db",
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    DUO_OIDC={"ENCRYPTION_KEYS": [Fernet.generate_key().decode()]},
    LOGGING_CONFIG=None,
)
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.management import call_command  # noqa: E402

from django_duo_oidc.directory.sync import sync_connection  # noqa: E402
from django_duo_oidc.models import DirectoryConnection, DirectoryGroup, DirectoryUser, Identity, Provider  # noqa: E402
from tests.fakeduo.admin_fixtures import FakeDuoAdmin, duo_user, duo_user_id, start_server, stop_server  # noqa: E402

SKEY_ENV = "DUO_BENCH_ADMIN_SKEY"


def duo_users(count: int, groups: int, disabled: int = 0) -> list[dict[str, Any]]:
    users = []
    for i in range(count):
        names = [f"group-{(i + k * 7) % groups:02}" for k in range(1 + i % 3)]
        users.append(
            duo_user(
                f"user{i:05}",
                status="disabled" if i < disabled else "active",
                groups=sorted(set(names)),
                phones=1 + i % 2,
                webauthn=i % 3,
                tokens=1 if i % 10 == 0 else 0,
                last_login=1_764_000_000 + i,
            )
        )
    return users


def django_side(count: int) -> Provider:
    provider = Provider.objects.create(
        slug="duo", name="Duo", issuer="https://sso-bench.example.test/oidc/DIBENCH", client_id="DIBENCH"
    )
    user_model = get_user_model()
    user_model.objects.bulk_create(
        [user_model(username=f"user{i:05}", email=f"user{i:05}@example.test", password="!") for i in range(count)],
        batch_size=1000,
    )
    users = dict(user_model.objects.values_list("username", "pk"))
    Identity.objects.bulk_create(
        [
            Identity(
                provider=provider,
                sub=f"sub-{i:05}",
                user_id=users[f"user{i:05}"],
                last_claims={"email": f"user{i:05}@example.test"},
            )
            for i in range(count)
        ],
        batch_size=1000,
    )
    return provider


def forget_first_sync(connection: DirectoryConnection) -> None:
    """Back to the state before the first sync (to measure it twice)."""
    Group.objects.filter(pk__in=DirectoryGroup.objects.filter(connection=connection).values("group_id")).delete()
    DirectoryGroup.objects.filter(connection=connection).delete()
    DirectoryUser.objects.filter(connection=connection).delete()
    Identity.objects.update(duo_user_id="")
    DirectoryConnection.objects.filter(pk=connection.pk).update(last_sync_at=None, last_sync_ok=None)


def measure(fake: FakeDuoAdmin, run: Callable[[], Any], again: Callable[[], None] | None) -> dict[str, Any]:
    """Requests and seconds of one run, then (after ``again`` restores the state) the peak memory of a second."""
    before = fake.stats()["requests"]
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    requests = fake.stats()["requests"] - before
    if not result.ok:
        raise SystemExit(f"the sync failed: {result.message}")
    if again is not None:
        again()
    tracemalloc.start()
    try:
        traced = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if not traced.ok:
        raise SystemExit(f"the traced sync failed: {traced.message}")
    return {"requests": requests, "seconds": seconds, "peak_mib": peak / 2**20, "changes": len(result.changes)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=20)
    args = parser.parse_args()
    disabled = max(1, args.users // 200)  # 0.5%: under the 10% deprovisioning guard

    logging.getLogger("django_duo_oidc").setLevel(logging.ERROR)  # a line per change: 10,000 of them
    call_command("migrate", verbosity=0)
    server = start_server(TMP / "fake")
    fake = server.controller
    try:
        os.environ[SKEY_ENV] = fake.skey
        fake.set_state(users=duo_users(args.users, args.groups))
        provider = django_side(args.users)
        connection = DirectoryConnection.objects.create(
            slug="bench",
            api_host=fake.api_host,
            integration_key=fake.ikey,
            secret_key_env=SKEY_ENV,
            ca_certs=fake.ca_path,
            provider=provider,
            match="email",
        )

        def sync(dry_run: bool = False) -> Any:
            return sync_connection(DirectoryConnection.objects.get(pk=connection.pk), dry_run=dry_run)

        rows = [("first sync (link all, mirror groups)", measure(fake, sync, lambda: forget_first_sync(connection)))]
        rows.append(("dry run (nothing written)", measure(fake, lambda: sync(dry_run=True), None)))
        rows.append(("sync, nothing to change", measure(fake, sync, None)))

        def disable() -> None:
            for i in range(disabled):
                fake.patch_user(duo_user_id(f"user{i:05}"), status="disabled")

        def undo() -> None:
            for i in range(disabled):
                fake.patch_user(duo_user_id(f"user{i:05}"), status="active")
            sync()  # re-activates them
            disable()

        disable()
        rows.append((f"sync, {disabled} disabled in Duo (deprovision)", measure(fake, sync, undo)))
    finally:
        stop_server(server)

    print(f"Directory sync of {args.users} Duo users ({args.groups} groups) against the fake Admin API, SQLite")
    print(f"{'run':44s} {'requests':>8s} {'seconds':>8s} {'peak MiB':>9s} {'changes':>8s}")
    for name, row in rows:
        print(f"{name:44s} {row['requests']:8d} {row['seconds']:8.2f} {row['peak_mib']:9.1f} {row['changes']:8d}")
    print(f"(django {django.get_version()}, python {sys.version.split()[0]}; peak = tracemalloc, in a second run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
