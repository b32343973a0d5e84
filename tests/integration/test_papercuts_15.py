"""Issue 15, the small papercuts a newcomer met: client credentials that Check connection and
``duo_oidc_provider --check`` never tried, a missing secret variable found only after the user was sent
to the provider (and named on the error page), "Error 404 · server_error", an empty 405 at
``GET /oidc/logout/``, the no-credentials 401 body, ``duo_oidc_call``'s two lines about one token, and
``W003`` seen only with ``check --database default``.

Each test fails on the code before its fix (the 401 body test pins what the README must say instead).
"""

from __future__ import annotations

import io
import logging
import re
import sys
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core import checks as django_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError
from django.test import Client, override_settings

from django_duo_oidc import checks
from django_duo_oidc.core.errors import SecretUnavailable
from django_duo_oidc.login import views as login_views
from django_duo_oidc.models import Provider
from django_duo_oidc.providers.connection import (
    PLACEHOLDER_REDIRECT_URI,
    check_connection,
)
from tests.conftest import captured
from tests.fakeop import FakeOP

from .test_admin_checks_command import admin_client  # noqa: F401

pytestmark = pytest.mark.django_db

WRONG_SECRET = "wr0ng-s3cret-N0t-Th1s-One"
SECRET_VAR = "DUO_FAKE_OP_SECRET"


def credential_line(lines: list[str]) -> str:
    found = [line for line in lines if line.startswith("Client credentials:")]
    assert len(found) == 1, lines
    return found[0]


def made_up_code_requests(op: FakeOP) -> list[dict[str, list[str]]]:
    return [form for form in op.token_requests if form.get("grant_type") == ["authorization_code"]]


# 1. Check connection tries the client credentials at the token endpoint ----------------------------------


def test_a_wrong_secret_is_reported_rejected_and_never_shown(
    fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_VAR, WRONG_SECRET)
    report = check_connection(provider)
    assert not report.ok
    line = credential_line(report.lines)
    assert line.startswith("Client credentials: REJECTED: invalid_client. The token endpoint refused client id ")
    assert fake_op.client_id in line and "client_secret_basic" in line
    assert WRONG_SECRET not in " ".join(report.lines)
    assert fake_op.client_secret not in " ".join(report.lines)


def test_the_right_secret_is_reported_accepted(fake_op: FakeOP, provider: Provider) -> None:
    report = check_connection(provider)
    assert report.ok, report.lines
    assert credential_line(report.lines) == (
        "Client credentials: accepted by the token endpoint (client_secret_basic; it refused a made-up "
        "authorization code with invalid_grant, not invalid_client)."
    )
    # A made-up code, well-formed, sent as a login sends its code: HTTP Basic, nothing secret in the body.
    (form,) = made_up_code_requests(fake_op)
    assert set(form) == {"grant_type", "code", "redirect_uri", "code_verifier"}
    assert form["redirect_uri"] == [PLACEHOLDER_REDIRECT_URI]
    assert len(form["code"][0]) >= 40 and 43 <= len(form["code_verifier"][0]) <= 128
    assert "client_secret" not in form


