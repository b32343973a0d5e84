"""The app on a project set up exactly as README.md's "Quick start" says, on top of ``startproject``.

The example project sets what the Quick start does not (``LOGOUT_REDIRECT_URL``, templates, ...), so
a default that only the example covers can crash real projects unnoticed (issue 10 item 7: logout
raised a TypeError with Django's default ``LOGOUT_REDIRECT_URL = None`` and left the user logged in).
Here ``django-admin startproject`` writes the project into a temporary folder, the test appends the
Quick start's lines, and a subprocess runs real requests against it with that settings module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.docblocks import labelled_blocks

ROOT = Path(__file__).resolve().parents[2]

# README.md, "Quick start": the lines it adds at the end of settings.py and its urls.py, read from the
# README itself (the blocks marked <!-- quickstart: settings --> and <!-- quickstart: urls -->), so the
# README cannot say something this test does not run.
QUICK_START = labelled_blocks(ROOT / "README.md", "quickstart")


# Runs inside the generated project. What it adds to the project is test harness only: the test
# environment (as Django's test runner sets it up), the database migrated, a provider created with
# the Quick start's management command, and the in-process fake provider as the HTTP transport.
SCRIPT = """
import json, os, sys
import django
from django.conf import settings

django.setup()
from django.core.management import call_command
from django.test import Client
from django.test.utils import setup_test_environment
from urllib.parse import parse_qs, urlsplit

from tests import fakeop

setup_test_environment()
settings.DUO_OIDC = {"HTTP_SESSION_FACTORY": "tests.fakeop.session_factory"}
call_command("migrate", verbosity=0)
op = fakeop.FakeOP()
fakeop.CURRENT = op
os.environ["DUO_CLIENT_SECRET"] = op.client_secret
call_command(
    "duo_oidc_provider", "duo", "--issuer", op.issuer, "--client-id", op.client_id,
    "--client-secret-env", "DUO_CLIENT_SECRET", "--scopes", "openid profile email", "--default",
    stdout=open(os.devnull, "w"),
)
results = {}
client = Client(raise_request_exception=False)

start = client.get("/oidc/login/?next=/after/")
location = start.get("Location", "")
results["login_start"] = {"status": start.status_code, "location": location.split("?")[0]}

callback = client.get("/oidc/callback/?" + op.authorize(location)) if start.status_code == 302 else None
results["callback"] = {
    "status": callback.status_code if callback else None,
    "location": callback.get("Location") if callback else None,
    "logged_in": "_auth_user_id" in client.session,
}

logout = client.post("/oidc/logout/")
results["logout"] = {
    "status": logout.status_code,
    "location": logout.get("Location"),
    "logged_in": "_auth_user_id" in client.session,
    "login_data": "duo_oidc" in client.session,
}

anonymous = Client(raise_request_exception=False)
logout = anonymous.post("/oidc/logout/")
results["anonymous_logout"] = {"status": logout.status_code, "location": logout.get("Location")}

bad = Client(raise_request_exception=False).get("/oidc/callback/?state=forged&code=x")
results["bad_state"] = {"status": bad.status_code, "content_type": bad.get("Content-Type", ""),
                        "body": bad.content.decode(errors="replace")[:4000]}

# An access-log line for the callback, as runserver writes it: the Quick start's LOGGING redacts it.
import io, logging
stream = io.StringIO()
logging.getLogger("django.server").handlers[0].setStream(stream)
logging.getLogger("django.server").info(
    '"%s" %s %s', "GET /oidc/callback/?code=THE-CODE&state=THE-STATE HTTP/1.1", "302", "0",
    extra={"status_code": 302, "server_time": "01/Dec/2026 19:00:00"},
)
results["access_log"] = stream.getvalue()
print("RESULTS " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def stock(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Results of the scripted requests against a fresh ``startproject`` plus the Quick start."""
    base = tmp_path_factory.mktemp("stock")
    subprocess.run([sys.executable, "-m", "django", "startproject", "mysite", str(base)], check=True)
    with open(base / "mysite" / "settings.py", "a") as settings_file:
        settings_file.write("\n" + QUICK_START["settings"].text)
    (base / "mysite" / "urls.py").write_text(QUICK_START["urls"].text)
    (base / "run_requests.py").write_text(textwrap.dedent(SCRIPT))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mysite.settings",
        "PYTHONPATH": os.pathsep.join([str(base), str(ROOT)]),
    }
    done = subprocess.run(
        [sys.executable, str(base / "run_requests.py")],
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULTS ")]
    assert done.returncode == 0 and lines, done.stdout + done.stderr
    return dict(json.loads(lines[-1][len("RESULTS ") :]))


def test_login_start_redirects_to_the_provider(stock: dict[str, Any]) -> None:
    from tests.fakeop import ISSUER

    assert stock["login_start"] == {"status": 302, "location": f"{ISSUER}/authorize"}
    assert stock["callback"] == {"status": 302, "location": "/after/", "logged_in": True}


def test_logout_logs_out_and_redirects_to_the_root(stock: dict[str, Any]) -> None:
    # The Quick start sets LOGOUT_REDIRECT_URL = "/" (Django's default None is tested in process below).
    assert stock["logout"] == {"status": 302, "location": "/", "logged_in": False, "login_data": False}
    assert stock["anonymous_logout"] == {"status": 302, "location": "/"}


def test_the_quick_start_is_what_this_test_runs() -> None:
    assert set(QUICK_START) == {"settings", "urls"}
    assert all(block.language == "python" for block in QUICK_START.values())
    settings_text = QUICK_START["settings"].text
    for line in (
        '"django_duo_oidc.middleware.DuoOIDCMiddleware"',
        'LOGOUT_REDIRECT_URL = "/"',
        '"()": "django_duo_oidc.log_filters.RedactOAuthParams"',
    ):
        assert line in settings_text


def test_the_access_log_of_the_callback_is_redacted(stock: dict[str, Any]) -> None:
    line = stock["access_log"]
    assert line == '[01/Dec/2026 19:00:00] "GET /oidc/callback/?code=[redacted]&state=[redacted] HTTP/1.1" 302 0\n'


def test_callback_with_a_bad_state_is_a_400_page(stock: dict[str, Any]) -> None:
    assert stock["bad_state"]["status"] == 400, stock["bad_state"]["body"]
    assert stock["bad_state"]["content_type"].startswith("text/html")
    assert "Traceback" not in stock["bad_state"]["body"]


# The same default in process, with provider logout on (its post_logout_redirect_uri needs the URL too).


@pytest.mark.django_db
def test_provider_logout_with_the_default_logout_redirect_url(
    client: Any, settings: Any, fake_op: Any, provider: Any
) -> None:
    from tests.conftest import query

    from .test_login_views import login, me

    settings.LOGOUT_REDIRECT_URL = None  # Django's default
    fake_op.discovery_overrides["end_session_endpoint"] = f"{fake_op.issuer}/logout"
    provider.end_session = True
    provider.save()
    login(client, fake_op)
    location = client.post("/oidc/logout/")["Location"]
    assert query(location)["post_logout_redirect_uri"] == "http://testserver/"
    assert me(client) == {"authenticated": False}
    settings.LOGOUT_REDIRECT_URL = "admin:index"  # a URL name, as Django allows
    login(client, fake_op)
    assert query(client.post("/oidc/logout/")["Location"])["post_logout_redirect_uri"] == "http://testserver/admin/"
