"""Adversarial review of the issue 10 hardening: each test shows a hole still open (fails before its fix)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from django_duo_oidc.models import Provider
from tests.fakeop import FakeOP

from .test_hardening_bearer import get, introspection_mode, issue, link

pytestmark = pytest.mark.django_db


def _result_key(token: str) -> str:
    return "duo_oidc:bearer:introspection:" + hashlib.sha256(token.encode()).hexdigest() + ":result"


def test_a_sealed_introspection_answer_moved_to_another_tokens_key_does_not_authenticate_it(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    """singleflight's docstring: a sealed result in the cache "must not be forgeable by whoever can write
    to the cache". A sealed value is not bound to its key, so one who can write to the cache (but has no
    key) copies Alice's sealed "active" answer under the key of a string they made up, and that string
    then authenticates as Alice."""
    introspection_mode(provider)
    fake_op.access_token_format = "opaque"
    link(provider)
    alice = issue(fake_op)
    assert get(client, "/t/bearer/any/", alice).json()["user"] == "alice"
    sealed = cache.get(_result_key(alice))
    assert sealed is not None
    forged = secrets.token_urlsafe(32)  # never issued by the provider
    cache.set(_result_key(forged), sealed, 300)
    response = get(client, "/t/bearer/any/", forged)
    assert response.status_code == 401, response.content


def test_a_bearer_revalidation_refused_by_the_down_flag_does_not_extend_it(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    """The down flag says "leave the provider alone for PROVIDER_DOWN_BACKOFF". A proven token whose
    revalidation is due, sent while the flag is set, is refused with "failed moments ago" without any
    call; that refusal then sets the flag again (mark_down), resetting its TTL. One client polling with
    one valid token (or any steady API traffic) keeps the provider "down" for good after a single blip:
    the provider is never asked again and every session's scope views stay on 503."""
    import time

    from django_duo_oidc.providers import ProviderRuntime

    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0.2, "PROVIDER_DOWN_BACKOFF": 1}
    assert provider.access_token_validation == Provider.AccessTokenValidation.AUTO  # jwt+introspection
    token = issue(fake_op)
    assert get(client, "/api/contacts/", token).status_code == 200
    ProviderRuntime(provider).mark_down()  # one blip
    started = time.monotonic()
    calls = fake_op.count("token_introspection")
    while time.monotonic() - started < 1.6:  # past the backoff of the blip
        get(client, "/api/contacts/", token)
        time.sleep(0.25)
    assert fake_op.count("token_introspection") > calls, "the provider was never asked again after the backoff"
    assert get(client, "/api/contacts/", token).status_code == 200
