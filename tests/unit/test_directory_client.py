"""What an administrator reads when duo_client fails (django_duo_oidc.directory.client.describe_error).

Failures the fake Admin API cannot produce for reads (a 403 for a missing permission, a date refused)
are built as duo_client builds them: a RuntimeError carrying ``status``, ``reason`` and ``data``.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import pytest

from django_duo_oidc.directory.client import DirectoryError, describe_error, parse_api_host
from django_duo_oidc.models import DirectoryConnection

SECRET = "S" * 40


def duo_failure(status: int, code: int | None = None, message: str = "nope") -> RuntimeError:
    error = RuntimeError(f"Received {status} {message} (secret echo {SECRET})")
    error.status = status  # type: ignore[attr-defined]
    error.reason = "Reason"  # type: ignore[attr-defined]
    body: dict[str, Any] = {"stat": "FAIL", "message": message, "message_detail": SECRET}
    if code is not None:
        body["code"] = code
    error.data = json.dumps(body).encode()  # type: ignore[attr-defined]
    return error


@pytest.fixture
def connection() -> DirectoryConnection:
    return DirectoryConnection(slug="corp", api_host="api-x.duosecurity.com", integration_key="DIXXXXXXXXXXXXXXXXXX")


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (duo_failure(401, 40103), "signature", "signature (40103): check the integration key DIXXXXXXXXXXXXXXXXXX"),
        (duo_failure(401, 40102), "signature", "does not know the integration key"),
        (duo_failure(401, 40105), "signature", "check this server's clock"),
        (duo_failure(403, 40301), "permission", "Permission missing (HTTP 403, code 40301): grant the Admin API"),
        (duo_failure(429, 42901), "rate_limited", "after duo_client's back-off"),
        (duo_failure(404, 40401), "not_found", "404"),
        (duo_failure(503), "server", "HTTP 503"),
        (duo_failure(400, 40002), "refused", "HTTP 400, code 40002"),
        (duo_failure(200), "bad_answer", "not an Admin API answer"),
        (ssl.SSLCertVerificationError("certificate verify failed"), "tls", "certificate is not trusted"),
        (TimeoutError("timed out"), "unreachable", "did not answer in time"),
        (ConnectionRefusedError(111, "refused"), "unreachable", "could not be reached (ConnectionRefusedError)"),
    ],
)
def test_failures_become_one_clear_error_that_never_echoes_the_server(
    connection: DirectoryConnection, exc: BaseException, kind: str, words: str
) -> None:
    error = describe_error(exc, connection)
    assert isinstance(error, DirectoryError)
    assert error.kind == kind
    assert words in error.message
    assert SECRET not in error.message and "nope" not in error.message


def test_an_unexpected_exception_is_an_internal_error(connection: DirectoryConnection) -> None:
    error = describe_error(ZeroDivisionError("secret detail"), connection)
    assert error.kind == "internal" and "ZeroDivisionError" in error.message and "secret" not in error.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api-abc123.duosecurity.com", ("api-abc123.duosecurity.com", None)),
        ("API-ABC.duosecurity.com", ("api-abc.duosecurity.com", None)),
        ("127.0.0.1:8443", ("127.0.0.1", 8443)),
        (" localhost:1 ", ("localhost", 1)),
    ],
)
def test_parse_api_host(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_api_host(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "https://api.duosecurity.com",
        "api.duo.com/x",
        "a@b",
        "[::1]:443",
        "host:",
        "host:0",
        "host:65536",
        "h:1:2",
        "host:+1",
        "-bad.com",
        "a" * 254,
        "host:١٢",
    ],
)
def test_parse_api_host_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_api_host(text)


def test_the_secret_key_is_never_in_an_error_report(monkeypatch: pytest.MonkeyPatch) -> None:
    # A surprise inside duo_client's signing (whose frames hold the secret key) becomes a DirectoryError
    # that carries none of those frames, so Django's error report (DEBUG page, mail to ADMINS) cannot
    # show the key.

    import duo_client.client
    from django.views.debug import ExceptionReporter

    from django_duo_oidc.directory.client import admin_client, guarded_call

    monkeypatch.setenv("DUO_TEST_SKEY", SECRET)
    connection = DirectoryConnection(
        slug="corp", api_host="127.0.0.1:18344", integration_key="DIXX", secret_key_env="DUO_TEST_SKEY"
    )

    def broken_sign(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("a bug in signing")

    monkeypatch.setattr(duo_client.client, "sign", broken_sign)
    client = admin_client(connection)
    with pytest.raises(DirectoryError) as caught:
        guarded_call(connection, client.get_users, 1, 0)
    assert caught.value.kind == "internal" and "ZeroDivisionError" in caught.value.message
    report = ExceptionReporter(None, type(caught.value), caught.value, caught.value.__traceback__).get_traceback_html()
    assert SECRET not in report


def test_admin_client_hides_the_secret_from_error_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.views.debug import ExceptionReporter

    from django_duo_oidc.directory import client as directory_client

    monkeypatch.setenv("DUO_TEST_SKEY", SECRET)
    connection = DirectoryConnection(
        slug="corp", api_host="api-x.duosecurity.com", integration_key="DIXX", secret_key_env="DUO_TEST_SKEY"
    )
    with pytest.raises(DirectoryError) as caught:
        directory_client.admin_client(connection, timeout="not a number")  # type: ignore[arg-type]
    assert caught.value.kind == "config"
    report = ExceptionReporter(None, caught.type, caught.value, caught.tb).get_traceback_html()
    assert "admin_client" in report
    assert SECRET not in report
