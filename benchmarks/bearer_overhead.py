"""What bearer-token APIs cost per request, as ratios against a bare Django view measured in the same run.

    .venv/bin/python benchmarks/bearer_overhead.py [--requests 3000] [--rounds 10]

Requests go straight through Django's WSGI handler. The floor is a view with no authentication at
all behind Django's default middleware. Printed:

- a token already seen (jwt mode), on a plain view (@bearer_auth + @scopes_required) and on DRF;
- a new token on every request (jwt mode: parse, RS256 verify, claims), against the floor plus 80 us;
- PyJWT's jwt.decode on every request, for reference (what "parse once" saves);
- mozilla-django-oidc's DRF class (userinfo on every request) and django-oauth-toolkit's
  introspection (if installed: ``pip install django-oauth-toolkit``), both against a stub provider
  in another process over real HTTP;
- provider calls per 1000 requests: jwt mode, jwt+introspection mode, a flood of unknown kids;
- the example's ``/api/contacts/`` (issue 14, "the bearer user path, free"), against the API floor (the
  same JSON answer from a view with no authentication): a seen token whose view reads ``request.user``
  (goal <= 1.3x), a refused token sent again (forged signature, goal <= 1.5x), a new token every
  request (jwt, goal <= floor + 80 us), and provider calls per 1000 requests.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

from benchmarks.wsgi_timing import APP_MIDDLEWARE, BARE_MIDDLEWARE  # noqa: E402

try:
    import oauth2_provider  # noqa: F401

    HAVE_DOT = True
except ImportError:
    HAVE_DOT = False

DB = Path(tempfile.mkdtemp()) / "bench.sqlite3"
STUB_PORT = int(os.environ.get("BENCH_STUB_PORT", "18299"))  # a free port of your own when running in parallel

settings.configure(
    DEBUG=False,
    SECRET_KEY="benchmark",
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "rest_framework",
        "django_duo_oidc",
        *(["oauth2_provider"] if HAVE_DOT else []),
    ],
    MIDDLEWARE=APP_MIDDLEWARE,
    ROOT_URLCONF=__name__,
    # Persistent connections, as production sites run: a new subject costs its identity lookup, not a
    # connection opened per request (what CONN_MAX_AGE=0 would add to any request that touches the database).
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DB), "CONN_MAX_AGE": None}},
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    USE_TZ=True,
    DUO_OIDC={"HTTP_SESSION_FACTORY": "tests.fakeop.session_factory", "REVALIDATE_SECONDS": 60},
    # mozilla-django-oidc: userinfo at the stub provider on every request.
    OIDC_OP_USER_ENDPOINT=f"http://127.0.0.1:{STUB_PORT}/userinfo",
    OIDC_RP_CLIENT_ID="bench",
    OIDC_RP_CLIENT_SECRET="bench",
    OIDC_OP_TOKEN_ENDPOINT=f"http://127.0.0.1:{STUB_PORT}/token",
    OIDC_OP_AUTHORIZATION_ENDPOINT=f"http://127.0.0.1:{STUB_PORT}/auth",
    OIDC_RP_SIGN_ALGO="RS256",
    OIDC_DRF_AUTH_BACKEND="mozilla_django_oidc.auth.OIDCAuthenticationBackend",
    OIDC_OP_JWKS_ENDPOINT=f"http://127.0.0.1:{STUB_PORT}/jwks",
    OAUTH2_PROVIDER={
        "RESOURCE_SERVER_INTROSPECTION_URL": f"http://127.0.0.1:{STUB_PORT}/introspect",
        "RESOURCE_SERVER_INTROSPECTION_CREDENTIALS": ("bench", "bench"),
    },
    LOGGING_CONFIG=None,
)
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.permissions import IsAuthenticated  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from benchmarks.wsgi_timing import call, handler, interleaved, report  # noqa: E402
from django_duo_oidc import resource  # noqa: E402
from django_duo_oidc.contrib.drf import DuoBearerAuthentication, HasScopes  # noqa: E402
from django_duo_oidc.models import Identity, Provider  # noqa: E402
from django_duo_oidc.policy.decorators import scopes_required  # noqa: E402
from django_duo_oidc.resource.views import bearer_auth  # noqa: E402
from example_project.views import CONTACTS, api_contacts  # noqa: E402
from tests import fakeop  # noqa: E402

OP = fakeop.FakeOP()
PUBLIC_KEY = OP.key.public_key()


def plain_view(request):  # type: ignore[no-untyped-def]
    return HttpResponse("ok")


@bearer_auth
@scopes_required("crm.contacts.read")
def bearer_view(request):  # type: ignore[no-untyped-def]
    return HttpResponse("ok")


def pyjwt_view(request):  # type: ignore[no-untyped-def]
    import jwt

    token = request.META["HTTP_AUTHORIZATION"][7:]
    claims = jwt.decode(token, PUBLIC_KEY, algorithms=["RS256"], audience=OP.client_id, issuer=OP.issuer)
    assert "crm.contacts.read" in claims["scope"].split()
    return HttpResponse("ok")


def api_floor(request):  # type: ignore[no-untyped-def]
    """The example's /api/contacts/ answer with no authentication at all: the API floor."""
    return JsonResponse({"contacts": CONTACTS, "caller": {"sub": None, "username": None}, "scopes": []})


