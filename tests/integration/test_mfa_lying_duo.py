"""A lying or sick Duo (the fake's "broken", "claims" and "bad_signature" faults): what duo_universal
catches and what the app must, each ending on a clear page with no session, never a 500."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client

from django_duo_oidc import signals
from django_duo_oidc.models import MFAConfiguration
from tests.conftest import captured
from tests.integration import test_mfa_login as base
from tests.integration.test_mfa_login import authenticated, callback, password, to_duo, update

# The login tests' fixtures, shared.
_clean_state, client, duo, config, alice = base._clean_state, base.client, base.duo, base.config, base.alice

pytestmark = pytest.mark.django_db


@pytest.fixture
def failures() -> Any:
    with captured(signals.second_factor_failed) as seen:
        yield seen


def refused(client: Client, duo: Any, status: int) -> None:
    response = callback(client, duo.approve(to_duo(client, duo, "alice")))
    assert response.status_code == status, response.content[:300]
    assert b"You are not logged in" in response.content
    assert not authenticated(client)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"auth_result": None}, "access_denied"),  # the SDK returns it as a success
        ({"auth_result": {"status": "allow"}}, "access_denied"),
        ({"auth_result": {"result": "ALLOW"}}, "access_denied"),
        ({"auth_time": None}, "invalid_token"),  # the SDK does not require it
        ({"auth_time": 1_000_000_000}, "invalid_token"),  # an old approval
        ({"nonce": "n" * 36}, "invalid_token"),
        ({"aud": "DIXXXXXXXXXXXXXXXXXX"}, "invalid_token"),
        ({"iss": "https://api-other.duosecurity.com/oauth/v1/token"}, "invalid_token"),
        ({"exp": 1_000_000_000}, "invalid_token"),
        ({"iat": None}, "invalid_token"),
        ({"preferred_username": None}, "invalid_token"),
    ],
)
def test_a_lying_answer_is_refused(
    client: Client,
    duo: Any,
    config: MFAConfiguration,
    alice: Any,
    failures: list[dict[str, Any]],
    claims: dict[str, Any],
    reason: str,
) -> None:
    duo.faults(claims=claims)
    refused(client, duo, 403 if reason == "access_denied" else 502)
    assert failures[-1]["reason"] == reason


def test_a_token_signed_with_another_key_is_refused(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    duo.faults(bad_signature=True)
    refused(client, duo, 502)
    assert failures[-1]["reason"] == "invalid_token"


def test_an_answer_naming_no_factor_is_refused_where_factors_are_refused(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    update(config, refused_factors="Bypass Code")
    duo.faults(claims={"auth_context": None})
    refused(client, duo, 403)
    assert failures[-1]["reason"] == "factor_refused"


def test_an_answer_naming_no_factor_passes_where_none_are_refused(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    duo.faults(claims={"auth_context": None})
    assert callback(client, duo.approve(to_duo(client, duo, "alice"))).status_code == 302
    assert authenticated(client)


def test_a_broken_duo_at_the_health_check_fails_closed(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    duo.faults(broken=True)
    assert password(client, "alice").status_code == 503
    assert not authenticated(client)
    assert failures[-1]["reason"] == "duo_unavailable"


def test_a_broken_duo_at_the_code_exchange_is_a_page_not_a_500(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    """duo_universal lets json.loads' error escape on a non-JSON error body (an HTML 502)."""
    back = duo.approve(to_duo(client, duo, "alice"))
    duo.faults(broken=True)
    assert callback(client, back).status_code == 503
    assert not authenticated(client)
    assert failures[-1]["reason"] == "duo_unavailable"


def test_a_broken_duo_with_fail_mode_open_lets_the_password_in_loudly(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, settings: Any
) -> None:
    """A 5xx from every endpoint is an outage (an HTML page from a load balancer): the fail mode applies."""
    settings.DUO_OIDC = {**settings.DUO_OIDC, "HTTP_TIMEOUT": 60.0}
    update(config, fail_mode="open")
    duo.faults(broken=True)
    began = time.monotonic()
    assert password(client, "alice")["Location"] == "/me/"
    assert time.monotonic() - began < 30  # at once: no wait for a timeout (60 s), however loaded the machine
    assert authenticated(client)
