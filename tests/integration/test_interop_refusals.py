"""Issue 14, interop defect 3: a refresh refused with a bare HTTP 4xx (Glewlwyd answers 400 with no
``invalid_grant`` body) is a refusal that ends the session, not an outage that keeps it alive on a 503.
Only 5xx, 429, timeouts and network errors are an outage."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client

from django_duo_oidc.models import Provider
from tests.fakeop import FakeOP, _form

from .test_login_views import me
from .test_policy import CRM, age_session, login


def refuse_refresh_with(fake_op: FakeOP, monkeypatch: pytest.MonkeyPatch, status: int, body: Any, headers: Any) -> None:
    original = fake_op.token_endpoint

    def token_endpoint(request: Any) -> Any:
        if _form(request).get("grant_type") == "refresh_token":
            return status, body, headers
        return original(request)

    monkeypatch.setattr(fake_op, "token_endpoint", token_endpoint)


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (400, b"", {}),  # Glewlwyd: a bare 400
        (400, b"<html><body>Bad Request</body></html>", {"Content-Type": "text/html"}),
        (400, {"message": "refresh token expired"}, {}),  # JSON, but no RFC 6749 error member
        (401, b"", {}),
        (403, b"Forbidden", {"Content-Type": "text/plain"}),
    ],
)
def test_a_bare_4xx_refresh_answer_ends_the_session(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch, status: int, body: Any,
    headers: Any,
) -> None:  # fmt: skip
    login(client, fake_op, scope=CRM)
    refuse_refresh_with(fake_op, monkeypatch, status, body, headers)
    age_session(client, expires_at=time.time() - 1)
    response = client.get("/contacts/")
    assert response.status_code == 302  # to the login, as for an invalid_grant refusal
    assert me(client) == {"authenticated": False}


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_a_5xx_or_429_refresh_answer_is_still_an_outage(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    login(client, fake_op, scope=CRM)
    refuse_refresh_with(fake_op, monkeypatch, status, b"", {})
    age_session(client, expires_at=time.time() - 1)
    assert client.get("/contacts/").status_code == 503  # the session is kept, marked stale
    assert me(client)["authenticated"] is True
