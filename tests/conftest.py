from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import InterfaceError, OperationalError

from tests import fakeop

# Fixtures of the fake Duo servers (processes checking what Duo checks, driven by Duo's own SDKs).
# The shipped test kit's fixtures (duo_provider, duo_login, ...): also loaded by the package's pytest11
# entry point when installed; registered under the same name, so never twice.
pytest_plugins = [
    "tests.fakeduo.admin_fixtures",
    "tests.fakeduo.universal_fixtures",
    "django_duo_oidc.testing.pytest_plugin",
]


@pytest.fixture(autouse=True)
def _fresh_process_memos() -> Iterator[None]:
    """Each test starts like a fresh worker process: no parsed keys or seen tokens from an earlier test."""
    from django_duo_oidc import resource
    from django_duo_oidc.core.jwks import JWKSStore

    JWKSStore.forget_all()
    resource.reset()
    yield
    JWKSStore.forget_all()
    resource.reset()


@pytest.fixture
def long_lived_memos(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider list and the scope rules are re-read every 5 s per process by design. A test that
    counts a request's queries uses this: a memo filled by an earlier request could otherwise expire between
    two requests on a loaded machine and count as a query of the thing under test (seen in CI: the scope
    rules' read in ``test_a_session_past_duo_costs_the_middleware_no_query``)."""
    from django_duo_oidc.policy import rules
    from django_duo_oidc.providers import enabled

    monkeypatch.setattr(rules, "RULES_TTL", 3600.0)
    monkeypatch.setattr(rules, "_rules_memo", (0.0, []))
    monkeypatch.setattr(enabled, "ENABLED_TTL", 3600.0)  # the bearer registry's and the sessions' provider list
    monkeypatch.setattr(enabled._memo, "expires", 0.0)


class StillClock:
    """``time.time`` and ``time.monotonic`` standing still (see :func:`still_clock`)."""

    def __init__(self) -> None:
        self.wall = time.time()
        self.mono = time.monotonic()

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass, on both clocks."""
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def still_clock(monkeypatch: pytest.MonkeyPatch) -> StillClock:
    """A test whose requests must fall within a window of the library (a token's few seconds left, a
    freshness window, a backoff, a refusal remembered) uses this: the clock stands still between its
    requests however loaded the machine is, and moves only when the test says so (``advance``) or
    something sleeps (``time.sleep`` still sleeps, and moves the clock by as much, so a wait with a
    deadline ends). The local-memory cache's expiry stands still too; a Redis cache's does not (its
    server keeps time): a window kept as a cache timeout is lengthened with its setting instead."""
    clock = StillClock()
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        real_sleep(seconds)
        clock.advance(seconds)

    monkeypatch.setattr(time, "time", clock.time)
    monkeypatch.setattr(time, "monotonic", clock.monotonic)
    monkeypatch.setattr(time, "sleep", sleep)
    return clock


def close_executor_connections() -> None:
    """Close the database connection of asgiref's executor thread. An ``AsyncClient`` request run with
    ``asyncio.run`` runs the view's sync parts on that thread, and the test client keeps Django from
    closing its connection; left open, PostgreSQL cannot drop the test database at the end of the run
    ("database test_duo_example is being accessed by other users"). Call it in a ``finally``."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    asyncio.run(sync_to_async(connections.close_all)())


@pytest.fixture
def fake_op(settings: Any) -> Iterator[fakeop.FakeOP]:
    """A fresh in-process provider, with the shared cache cleared so no discovery/JWKS leaks between tests."""
    from django.core.cache import cache

    cache.clear()
    op = fakeop.FakeOP()
    previous = fakeop.install(op)
    yield op
    fakeop.uninstall(previous)
    cache.clear()


@pytest.fixture
def provider(db: Any, fake_op: fakeop.FakeOP, monkeypatch: pytest.MonkeyPatch) -> Any:
    from django_duo_oidc.models import Provider

    monkeypatch.setenv("DUO_FAKE_OP_SECRET", fake_op.client_secret)
    return Provider.objects.create(
        slug="duo",
        name="Duo",
        issuer=fake_op.issuer,
        client_id=fake_op.client_id,
        client_secret_env="DUO_FAKE_OP_SECRET",
        scopes="openid profile email groups",
        is_default=True,
    )


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@contextmanager
def captured(signal: Any) -> Iterator[list[dict[str, Any]]]:
    """Collect the keyword arguments of every sending of ``signal`` inside the block."""
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    signal.connect(receiver)
    try:
        yield seen
    finally:
        signal.disconnect(receiver)


# What a driver raises when the database server goes away: OperationalError first, then InterfaceError for
# every later use of the closed connection (a sibling of DatabaseError under django.db.Error, not a kind of it).
DB_FAILURES: dict[str, Callable[[], Exception]] = {
    "OperationalError": lambda: OperationalError("server closed the connection unexpectedly"),
    "InterfaceError": lambda: InterfaceError("connection already closed"),
}
#: The error a test's failing database raises (set by the ``db_failure`` fixture).
failing_db: list[Exception] = []


@pytest.fixture(params=sorted(DB_FAILURES))
def db_failure(request: pytest.FixtureRequest) -> Iterator[str]:
    """The name of the database error a test's failing reads raise (as ``failing_db[0]``), once each."""
    name: str = request.param
    failing_db[:] = [DB_FAILURES[name]()]
    yield name
    failing_db.clear()
