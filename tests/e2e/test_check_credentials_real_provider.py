"""``duo_oidc_provider --check`` tries the client credentials at a REAL provider's token endpoint
(panva/oidc-provider, tests/provider): it answers a made-up code with ``invalid_grant`` when the client
id and secret are right and ``invalid_client`` when they are wrong, for HTTP Basic and the form body
alike (issue 15: "Check connection" said OK with a wrong secret, and the login then died at the provider).

The provider listens on ``OP_PORT`` when it is set (a port range of your own), else on a free port.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT, SECRET, free_port, real_provider, site_env

WRONG = "wr0ng-but-l00ks-fine-0123456789abcdefghij"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    port = os.environ.get("OP_PORT") or str(free_port())
    site = "http://127.0.0.1:8000"  # no site runs: only the commands
    environment = {**site_env(site, Path(tmp_path_factory.mktemp("check"))), "OP_PORT": port}
    with real_provider(environment) as issuer:
        environment["ISSUER"] = issuer
        manage(environment, "migrate", "--verbosity", "0", check=True)
        yield environment


def manage(env: dict[str, str], *args: str, check: bool = False, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env={**env, **extra},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def provider_check(
    env: dict[str, str], slug: str, client_id: str, method: str, secret: str
) -> subprocess.CompletedProcess[str]:
    return manage(
        env,
        "duo_oidc_provider", slug, "--issuer", env["ISSUER"], "--client-id", client_id,
        "--client-secret-env", "DUO_CLIENT_SECRET", "--token-auth-method", method, "--check",
        DUO_CLIENT_SECRET=secret,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("slug", "client_id", "method"),
    [("duo", "django-basic", "client_secret_basic"), ("duo-post", "django-post", "client_secret_post")],
)
def test_the_right_secret_is_accepted_and_a_wrong_one_rejected(
    env: dict[str, str], slug: str, client_id: str, method: str
) -> None:
    right = provider_check(env, slug, client_id, method, SECRET)
    assert right.returncode == 0, right.stdout + right.stderr
    assert (
        f"  Client credentials: accepted by the token endpoint ({method}; it refused a made-up authorization code "
        "with invalid_grant, not invalid_client)."
    ) in right.stdout.splitlines()

    wrong = provider_check(env, slug, client_id, method, WRONG)
    assert wrong.returncode == 1
    assert f"  Client credentials: REJECTED: invalid_client. The token endpoint refused client id {client_id} " in (
        wrong.stdout
    )
    assert "saved, but the connection check failed" in wrong.stderr
    for output in (right.stdout + right.stderr, wrong.stdout + wrong.stderr):
        assert SECRET not in output and WRONG not in output


def test_an_unknown_client_id_is_rejected(env: dict[str, str]) -> None:
    result = provider_check(env, "stranger", "no-such-client", "client_secret_basic", SECRET)
    assert result.returncode == 1
    assert "  Client credentials: REJECTED: invalid_client. The token endpoint refused client id no-such-client " in (
        result.stdout
    )
