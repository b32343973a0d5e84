"""RFC 8707 resource indicators: which values may be sent as ``resource``. Pure: no I/O, no Django."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["parse_resource_indicators", "resource_indicator_problem"]

# RFC 3986 section 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
# RFC 3986 section 2: the characters a URI may hold (unreserved, reserved, and "%" of a percent-encoding).
_URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


def resource_indicator_problem(value: str) -> str | None:
    """Return why ``value`` cannot be a resource indicator, or None when it can.

    RFC 8707 section 2: the value "MUST be an absolute URI, as specified by Section 4.3 of [RFC3986]"
    (a scheme, no fragment) and "MUST NOT include a fragment component". A query is allowed (the RFC
    only says it SHOULD NOT be there). http and https URIs must name a host.
    """
    if not value or not _URI_CHARS.fullmatch(value):
        return f"{value!r} is not a URI (spaces, quotes and non-ASCII characters must be percent-encoded)."
    if "#" in value:
        return f"{value!r} has a fragment (#...): RFC 8707 section 2 forbids one."
    scheme, colon, rest = value.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme) or not rest:
        return f"{value!r} is not an absolute URI (it needs a scheme, such as https: or urn:)."
    if scheme.lower() in ("http", "https"):
        try:
            host = urlsplit(value).hostname
        except ValueError:
            host = None
        if not host:
            return f"{value!r} names no host."
    return None


def parse_resource_indicators(text: str | None) -> tuple[str, ...]:
    """Split a space-separated list of resource indicators, keeping order, dropping repeats."""
    seen: dict[str, None] = {}
    for value in (text or "").split():
        seen.setdefault(value, None)
    return tuple(seen)
