"""What the scope policy costs per request, as ratios against bare Django measured in the same run.

    .venv/bin/python benchmarks/scope_overhead.py [--requests 4000] [--rounds 7]

Requests go straight through Django's WSGI handler (no test client), with database sessions on SQLite
and the local-memory cache. Printed:

- a scope-protected request on a fresh session vs a ``@login_required`` view behind plain session login;
- an anonymous request with the app's middleware vs without it;
- provider calls per 1000 requests from one session (freshness window 60 s), and from 4 workers
  (threads with their own handler) sharing the cache and the session.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

from benchmarks.wsgi_timing import APP_MIDDLEWARE, BARE_MIDDLEWARE  # noqa: E402

DB = Path(tempfile.mkdtemp()) / "bench.sqlite3"

settings.configure(
    DEBUG=False,
    SECRET_KEY="benchmark",
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django_duo_oidc",
    ],
    MIDDLEWARE=APP_MIDDLEWARE,
    ROOT_URLCONF=__name__,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DB)}},
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    AUTHENTICATION_BACKENDS=["django_duo_oidc.backends.DuoOIDCBackend"],
    SESSION_ENGINE="django.contrib.sessions.backends.db",
    USE_TZ=True,
    DUO_OIDC={"HTTP_SESSION_FACTORY": "tests.fakeop.session_factory", "REVALIDATE_SECONDS": 60},
    LOGGING_CONFIG=None,
)
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.decorators import login_required  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

from benchmarks.wsgi_timing import call, handler, interleaved, report, timed  # noqa: E402
from django_duo_oidc.login import session as stored  # noqa: E402
from django_duo_oidc.models import Provider  # noqa: E402
from django_duo_oidc.policy.decorators import scopes_required  # noqa: E402
from tests import fakeop  # noqa: E402


@login_required
def bare_view(request):  # type: ignore[no-untyped-def]
    return HttpResponse("ok")


@scopes_required("crm.contacts.read")
def scoped_view(request):  # type: ignore[no-untyped-def]
    return HttpResponse("ok")


def plain_view(request):  # type: ignore[no-untyped-def]
    return HttpResponse("ok")


urlpatterns = [path("bare/", bare_view), path("scoped/", scoped_view), path("plain/", plain_view)]


def fresh_session(user_id: int) -> str:
    store = SessionStore()
    store["_auth_user_id"] = str(user_id)
    store["_auth_user_backend"] = "django_duo_oidc.backends.DuoOIDCBackend"
    store["_auth_user_hash"] = get_user_model().objects.get(pk=user_id).get_session_auth_hash()
    now = time.time()
    store["duo_oidc"] = stored.with_tokens(
        {
            "provider": "duo",
            "sub": "alice",
            "expires_at": now + 3600,
            "issued_at": now,
            "scopes": "crm.contacts.read email openid profile",
            "auth_time": now,
            "login_at": now,
            "checked_at": now,
        },
        access_token="unused",  # sealed, as a real login stores it
        refresh_token=None,
    )
    store.create()
    return store.session_key  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("alice")
    op = fakeop.FakeOP()
    fakeop.CURRENT = op
    os.environ["DUO_BENCH_SECRET"] = op.client_secret
    Provider.objects.create(
        slug="duo",
        name="Duo",
        issuer=op.issuer,
        client_id=op.client_id,
        client_secret_env="DUO_BENCH_SECRET",
        is_default=True,
    )
    cookie = {"Cookie": f"sessionid={fresh_session(user.pk)}"}
    bare, app = handler(BARE_MIDDLEWARE), handler(APP_MIDDLEWARE)
    assert call(bare, "/bare/", cookie).startswith("200")
    assert call(app, "/scoped/", cookie).startswith("200")

    # Interleave the cases round by round so drift hits them alike. Ratios use each case's best round
    # (as timeit does: noise only ever adds time); medians are printed beside them.
    cases = {
        "bare @login_required (db session)": (bare, "/bare/", cookie),
        "@scopes_required, fresh session": (app, "/scoped/", cookie),
        "anonymous, bare middleware": (bare, "/plain/", None),
        "anonymous, with DuoOIDCMiddleware": (app, "/plain/", None),
    }
    for h, url, c in cases.values():
        timed(h, url, c, 300)  # warm up
    best, med = interleaved(cases, args.rounds, args.requests // args.rounds)
    print(f"Django {django.get_version()}, Python {sys.version.split()[0]}, {args.requests} requests per case")
    report(cases, best, med)

    def ratio(a: str, b: str, stats: dict[str, float]) -> float:
        return stats[a] / stats[b]

    pairs = {
        "scope-protected / bare login_required": (
            "@scopes_required, fresh session",
            "bare @login_required (db session)",
            1.05,
        ),
        "anonymous with / without middleware  ": (
            "anonymous, with DuoOIDCMiddleware",
            "anonymous, bare middleware",
            1.02,
        ),
    }
    for label, (a, b, goal) in pairs.items():
        print(f"  ratio {label}: {ratio(a, b, best):.3f}x (median {ratio(a, b, med):.3f}x)  goal <= {goal}x")

    # Provider calls per 1000 requests: one session whose window has just passed.
    def stale_session() -> str:
        key = fresh_session(user.pk)
        store = SessionStore(session_key=key)
        data = store["duo_oidc"]
        data.update(checked_at=0)
        store["duo_oidc"] = stored.with_tokens(data, access_token="live-token", refresh_token=None)
        store.save()
        op.tokens["live-token"] = {"sub": "alice", "scope": "openid crm.contacts.read", "active": True}
        return key

    op.calls.clear()
    key = stale_session()
    for _ in range(1000):
        call(app, "/scoped/", {"Cookie": f"sessionid={key}"})
    print(
        f"  provider calls per 1000 requests, 1 worker:  {len(op.calls)} "
        f"({op.count('token_introspection')} introspection)"
    )

    op.calls.clear()
    from django.core.cache import cache

    cache.clear()
    key = stale_session()
    workers = [handler(APP_MIDDLEWARE) for _ in range(4)]

    def run(h: WSGIHandler) -> None:
        for _ in range(250):
            call(h, "/scoped/", {"Cookie": f"sessionid={key}"})

    threads = [threading.Thread(target=run, args=(h,)) for h in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(
        f"  provider calls per 1000 requests, 4 workers sharing the cache: {len(op.calls)} "
        f"({op.count('token_introspection')} introspection)"
    )


if __name__ == "__main__":
    main()