def test_the_credentials_go_as_the_provider_row_says(
    fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.token_auth_method = "client_secret_post"
    provider.resource_indicators = "urn:crm"
    provider.use_userinfo = False
    provider.save()
    report = check_connection(provider)
    assert report.ok, report.lines
    assert "(client_secret_post;" in credential_line(report.lines)
    (form,) = made_up_code_requests(fake_op)
    assert form["client_id"] == [fake_op.client_id] and form["client_secret"] == [fake_op.client_secret]
    assert form["resource"] == ["urn:crm"]  # the login's code exchange names it too
    monkeypatch.setenv(SECRET_VAR, WRONG_SECRET)
    assert "REJECTED: invalid_client" in credential_line(check_connection(provider).lines)


@pytest.mark.parametrize(
    ("answer", "expected", "ok"),
    [
        (
            (400, {"error": "unauthorized_client"}),
            "Client credentials: accepted by the token endpoint (client_secret_basic; it refused a made-up "
            "authorization code with unauthorized_client, not invalid_client).",
            True,
        ),
        (
            (
                400,
                {
                    "error": "invalid_request",
                    "error_description": "Request was malformed",
                },
            ),
            "Client credentials: not verified: the token endpoint answered invalid_request, which does not say "
            "whether it checked them.",
            True,
        ),
        (
            (400, {"error": "unsupported_grant_type"}),
            "Client credentials: not verified: the token endpoint answered unsupported_grant_type, which does not "
            "say whether it checked them.",
            True,
        ),
        (
            (400, {"error": "<script>alert(1)</script>"}),
            "Client credentials: not verified: the token endpoint answered an unrecognised error code, which does "
            "not say whether it checked them.",
            True,
        ),
        (
            (401, b""),
            "Client credentials: not verified: the token endpoint answered HTTP 401 without an OAuth error code, "
            "which does not say whether it checked them.",
            True,
        ),
        (
            (
                403,
                {"error": "invalid_client"},
            ),  # not a status RFC 6749 section 5.2 answers with
            "Client credentials: not verified: the token endpoint answered HTTP 403 without an OAuth error code, "
            "which does not say whether it checked them.",
            True,
        ),
        (
            (302, b""),
            "Client credentials: not verified: the token endpoint's answer could not be understood.",
            True,
        ),
        (
            (503, {"error": "temporarily_unavailable"}),
            "Client credentials: not verified: the token endpoint could not be reached (or answered with a server "
            "error).",
            False,
        ),
    ],
)
def test_other_answers_are_reported_not_verified(
    fake_op: FakeOP,
    provider: Provider,
    answer: tuple[int, Any],
    expected: str,
    ok: bool,
) -> None:
    status, body = answer
    fake_op.token_endpoint = lambda request: (status, body, {})  # type: ignore[method-assign]
    report = check_connection(provider)
    assert credential_line(report.lines) == expected
    assert report.ok is ok
    assert "script" not in " ".join(report.lines) and "malformed" not in " ".join(report.lines)


def test_an_unreachable_token_endpoint_fails_the_check(fake_op: FakeOP, provider: Provider) -> None:
    fake_op.faults["token"] = "timeout"
    report = check_connection(provider)
    assert not report.ok
    assert credential_line(report.lines).startswith("Client credentials: not verified: the token endpoint could not")


def test_a_token_endpoint_that_redeems_any_code_fails_the_check(fake_op: FakeOP, provider: Provider) -> None:
    """A lying provider: tokens for a code it never issued."""

    def redeem_anything(request: Any) -> tuple[int, Any, dict[str, str]]:
        fake_op.codes["anything"] = {
            "redirect_uri": PLACEHOLDER_REDIRECT_URI,
            "challenge": "x",
        }
        token = fake_op.access_token("alice", "openid")
        return (
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "id_token": token,
                "expires_in": 60,
            },
            {},
        )

    fake_op.token_endpoint = redeem_anything  # type: ignore[method-assign]
    report = check_connection(provider)
    assert not report.ok
    assert credential_line(report.lines) == (
        "Client credentials: not verified: the token endpoint issued tokens for a made-up authorization code. "
        "Do not trust this provider."
    )


def test_no_secret_means_not_verified_and_nothing_sent(
    fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_VAR)
    report = check_connection(provider)
    assert not report.ok
    assert "The environment variable DUO_FAKE_OP_SECRET holding the client secret is not set." in report.lines
    assert credential_line(report.lines) == "Client credentials: not verified: there is no client secret to send."
    assert fake_op.count("token") == 0


def publishes_nothing(op: FakeOP, provider: Provider, **endpoints: str) -> None:
    """An issuer with no metadata at all: every endpoint set by hand on the row."""
    op.faults[".well-known/openid-configuration"] = 404
    for name, path in endpoints.items():
        setattr(provider, name, op.issuer + path)
    provider.save()


