"""Acting for the user against the REAL provider (panva/oidc-provider, tests/provider): the example's
``/me/upstream/`` calls its own ``/api/contacts/`` with the signed-in user's token and shows what the
API saw; with the RFC 8707 resource ``urn:crm`` on the provider row the renewed token is a JWT whose
audience is ``urn:crm``; logout revokes the refresh token (RFC 7009: introspection then says inactive).

This module runs its own site and provider on free ports. The session store
is read with ``manage.py shell`` (the site's own settings and keys) only to learn what the browser must
never see, and to move a login's expiry back in time.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import pytest
import requests

from .conftest import ROOT, SECRET, Site, free_port, login, real_provider, site_env, wait_http

AUTH = (quote_plus("django-basic"), quote_plus(SECRET))  # RFC 6749 section 2.3.1 encoding

# Prints the stored login of the session named by argv, its tokens opened; with "age", moves the access
# token's expiry into the past first (as if its lifetime had passed).
SESSION_SCRIPT = """
import json, sys, time
from django.contrib.sessions.backends.db import SessionStore
from django_duo_oidc.login import session as stored
store = SessionStore(sys.argv[2])  # argv: -c, this script, the key[, "age"]
data = dict(store["duo_oidc"])
if sys.argv[3:] == ["age"]:
    data.update(expires_at=time.time() - 1, issued_at=time.time() - 700)
    store["duo_oidc"] = data
    store.save()
print(json.dumps({"access_token": stored.access_token(data), "refresh_token": stored.refresh_token(data),
                  "scopes": data["scopes"]}))
"""


@pytest.fixture(scope="module")
def act_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site_port, op_port = free_port(), free_port()
    base = f"http://127.0.0.1:{site_port}"
    tmp = tmp_path_factory.mktemp("e2e-act")
    env = site_env(base, tmp, PYTHONUNBUFFERED="1", OP_PORT=str(op_port), DUO_OIDC_REVALIDATE_SECONDS="60")
    with real_provider(env) as issuer:
        site = Site(base=base, issuer=issuer, env=env)
        site.manage("migrate", "--verbosity", "0")
        site.manage(
            "duo_oidc_provider", "duo", "--issuer", issuer, "--client-id", "django-basic",
            "--client-secret-env", "DUO_CLIENT_SECRET", "--scopes", "openid profile email groups", "--default",
            "--access-token-validation", "introspection", "--audience", "django-basic urn:crm", "--check",
        )  # fmt: skip
        log = open(tmp / "runserver.log", "w")  # noqa: SIM115
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{site_port}", "--noreload"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(base + "/me/", process=server)
            site.log_path = tmp / "runserver.log"  # type: ignore[attr-defined]
            yield site
        finally:
            server.terminate()
            server.wait(timeout=10)


def stored_login(site: Site, http: requests.Session, *, age: bool = False) -> dict[str, str]:
    args = [http.cookies["sessionid"], *(["age"] if age else [])]
    done = subprocess.run(
        [sys.executable, "-c", "import sys, django; django.setup(); exec(sys.argv[1])", SESSION_SCRIPT, *args],
        env={**site.env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def introspect(site: Site, token: str, hint: str) -> dict[str, object]:
    response = requests.post(
        site.issuer + "/token/introspection", data={"token": token, "token_type_hint": hint}, auth=AUTH, timeout=5
    )
    assert response.status_code == 200, response.text
    return response.json()


def jwt_parts(token: str) -> tuple[dict[str, object], dict[str, object]]:
    def decode(part: str) -> dict[str, object]:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    header, payload, _signature = token.split(".")
    return decode(header), decode(payload)


def sent_to_browser(response: requests.Response) -> str:
    history = [*response.history, response]
    return "\n".join(f"{r.url}\n{dict(r.headers)}\n{r.text}" for r in history)


def test_me_upstream_shows_alice_and_her_scopes(act_site: Site) -> None:
    http = requests.Session()
    seen = [login(http, act_site, "/oidc/login/?provider=duo&scope=crm.contacts.read&next=/me/")]
    seen.append(http.get(act_site.base + "/me/", timeout=10))
    upstream = http.get(act_site.base + "/me/upstream/", timeout=10)
    seen.append(upstream)
    assert upstream.status_code == 200, upstream.text
    body = upstream.json()
    assert body["api_saw"]["caller"] == {"sub": "alice", "username": "alice@example.test"}
    assert "crm.contacts.read" in body["api_saw"]["scopes"]
    tokens = stored_login(act_site, http)
    browser = "\n".join(sent_to_browser(r) for r in seen) + "\n" + str(http.cookies.get_dict())
    for token in (tokens["access_token"], tokens["refresh_token"]):
        assert token and token not in browser
    assert tokens["access_token"] not in Path(act_site.log_path).read_text()  # type: ignore[attr-defined]


def test_with_the_resource_urn_crm_the_renewed_token_is_a_jwt_for_that_api(act_site: Site) -> None:
    # The API validates the RFC 9068 JWT itself: the provider does not introspect a token for urn:crm
    # for this client (unsupported_token_type).
    act_site.manage("duo_oidc_provider", "duo", "--resource", "urn:crm", "--access-token-validation", "jwt")
    changed = time.monotonic()
    try:
        http = requests.Session()
        done = login(http, act_site, "/oidc/login/?provider=duo&scope=crm.contacts.read&next=/me/")
        assert done.status_code == 302 and done.headers["Location"] == "/me/", done.text
        before = stored_login(act_site, http, age=True)  # its lifetime has passed
        assert http.get(act_site.base + "/me/", timeout=10).json()["authenticated"] is True  # renewed here
        after = stored_login(act_site, http)
        assert after["access_token"] != before["access_token"]
        header, claims = jwt_parts(after["access_token"])
        assert header["typ"] == "at+jwt"  # RFC 9068
        assert claims["aud"] == "urn:crm" and claims["sub"] == "alice"
        time.sleep(max(0.0, changed + 5.2 - time.monotonic()))  # the API re-reads provider rows every 5 s
        upstream = http.get(act_site.base + "/me/upstream/", timeout=10)
        assert upstream.status_code == 200, upstream.text
        assert upstream.json()["api_saw"] == {
            "caller": {"sub": "alice", "username": "alice@example.test"},
            "scopes": ["crm.contacts.read"],  # what the provider put in the token for urn:crm
        }
    finally:
        act_site.manage(
            "duo_oidc_provider", "duo", "--resource", "", "--access-token-validation", "introspection"
        )  # later tests do not call the API


def test_logout_revokes_the_refresh_token(act_site: Site) -> None:
    http = requests.Session()
    login(http, act_site)
    tokens = stored_login(act_site, http)
    assert introspect(act_site, tokens["refresh_token"], "refresh_token")["active"] is True
    http.get(act_site.base + "/me/", timeout=10)  # the CSRF cookie
    logout = http.post(
        act_site.base + "/oidc/logout/",
        headers={"X-CSRFToken": http.cookies["csrftoken"], "Referer": act_site.base + "/me/"},
        allow_redirects=False,
        timeout=10,
    )
    assert logout.status_code == 302
    assert http.get(act_site.base + "/me/", timeout=10).json() == {"authenticated": False}
    assert introspect(act_site, tokens["refresh_token"], "refresh_token")["active"] is False
    assert introspect(act_site, tokens["access_token"], "access_token")["active"] is False
