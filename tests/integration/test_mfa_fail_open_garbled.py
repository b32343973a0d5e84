"""Fail mode "open" lets a password alone in only when Duo cannot be reached (network, timeout, 5xx).
A 200 answer that is not Duo's (a TLS-inspecting proxy's block page, trusted through ca_certs) is not an
unreachable Duo: it fails closed (noted by the issue-13 review and the docs pass). Fails before the fix:
the garbled health answer counted as "unreachable", and the password alone logged the user in."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from django_duo_oidc.models import MFAConfiguration

from .test_mfa_login import alice, authenticated, client, config, duo, passes, password, update  # noqa: F401

pytestmark = pytest.mark.django_db


def test_a_garbled_health_answer_never_fails_open(
    client: Client,  # noqa: F811
    duo: Any,  # noqa: F811
    config: MFAConfiguration,  # noqa: F811
    alice: Any,  # noqa: F811
    passes: list[dict[str, Any]],  # noqa: F811
) -> None:
    update(config, fail_mode="open")
    duo.faults(health="garbled")
    response = password(client, "alice")
    assert response.status_code == 503
    assert not authenticated(client)
    assert passes == []


def test_a_garbled_health_answer_fails_closed_in_closed_mode(
    client: Client,  # noqa: F811
    duo: Any,  # noqa: F811
    config: MFAConfiguration,  # noqa: F811
    alice: Any,  # noqa: F811
) -> None:
    duo.faults(health="garbled")
    assert password(client, "alice").status_code == 503
    assert not authenticated(client)
