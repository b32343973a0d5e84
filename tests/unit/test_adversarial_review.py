"""Adversarial review of the issue 10 hardening, core tier: each test fails before its fix."""

from __future__ import annotations

import contextlib

import pytest

from django_duo_oidc.core.errors import DuoOIDCError
from tests.unit.test_hardening_http import GeneratedBody, Streaming, client_for


@pytest.mark.parametrize("declared", ["\u00b2", "1\u00b9"])
def test_a_content_length_of_superscript_digits_is_not_an_unhandled_error(declared: str) -> None:
    """_read_body: ``declared.strip().isdigit() and int(declared)``: superscript digits pass isdigit() and
    int() raises ValueError, which no caller catches (a 500 instead of a ProviderResponseError/503)."""
    body = GeneratedBody(iter([b'{"keys": []}']))
    http = client_for(Streaming(body, {"Content-Length": declared}))
    with contextlib.suppress(DuoOIDCError):  # refused as a bad answer: fine; anything else fails
        http.get("https://op.test/jwks")