class OursDRF(APIView):
    authentication_classes = [DuoBearerAuthentication]
    permission_classes = [HasScopes]
    required_scopes = "crm.contacts.read"

    def get(self, request):  # type: ignore[no-untyped-def]
        return Response("ok")


class BareDRF(APIView):
    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    def get(self, request):  # type: ignore[no-untyped-def]
        return Response("ok")


class MozillaDRF(APIView):
    from mozilla_django_oidc.contrib.drf import OIDCAuthentication

    authentication_classes = [OIDCAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):  # type: ignore[no-untyped-def]
        return Response("ok")


urlpatterns = [
    path("plain/", plain_view),
    path("bearer/", bearer_view),
    path("pyjwt/", pyjwt_view),
    path("drf/bare/", BareDRF.as_view()),
    path("drf/ours/", OursDRF.as_view()),
    path("drf/mozilla/", MozillaDRF.as_view()),
    path("api/floor/", api_floor),
    path("api/contacts/", api_contacts),
]

if HAVE_DOT:
    from oauth2_provider.contrib.rest_framework import OAuth2Authentication

    class ToolkitDRF(APIView):
        authentication_classes = [OAuth2Authentication]
        permission_classes = [IsAuthenticated]

        def get(self, request):  # type: ignore[no-untyped-def]
            return Response("ok")

    urlpatterns.append(path("drf/toolkit/", ToolkitDRF.as_view()))