def test_no_token_endpoint_means_not_verified(fake_op: FakeOP, provider: Provider) -> None:
    publishes_nothing(fake_op, provider, authorization_endpoint="/authorize", jwks_uri="/jwks")
    report = check_connection(provider)
    assert not report.ok
    assert credential_line(report.lines) == (
        "Client credentials: not verified: there is no token endpoint to send them to."
    )
    assert fake_op.count("token") == 0


def test_the_admin_action_says_rejected_and_sends_this_sites_callback(
    admin_client: Client,  # noqa: F811
    fake_op: FakeOP,
    provider: Provider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = {"action": "check_connection_action", "_selected_action": [provider.pk]}
    text = admin_client.post("/admin/duo_oidc/provider/", data, follow=True).content.decode()
    assert "Duo works" in text and "Client credentials: accepted by the token endpoint" in text
    assert made_up_code_requests(fake_op)[-1]["redirect_uri"] == ["http://testserver/oidc/callback/"]
    monkeypatch.setenv(SECRET_VAR, WRONG_SECRET)
    text = admin_client.post("/admin/duo_oidc/provider/", data, follow=True).content.decode()
    assert "Duo has problems" in text and "Client credentials: REJECTED: invalid_client." in text
    assert WRONG_SECRET not in text


def test_the_command_check_says_rejected_and_fails(
    fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    call_command("duo_oidc_provider", "duo", "--check", stdout=out)
    assert "  Client credentials: accepted by the token endpoint" in out.getvalue()
    monkeypatch.setenv(SECRET_VAR, WRONG_SECRET)
    out = io.StringIO()
    with pytest.raises(CommandError, match="saved, but the connection check failed"):
        call_command("duo_oidc_provider", "duo", "--check", stdout=out)
    assert "  Client credentials: REJECTED: invalid_client." in out.getvalue()
    assert WRONG_SECRET not in out.getvalue()


# 2. A missing secret is found before the browser goes to the provider ------------------------------------


@pytest.fixture(autouse=True)
def _fresh_secret_reports() -> Any:
    """Each test starts with no "secret missing" ERROR logged yet in this process (the once-a-minute memo)."""
    login_views._secret_reported.clear()
    yield
    login_views._secret_reported.clear()


def assert_kind_unavailable_page(response: Any, *hidden: str) -> None:
    assert response.status_code == 503
    text = response.content.decode()
    assert "This sign-in method is not available right now. The site&#x27;s administrators have been told" in text
    assert "Error 503 &middot; temporarily_unavailable" in text
    assert "Location" not in response
    for value in hidden:
        assert value not in text


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The library's log lines, from INFO up."""
    caplog.set_level(logging.INFO, logger="django_duo_oidc")
    return caplog


def secret_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "django_duo_oidc"]


@pytest.mark.parametrize("url", ["/oidc/login/?provider=duo&next=/me/", "/oidc/login/"])
def test_an_unset_secret_variable_stops_the_login_before_the_provider(
    client: Client,
    fake_op: FakeOP,
    provider: Provider,
    monkeypatch: pytest.MonkeyPatch,
    log: Any,
    url: str,
) -> None:
    monkeypatch.delenv(SECRET_VAR)
    assert_kind_unavailable_page(client.get(url), SECRET_VAR)
    assert fake_op.calls == []  # not even discovery: nobody was sent anywhere
    assert "oidc_states" not in client.session
    (record,) = secret_errors(log)
    assert record.getMessage() == (
        "Provider duo cannot be used to sign in: The environment variable DUO_FAKE_OP_SECRET holding the client "
        "secret is not set."
    )


def test_a_variable_not_allowed_is_named_in_the_log_never_its_value(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch, log: Any
) -> None:
    """A row written around validation naming another variable (HOME): its value is never read out."""
    monkeypatch.setenv("HOME", "/home/h0me-value-never-shown")
    Provider.objects.filter(pk=provider.pk).update(client_secret_env="HOME")
    assert_kind_unavailable_page(client.get("/oidc/login/?provider=duo"), "HOME", "h0me-value-never-shown")
    (record,) = secret_errors(log)
    assert record.getMessage().startswith(
        "Provider duo cannot be used to sign in: The provider's client-secret variable HOME is not allowed."
    )
    assert "h0me-value-never-shown" not in log.text


def test_an_undecryptable_stored_secret_stops_the_login(
    client: Client, fake_op: FakeOP, provider: Provider, log: Any
) -> None:
    with override_settings(DUO_OIDC={"ENCRYPTION_KEYS": [Fernet.generate_key().decode()]}):
        provider.client_secret_env = ""
        provider.set_client_secret("st0red-secret")
        provider.save()
    with override_settings(DUO_OIDC={"ENCRYPTION_KEYS": [Fernet.generate_key().decode()]}):
        response = client.get("/oidc/login/?provider=duo")
    assert_kind_unavailable_page(response, "st0red-secret", "decrypt")
    assert len(secret_errors(log)) == 1 and fake_op.calls == []


def test_a_flood_of_logins_logs_one_error_a_minute(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch, log: Any
) -> None:
    monkeypatch.delenv(SECRET_VAR)
    clock = [1000.0]
    monkeypatch.setattr(login_views.time, "monotonic", lambda: clock[0])
    with captured(login_views.signals.login_failed) as sent:
        for _ in range(30):
            assert client.get("/oidc/login/?provider=duo").status_code == 503
        assert len(secret_errors(log)) == 1
        clock[0] += login_views.SECRET_REPORT_INTERVAL
        client.get("/oidc/login/?provider=duo")
    assert len(secret_errors(log)) == 2
    assert len(sent) == 31  # every refusal still signalled, with the words the user saw
    assert {s["description"] for s in sent} == {SecretUnavailable.shown_description}


def test_a_secret_gone_between_start_and_callback_is_the_same_kind_page(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch, log: Any
) -> None:
    location = client.get("/oidc/login/?provider=duo")["Location"]
    monkeypatch.delenv(SECRET_VAR)
    assert_kind_unavailable_page(client.get("/oidc/callback/?" + fake_op.authorize(location)), SECRET_VAR)
    assert fake_op.count("token") == 0
    assert len(secret_errors(log)) == 1


def test_the_second_factors_page_does_not_name_the_variable_either(rf: Any, db: Any) -> None:
    """Duo's Universal Prompt after a password: the same secret problem, the same words on the page."""
    from django_duo_oidc.mfa.flow import failure

    request = rf.get("/oidc/mfa/login/")
    request.session = {}
    exc = SecretUnavailable("The environment variable DUO_MFA_SECRET_X holding the client secret is not set.")
    response = failure(request, exc)
    assert response.status_code == 503
    text = response.content.decode()
    assert "DUO_MFA_SECRET_X" not in text
    assert "This sign-in method is not available right now. The site&#x27;s administrators have been told" in text


# 3. An unknown provider: a kind 404 whose error code says 404 ---------------------------------------------


def not_found_page(response: Any) -> str:
    """The page's text, once it is a 404 whose error code says so (never "Error 404 · server_error")."""
    assert response.status_code == 404
    text = response.content.decode()
    assert "Error 404 &middot; not_found" in text and "server_error" not in text
    assert "This sign-in method was not found" in text
    assert 'href="/">Go to the home page</a>' in text and "Try again" not in text  # not the same link again
    return text


@pytest.mark.parametrize("slug", ["nope", "%3Cscript%3Ealert(1)%3C/script%3E"])
def test_an_unknown_provider_is_a_kind_404(client: Client, fake_op: FakeOP, provider: Provider, slug: str) -> None:
    text = not_found_page(client.get(f"/oidc/login/?provider={slug}"))
    assert "This site has no sign-in method by that name: the link you followed may be out of date." in text
    assert "<script>" not in text and "nope" not in text


def test_no_provider_at_all_and_a_token_only_one_are_404_not_found(client: Client, fake_op: FakeOP, db: Any) -> None:
    assert "No sign-in method is set up on this site yet." in not_found_page(client.get("/oidc/login/"))
    Provider.objects.create(
        slug="machines",
        name="Machines",
        issuer=fake_op.issuer,
        client_id="x",
        browser_login=False,
    )
    assert "it has no browser login" in not_found_page(client.get("/oidc/login/?provider=machines"))


def test_a_provider_without_an_authorization_endpoint_is_404_not_found(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    publishes_nothing(fake_op, provider, token_endpoint="/token", jwks_uri="/jwks")
    not_found_page(client.get("/oidc/login/?provider=duo"))


# 4. GET /oidc/logout/: a page with the button, and nobody logged out -------------------------------------


def test_get_logout_shows_a_csrf_protected_button_and_logs_nobody_out(
    fake_op: FakeOP, provider: Provider, db: Any
) -> None:
    from .test_login_views import login, me

    client = Client(enforce_csrf_checks=True)
    login(client, fake_op)
    response = client.get("/oidc/logout/")
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    text = response.content.decode()
    form = re.search(r'<form method="post" action="/oidc/logout/">(.*?)</form>', text, re.S)
    assert form and '<button type="submit">Log out</button>' in form.group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.group(1))
    assert token
    assert me(client)["authenticated"] is True  # a GET logs nobody out
    assert client.post("/oidc/logout/").status_code == 403  # no CSRF token: refused
    assert me(client)["authenticated"] is True
    response = client.post("/oidc/logout/", {"csrfmiddlewaretoken": token.group(1)})
    assert response.status_code == 302
    assert me(client) == {"authenticated": False}


def test_get_logout_when_logged_out_says_so(client: Client, db: Any) -> None:
    response = client.get("/oidc/logout/")
    assert response.status_code == 405
    text = response.content.decode()
    assert "You are not logged in" in text and "<form" not in text
    assert client.head("/oidc/logout/").status_code == 405


# 5. The no-credentials 401: RFC 6750 section 3.1 gives it no error code ----------------------------------


@pytest.mark.parametrize("url", ["/t/bearer/any/", "/t/bearer/hot/", "/t/ninja/any"])
def test_the_no_credentials_401_has_no_error_code(client: Client, provider: Provider, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 401
    assert response.json() == {"error_description": "This resource needs a bearer access token."}
    challenge = response["WWW-Authenticate"]
    assert challenge == (
        'Bearer realm="testserver", resource_metadata="http://testserver/.well-known/oauth-protected-resource"'
    )
    assert "error=" not in challenge
    assert response["Cache-Control"] == "no-store"


def test_drf_answers_no_credentials_with_its_own_body_and_the_same_challenge(
    client: Client, provider: Provider
) -> None:
    """DRF's NotAuthenticated keeps DRF's body; the challenge is DuoBearerAuthentication's, without an error code."""
    response = client.get("/t/bearer/drf/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"] == (
        'Bearer realm="testserver", resource_metadata="http://testserver/.well-known/oauth-protected-resource"'
    )


# 6. duo_oidc_call prints one line about the token ---------------------------------------------------------


def test_duo_oidc_call_says_it_once_on_the_terminal_and_keeps_the_log(
    fake_op: FakeOP, provider: Provider, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the example project's logging (INFO to the console), the library's "Obtained a
    client-credentials token" line and the command's own line said the same thing twice."""
    library = logging.getLogger("django_duo_oidc")
    console = logging.StreamHandler(sys.stderr)  # the example project's "console" handler
    kept = io.StringIO()
    log_file = logging.StreamHandler(kept)  # a log service, a file: keeps every line
    previous = library.level
    library.setLevel(logging.INFO)
    library.addHandler(console)
    library.addHandler(log_file)
    try:
        for _ in range(2):  # a new token, then the cached one
            call_command("duo_oidc_call", "--scope", "crm.contacts.read", "--print-token", stdout=io.StringIO())
    finally:
        library.removeHandler(console)
        library.removeHandler(log_file)
        library.setLevel(previous)
    terminal = capsys.readouterr().err.splitlines()
    assert len(terminal) == 2, terminal
    assert re.fullmatch(
        r"Token from provider duo \(new\), scope 'crm.contacts.read', expires in (?:59\d|600) s\.",
        terminal[0],
    )
    assert re.fullmatch(
        r"Token from provider duo \(cached\), scope 'crm.contacts.read', expires in (?:59\d|600) s\.",
        terminal[1],
    )
    assert kept.getvalue().count("Obtained a client-credentials token from provider duo") == 1
    assert console.filters == [] and log_file.filters == []  # left as found


# 7. W003 without --database: check --deploy and duo_oidc_provider --check ---------------------------------


def run_ids(**kwargs: Any) -> list[str]:
    return sorted(m.id for m in django_checks.run_checks(**kwargs) if m.id and m.id.startswith("duo_oidc."))


@override_settings(SESSION_COOKIE_SECURE=True, DEBUG=True)
def test_check_deploy_says_w003_without_database_once_with_it(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "duo_oidc.W003" not in run_ids(include_deployment_checks=True)
    monkeypatch.delenv(SECRET_VAR)
    assert "duo_oidc.W003" not in run_ids()  # plain `check` reads no table (it may run with no database)
    assert run_ids(include_deployment_checks=True).count("duo_oidc.W003") == 1
    assert run_ids(include_deployment_checks=True, databases=["default"]).count("duo_oidc.W003") == 1
    Provider.objects.filter(pk=provider.pk).update(client_secret_env="HOME")
    assert run_ids(include_deployment_checks=True).count("duo_oidc.E008") == 1
    (message,) = [m for m in checks.check_deploy() if m.id == "duo_oidc.E008"]
    assert message.obj == provider  # `manage.py check` names the row


@pytest.mark.parametrize("failure", [DatabaseError("no such table"), ImproperlyConfigured("no DATABASES")])
@override_settings(SESSION_COOKIE_SECURE=True, DEBUG=False)
def test_check_deploy_without_a_table_or_a_database_says_nothing_of_it(
    provider: Provider, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise failure

    monkeypatch.delenv(SECRET_VAR)
    monkeypatch.setattr(Provider.objects, "all", unreadable)
    assert [m.id for m in checks.check_deploy() if m.id in ("duo_oidc.W003", "duo_oidc.W001")] == []
    assert checks.check_providers(databases=["default"]) == []


def test_provider_check_names_another_providers_unset_variable_once(
    fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    Provider.objects.create(
        slug="other",
        name="Other",
        issuer=fake_op.issuer,
        client_id="y",
        client_secret_env="DUO_OTHER_UNSET_SECRET",
    )
    monkeypatch.delenv("DUO_OTHER_UNSET_SECRET", raising=False)
    out = io.StringIO()
    call_command("duo_oidc_provider", "duo", "--check", stdout=out)
    lines = out.getvalue().splitlines()
    assert (
        "  duo_oidc.W003: Provider 'other' reads its client secret from $DUO_OTHER_UNSET_SECRET, which is not set. "
        "(Set the variable in the environment of every process that serves logins.)"
    ) in lines
    monkeypatch.delenv(SECRET_VAR)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("duo_oidc_provider", "duo", "--check", stdout=out)
    text = out.getvalue()
    assert text.count("DUO_FAKE_OP_SECRET") == 2  # "Updated ... (secret: ...NOT SET)" and the report's line
    assert "duo_oidc.W003: Provider 'duo'" not in text
