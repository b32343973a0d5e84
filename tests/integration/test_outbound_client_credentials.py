"""Calling out as this server: client-credentials tokens cached for all workers, one retry on a 401."""

from __future__ import annotations

import threading
import time
from io import StringIO
from typing import Any

import pytest
import requests
from django.core.cache import cache
from django.core.management import CommandError, call_command
from requests.adapters import BaseAdapter

from django_duo_oidc.core.errors import TokenEndpointError
from django_duo_oidc.models import Provider
from django_duo_oidc.outbound import client_credentials as outbound
from django_duo_oidc.outbound.client_credentials import ClientCredentialsAuth, client_token
from tests.fakeop import FakeOP

pytestmark = pytest.mark.django_db


def token_calls(op: FakeOP) -> int:
    return op.count("token")


def test_one_token_serves_every_call_and_every_worker(fake_op: FakeOP, provider: Provider) -> None:
    first = client_token("crm.contacts.read")
    assert not first.from_cache
    again = client_token("crm.contacts.read")
    assert again.from_cache
    assert again.access_token == first.access_token
    assert token_calls(fake_op) == 1
    # Scopes are a set: order and repetition do not make another token.
    assert client_token(["crm.contacts.read", "crm.contacts.read"]).access_token == first.access_token
    # Other scopes or another resource are another token.
    assert client_token("crm.contacts.write").access_token != first.access_token
    assert client_token("crm.contacts.read", resource="urn:crm").access_token != first.access_token
    assert token_calls(fake_op) == 3


def test_the_token_never_shows_in_its_repr(fake_op: FakeOP, provider: Provider) -> None:
    token = client_token("crm.contacts.read")
    assert token.access_token not in repr(token)


def test_renewed_shortly_before_expiry(fake_op: FakeOP, provider: Provider, monkeypatch: Any) -> None:
    fake_op.client_token_lifetime = 120
    first = client_token("x")
    start = time.time()
    monkeypatch.setattr(time, "time", lambda: start + 80)  # 40 s left: more than REFRESH_MARGIN (30)
    assert client_token("x").access_token == first.access_token
    monkeypatch.setattr(time, "time", lambda: start + 95)  # 25 s left: renew
    assert client_token("x").access_token != first.access_token
    assert token_calls(fake_op) == 2


def test_without_expires_in_a_short_lifetime_is_assumed(fake_op: FakeOP, provider: Provider) -> None:
    fake_op.client_token_lifetime = None
    token = client_token("x")
    assert token.expires_at - time.time() == pytest.approx(outbound.DEFAULT_LIFETIME, abs=5)


def test_concurrent_renewals_make_one_provider_call(fake_op: FakeOP, provider: Provider) -> None:
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        # The provider row is passed in: threads on one in-memory SQLite would lock each other out.
        results.append(client_token("crm.contacts.read", provider=provider).access_token)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert token_calls(fake_op) == 1


def test_a_refusal_is_raised_and_not_cached(fake_op: FakeOP, provider: Provider, monkeypatch: Any) -> None:
    monkeypatch.setenv("DUO_FAKE_OP_SECRET", "wrong")
    with pytest.raises(TokenEndpointError):
        client_token("x")
    monkeypatch.setenv("DUO_FAKE_OP_SECRET", fake_op.client_secret)
    time.sleep(0.01)
    cache.clear()  # the shared refusal lives a few seconds (single flight); a fresh worker asks again
    assert client_token("x").access_token


class API(BaseAdapter):
    """A protected API that refuses the tokens in ``refused``."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: set[str] = set()
        self.seen: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        token = str(request.headers.get("Authorization", ""))[len("Bearer ") :]
        self.seen.append(token)
        response = requests.Response()
        response.status_code = 401 if token in self.refused else 200
        response._content = b"{}"
        response.request = request
        response.connection = self  # type: ignore[attr-defined]
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


def test_the_auth_class_attaches_the_token_and_retries_once_on_401(fake_op: FakeOP, provider: Provider) -> None:
    api = API()
    session = requests.Session()
    session.mount("https://api.test/", api)
    auth = ClientCredentialsAuth("crm.contacts.read")
    assert session.get("https://api.test/contacts", auth=auth).status_code == 200
    first = api.seen[-1]
    api.refused.add(first)  # revoked at the provider, or the secret rotated
    response = session.post("https://api.test/contacts", data=b"payload", auth=auth)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert api.seen[-2:] == [first, client_token("crm.contacts.read").access_token]
    assert api.seen[-1] != first
    assert token_calls(fake_op) == 2


def test_the_auth_class_does_not_loop_on_a_second_401(fake_op: FakeOP, provider: Provider) -> None:
    api = API()
    session = requests.Session()
    session.mount("https://api.test/", api)
    api.refused = _AllTokens()
    response = session.get("https://api.test/contacts", auth=ClientCredentialsAuth("x"))
    assert response.status_code == 401
    assert len(api.seen) == 2


class _AllTokens(set):  # type: ignore[type-arg]
    def __contains__(self, item: object) -> bool:
        return True


@pytest.mark.django_db(transaction=True)
def test_the_command_calls_an_api_and_never_prints_the_token(
    fake_op: FakeOP, provider: Provider, live_server: Any
) -> None:
    out, err = StringIO(), StringIO()
    call_command(
        "duo_oidc_call", live_server.url + "/api/contacts/", "--scope", "crm.contacts.read", stdout=out, stderr=err
    )
    token = client_token("crm.contacts.read").access_token
    assert '"client_id": "' + fake_op.client_id in out.getvalue()
    assert "HTTP 200" in err.getvalue()
    assert token not in out.getvalue() + err.getvalue()

    with pytest.raises(CommandError, match="HTTP 403"):
        call_command("duo_oidc_call", live_server.url + "/api/contacts/", "--scope", "email", stdout=out, stderr=err)

    printed = StringIO()
    call_command("duo_oidc_call", "--scope", "crm.contacts.read", "--print-token", stdout=printed, stderr=StringIO())
    assert printed.getvalue().strip() == token


def test_the_command_reports_a_refusal_without_a_traceback(
    fake_op: FakeOP, provider: Provider, monkeypatch: Any
) -> None:
    monkeypatch.setenv("DUO_FAKE_OP_SECRET", "wrong")
    with pytest.raises(CommandError, match="No token: The identity provider's token endpoint refused"):
        call_command("duo_oidc_call", "https://api.test/", stdout=StringIO(), stderr=StringIO())
