"""Timing helpers shared by the benchmarks: requests straight through Django's WSGI handler."""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

# Wall time by default; BENCH_CLOCK=cpu measures this process's CPU time instead, for a machine shared
# with other work (waiting for a core then adds nothing; what the request computes is what is counted).
CLOCK = time.process_time if os.environ.get("BENCH_CLOCK") == "cpu" else time.perf_counter

# Django's default middleware (the floor) and the same with the app's middleware after it.
BARE_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
APP_MIDDLEWARE = [*BARE_MIDDLEWARE, "django_duo_oidc.middleware.DuoOIDCMiddleware"]


def handler(middleware: list[str]) -> Any:
    """A WSGI handler whose middleware chain is ``middleware`` (built once, here)."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    with override_settings(MIDDLEWARE=middleware):
        return WSGIHandler()


def environ(url: str, headers: dict[str, str] | None = None) -> dict[str, object]:
    env: dict[str, object] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": url,
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
    }
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def call(h: Any, url: str, headers: dict[str, str] | None = None) -> str:
    """Send one GET; return the status line."""
    status: list[str] = []
    body = h(environ(url, headers), lambda s, _headers: status.append(s))
    b"".join(body)
    return status[0]


def timed(h: Any, url: str, headers: Callable[[], dict[str, str] | None] | dict[str, str] | None, n: int) -> float:
    """Seconds per request over ``n`` requests; ``headers`` may be a function (a new token each time)."""
    make = headers if callable(headers) else (lambda: headers)
    prepared = [make() for _ in range(n)]  # built before the clock starts
    start = CLOCK()
    for h_headers in prepared:
        call(h, url, h_headers)
    return (CLOCK() - start) / n


def interleaved(
    cases: dict[str, tuple[Any, ...]], rounds: int, per_round: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Run the cases round by round so drift hits them alike; return (best, median) seconds per request.

    Ratios use each case's best round (as timeit does: noise only ever adds time).
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (h, url, headers) in cases.items():
            samples[name].append(timed(h, url, headers, per_round))
    return (
        {name: min(v) for name, v in samples.items()},
        {name: statistics.median(v) for name, v in samples.items()},
    )


def report(names: Iterable[str], best: dict[str, float], median: dict[str, float]) -> None:
    for name in names:
        print(f"  {name:44s} best {best[name] * 1e6:8.1f} us  median {median[name] * 1e6:8.1f} us")