STUB = r"""
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def do_GET(self):
        self.answer({"sub": "alice", "email": "alice@example.test"})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer({"active": True, "scope": "crm.contacts.read", "exp": int(time.time()) + 3600,
                     "username": "alice", "client_id": "bench"})
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def token(sub: str = "alice", **header: object) -> str:
    now = int(time.time())
    claims = {"iss": OP.issuer, "sub": sub, "aud": OP.client_id, "exp": now + 3600, "iat": now}
    return OP.sign({**claims, "scope": "crm.contacts.read", "jti": secrets.token_hex(8)}, header or None)


def bearer_header(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    per_round = args.requests // args.rounds

    call_command("migrate", verbosity=0)
    alice = get_user_model().objects.create_user("alice", email="alice@example.test")
    fakeop.CURRENT = OP
    os.environ["DUO_BENCH_SECRET"] = OP.client_secret
    provider = Provider.objects.create(
        slug="duo", name="Duo", issuer=OP.issuer, client_id=OP.client_id, client_secret_env="DUO_BENCH_SECRET",
        is_default=True, access_token_validation=Provider.AccessTokenValidation.JWT,
    )  # fmt: skip
    Identity.objects.create(provider=provider, sub="alice", user=alice)  # request.user is alice
    stub = subprocess.Popen([sys.executable, "-c", STUB, str(STUB_PORT)])  # noqa: S603 - our own stub
    try:
        time.sleep(0.5)
        run(args, per_round, provider)
    finally:
        stub.terminate()
        stub.wait()


def run(args: argparse.Namespace, per_round: int, provider: Provider) -> None:
    logging.disable(logging.WARNING)  # refusals are logged per request; the figures are the output
    floor, app = handler(BARE_MIDDLEWARE), handler(APP_MIDDLEWARE)
    seen = bearer_header(token())
    print(f"Minting {2 * (args.requests + 300)} tokens for the new-token cases...", file=sys.stderr)
    fresh = iter([bearer_header(token()) for _ in range(args.requests + 300)])  # one subject, new tokens
    strangers = iter([bearer_header(token(f"user-{i}")) for i in range(args.requests + 300)])  # new subjects
    for h, url, headers in ((floor, "/plain/", None), (app, "/bearer/", seen), (app, "/drf/ours/", seen)):
        assert call(h, url, headers).startswith("200"), url

    cases: dict[str, tuple[object, ...]] = {
        "floor: bare view, no authentication": (floor, "/plain/", None),
        "ours: seen token, @bearer_auth (jwt)": (app, "/bearer/", seen),
        "DRF floor: APIView, no authentication": (floor, "/drf/bare/", None),
        "ours: seen token, DRF class (jwt)": (app, "/drf/ours/", seen),
        "ours: new token every request (jwt)": (app, "/bearer/", lambda: next(fresh)),
        "ours: new token, new subject every request": (app, "/bearer/", lambda: next(strangers)),
        "reference: PyJWT decode every request": (app, "/pyjwt/", seen),
        "mozilla-django-oidc DRF (userinfo)": (app, "/drf/mozilla/", seen),
    }
    if HAVE_DOT:
        cases["django-oauth-toolkit (introspection)"] = (app, "/drf/toolkit/", seen)
    for h, url, headers in cases.values():
        assert call(h, url, headers if not callable(headers) else headers()).startswith("200"), url  # warm up
    best, med = interleaved(cases, args.rounds, per_round)
    print(f"Django {django.get_version()}, Python {sys.version.split()[0]}, {args.requests} requests per case")
    report(cases, best, med)
    floor_best, floor_med = best["floor: bare view, no authentication"], med["floor: bare view, no authentication"]
    for name in list(cases)[1:]:
        print(f"  ratio {name:44s} {best[name] / floor_best:6.2f}x (median {med[name] / floor_med:6.2f}x)")
    drf = best["ours: seen token, DRF class (jwt)"] / best["DRF floor: APIView, no authentication"]
    print(f"  ratio ours DRF class / DRF floor: {drf:.2f}x")
    print("  goals: seen token <= 1.3x the floor")
    extra = (best["ours: new token every request (jwt)"] - floor_best) * 1e6
    print(f"  new token every request: floor + {extra:.1f} us (goal <= floor + 80 us)")
    lookup = (best["ours: new token, new subject every request"] - best["ours: new token every request (jwt)"]) * 1e6
    print(f"  a subject never seen: + {lookup:.1f} us more (one indexed query for its user, to refuse inactive ones)")
    if not HAVE_DOT:
        print("  django-oauth-toolkit: not installed (pip install django-oauth-toolkit to compare)")

    print("Provider calls per 1000 requests (in-process fake provider, calls counted):")
    OP.calls.clear()
    tokens = [bearer_header(token(f"u{i}")) for i in range(10)]
    for i in range(1000):
        call(app, "/bearer/", tokens[i % 10])
    print(f"  jwt mode, 10 tokens:                    {len(OP.calls)} calls")

    provider.access_token_validation = Provider.AccessTokenValidation.JWT_INTROSPECTION
    provider.save()
    resource.reset()
    OP.calls.clear()
    for t in tokens:
        OP.tokens[t["Authorization"][7:]] = {"sub": "u", "scope": "crm.contacts.read", "active": True}
    for i in range(1000):
        call(app, "/bearer/", tokens[i % 10])
    print(f"  jwt+introspection, 10 tokens, 1 window: {OP.count('token_introspection')} introspections")

    provider.access_token_validation = Provider.AccessTokenValidation.JWT
    provider.save()
    resource.reset()
    OP.calls.clear()
    for i in range(1000):
        status = call(app, "/bearer/", bearer_header(token(kid=f"forged-{i}")))
        assert status.startswith("401"), status
    print(f"  1000 unknown kids:                      {OP.count('jwks')} JWKS fetches (goal <= 1 per minute)")
    print(json.dumps({"floor_us": round(floor_best * 1e6, 1)}), file=sys.stderr)
    run_api(args, per_round)


def run_api(args: argparse.Namespace, per_round: int) -> None:
    """The example's /api/contacts/ (its view reads request.user), against the API floor."""
    resource.reset()
    floor, app = handler(BARE_MIDDLEWARE), handler(APP_MIDDLEWARE)
    seen = bearer_header(token())
    OP.sign_with = "other-key"
    forged = bearer_header(token())  # a valid-looking token signed by a key the provider never published
    OP.sign_with = "rsa"
    fresh = iter([bearer_header(token()) for _ in range(args.requests + 300)])
    assert call(app, "/api/contacts/", seen).startswith("200")
    assert call(app, "/api/contacts/", forged).startswith("401")
    cases: dict[str, tuple[object, ...]] = {
        "API floor: same JSON, no authentication": (floor, "/api/floor/", None),
        "api: seen token, view reads request.user": (app, "/api/contacts/", seen),
        "api: refused token sent again (forged)": (app, "/api/contacts/", forged),
        "api: new token every request (jwt)": (app, "/api/contacts/", lambda: next(fresh)),
    }
    for h, url, headers in cases.values():
        call(h, url, headers if not callable(headers) else headers())  # warm up
    best, med = interleaved(cases, args.rounds, per_round)
    print("The example's /api/contacts/ (issue 14):")
    report(cases, best, med)
    names = list(cases)
    floor_best, floor_med = best[names[0]], med[names[0]]
    for name, goal in ((names[1], 1.3), (names[2], 1.5)):
        ratio = best[name] / floor_best
        print(f"  ratio {name:44s} {ratio:6.2f}x (median {med[name] / floor_med:6.2f}x)  goal <= {goal}x")
    extra = (best[names[3]] - floor_best) * 1e6
    print(f"  {names[3]}: API floor + {extra:.1f} us (goal <= floor + 80 us)")
    OP.calls.clear()
    users = [bearer_header(token(f"api-{i}")) for i in range(10)]
    for i in range(1000):
        call(app, "/api/contacts/", users[i % 10] if i % 2 else forged)
    print(f"  provider calls per 1000 requests (10 seen tokens, 1 forged, jwt): {len(OP.calls)}")


if __name__ == "__main__":
    main()
