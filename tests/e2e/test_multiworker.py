"""Several server processes sharing one Redis and one database, against the real provider.

A revocation seen by one process is honoured by the other, and the provider receives one
introspection call per freshness window however many processes serve the session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from .conftest import PROVIDER, ROOT, SECRET, Site, database_env, free_port, login, wait_http

WINDOW = 2.0


@dataclass
class Cluster:
    workers: list[Site]
    issuer: str

    def stats(self) -> dict[str, int]:
        return requests.get(self.issuer + "/__test__/stats", timeout=5).json()


def start_redis(tmp: os.PathLike[str]) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `python scripts/dev.py test` (it installs it).")
    port = free_port()
    redis = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(tmp), "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    import redis as redis_client

    while time.monotonic() < deadline:
        try:
            if redis_client.Redis(port=port).ping():
                return redis, f"redis://127.0.0.1:{port}/0"
        except redis_client.ConnectionError:
            time.sleep(0.02)
    raise RuntimeError("redis did not start")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    redis, redis_url = start_redis(tmp)
    ports = [free_port(), free_port()]
    op_port = free_port()
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    env = {
        **os.environ,
        "OP_PORT": str(op_port),
        "OP_RP_BASE_URLS": ",".join(bases),
        "OP_CLIENT_SECRET": SECRET,
        "DUO_CLIENT_SECRET": SECRET,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        **database_env(tmp),
        "DJANGO_REDIS_URL": redis_url,
        "DUO_OIDC_REVALIDATE_SECONDS": str(WINDOW),
    }
    op = subprocess.Popen(
        ["node", str(PROVIDER / "provider.mjs")], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    servers: list[subprocess.Popen[bytes]] = []
    try:
        line = op.stdout.readline() if op.stdout else ""
        issuer = line.split()[1]
        sites = [Site(base=b, issuer=issuer, env=env) for b in bases]
        sites[0].manage("migrate", "--verbosity", "0")
        sites[0].manage(
            "duo_oidc_provider", "duo", "--issuer", issuer, "--client-id", "django-basic",
            "--client-secret-env", "DUO_CLIENT_SECRET", "--scopes", "openid profile email crm.contacts.read",
            "--default",
        )  # fmt: skip
        for port in ports:
            servers.append(
                subprocess.Popen(
                    [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for base in bases:
            wait_http(base + "/me/")
        yield Cluster(workers=sites, issuer=issuer)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
        op.terminate()
        op.wait(timeout=10)
        redis.terminate()
        redis.wait(timeout=10)


def test_one_introspection_per_window_across_workers(cluster: Cluster) -> None:
    a, b = cluster.workers
    session = requests.Session()  # cookies are per host, not per port: one browser, two workers
    login(session, a, "/oidc/login/?provider=duo&next=/contacts/")
    assert session.get(b.base + "/contacts/").status_code == 200
    before = cluster.stats()["introspection"]
    time.sleep(WINDOW + 0.1)
    for i in range(20):
        worker = cluster.workers[i % 2]
        assert session.get(worker.base + "/contacts/").status_code == 200
    assert cluster.stats()["introspection"] - before == 1


def test_revocation_seen_by_one_worker_is_honoured_by_the_other(cluster: Cluster) -> None:
    a, b = cluster.workers
    session = requests.Session()
    login(session, a, "/oidc/login/?provider=duo&next=/contacts/", user="bob")
    assert session.get(b.base + "/contacts/").status_code == 200
    assert requests.post(cluster.issuer + "/__test__/revoke", params={"sub": "bob"}, timeout=5).status_code == 204
    time.sleep(WINDOW + 0.1)
    assert session.get(a.base + "/contacts/", allow_redirects=False).status_code == 302  # a finds out
    assert session.get(b.base + "/contacts/", allow_redirects=False).status_code == 302  # b honours it
    assert session.get(b.base + "/me/").json() == {"authenticated": False}


def test_the_outbound_helper_shares_its_token_across_processes(cluster: Cluster) -> None:
    a, b = cluster.workers
    before = cluster.stats()["token"]
    first = a.manage("duo_oidc_call", "--scope", "crm.contacts.read", "--print-token")
    # Another process: it finds the token in Redis and calls worker b's API with it.
    second = b.manage("duo_oidc_call", b.base + "/api/contacts/", "--scope", "crm.contacts.read", "--print-token")
    assert "(new)" in first.stderr
    assert "(cached)" in second.stderr
    assert "HTTP 200" in second.stderr
    assert second.stdout.splitlines()[0] == first.stdout.strip()
    assert cluster.stats()["token"] - before == 1


def test_a_bearer_token_is_introspected_once_per_window_across_workers(cluster: Cluster) -> None:
    token = cluster.workers[0].manage("duo_oidc_call", "--scope", "crm.contacts.read email", "--print-token")
    headers = {"Authorization": "Bearer " + token.stdout.strip()}
    before = cluster.stats()["introspection"]
    for i in range(20):
        worker = cluster.workers[i % 2]
        assert requests.get(worker.base + "/api/contacts/", headers=headers, timeout=5).status_code == 200
    assert cluster.stats()["introspection"] - before == 1
