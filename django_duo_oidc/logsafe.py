"""Log lines that a request or a provider cannot forge.

Every module logs through ``logging.getLogger("django_duo_oidc")``; :func:`install` (called from
``AppConfig.ready``) attaches :class:`SanitisingFilter` to that logger object, so every record it
emits, whatever handler the project configures, has its message and string arguments escaped:
CR, LF and the other C0/C1 control characters, the Unicode line and paragraph separators
(U+2028/U+2029) and the bidirectional overrides become visible escapes (``\\n``, ``\\x1b``,
``\\u2028``), so a value can neither start a new log line nor disguise one; very long values are cut.

:func:`sanitise` is the same escaping for other places a foreign value is shown.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_VALUE_CHARS", "SanitisingFilter", "install", "sanitise"]

LOGGER_NAME = "django_duo_oidc"
# A value from a request or a provider longer than this is cut in a log line (a path, a reason).
MAX_VALUE_CHARS = 1000

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 controls, DEL, C1 controls (NEL U+0085 among them), line/paragraph separators, and the
# bidirectional embedding/override/isolate characters that can make a line read as another.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def sanitise(value: str, limit: int | None = MAX_VALUE_CHARS) -> str:
    """Return ``value`` with control and line-breaking characters escaped, cut to ``limit`` chars."""
    if limit is not None and len(value) > limit:
        value = value[:limit] + f"...[{len(value) - limit} more chars]"
    return _UNSAFE.sub(_escape, value)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return sanitise(value)
    if value is None or isinstance(value, int | float):  # bool is an int: %d/%s keep working
        return value
    text = str(value)
    if _UNSAFE.search(text) or len(text) > MAX_VALUE_CHARS:
        return sanitise(text)
    return value


class SanitisingFilter(logging.Filter):
    """Escape control characters in a record's message and arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            # The message template is this app's own text: escaped, not cut.
            record.msg = sanitise(record.msg, limit=None)
        else:
            record.msg = sanitise(str(record.msg))
        args = record.args
        if isinstance(args, Mapping):
            record.args = {key: _clean(value) for key, value in args.items()}
        elif isinstance(args, tuple):
            record.args = tuple(_clean(value) for value in args)
        return True


def install(logger_name: str = LOGGER_NAME) -> SanitisingFilter:
    """Attach the filter to ``logger_name``'s logger once; return the filter in place."""
    logger = logging.getLogger(logger_name)
    for existing in logger.filters:
        if isinstance(existing, SanitisingFilter):
            return existing
    installed = SanitisingFilter()
    logger.addFilter(installed)
    return installed
