"""Issue 15, the small papercuts a newcomer met: client credentials that Check connection and
``duo_oidc_provider --check`` never tried, a missing secret variable found only after the user was sent
to the provider (and named on the error page), "Error 404 · server_error", an empty 405 at
``GET /oidc/logout/``, the no-credentials 401 body, ``duo_oidc_call``'s two lines about one token, and
``W003`` seen only with ``check --database default``.

Each test fails on the code before its fix (the 401 body test pins what the README must say instead).
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from django_duo_oidc.models import Provider
from django_duo_oidc.providers.connection import (
    PLACEHOLDER_REDIRECT_URI,
    check_connection,
)
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
