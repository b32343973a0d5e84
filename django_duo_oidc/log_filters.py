"""A logging filter that hides OAuth values in logged URLs (access logs record the callback's query).

Add it to the handlers that log requests (``django.server``, your access log)::

    LOGGING = {
        "filters": {"redact_oauth": {"()": "django_duo_oidc.log_filters.RedactOAuthParams"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact_oauth"]}},
        ...
    }
"""

from __future__ import annotations

import logging
import re

_PARAMS = re.compile(
    r"(?i)\b(code|duo_code|state|access_token|refresh_token|id_token|id_token_hint|logout_token|client_secret|code_verifier|token)=([^&\s\"']+)"
)


def redact(text: str) -> str:
    """Return ``text`` with the values of OAuth parameters replaced by ``[redacted]``."""
    return _PARAMS.sub(lambda m: f"{m.group(1)}=[redacted]", text)


class RedactOAuthParams(logging.Filter):
    """Redact ``code=``, ``state=``, ``*_token=`` and similar values in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True
