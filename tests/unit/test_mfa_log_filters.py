"""The access-log filter also hides Duo's ``duo_code`` (the Universal Prompt's callback parameter)."""

from __future__ import annotations

from django_duo_oidc.log_filters import redact


def test_the_universal_prompt_callback_is_redacted() -> None:
    line = '"GET /oidc/mfa/callback/?state=S3cr3tState&duo_code=D0c0d3 HTTP/1.1" 302 0'
    assert redact(line) == '"GET /oidc/mfa/callback/?state=[redacted]&duo_code=[redacted] HTTP/1.1" 302 0'


def test_duo_code_first_is_redacted_too() -> None:
    assert (
        redact("/oidc/mfa/callback/?duo_code=abc&state=def")
        == "/oidc/mfa/callback/?duo_code=[redacted]&state=[redacted]"
    )
