"""A step-up just completed counts once for the page it was for.

``max_age`` is measured from the provider's (or Duo's) ``auth_time`` (OIDC Core 3.1.2.1). The browser's
way back from the provider to the page takes a moment, so a requirement shorter than that moment
(``max_age=0``: "authenticate again for this visit") could never be met: the page would send the user
through the provider again, forever. The callback therefore leaves a ticket in the server-side session,
and the next request to the page the step-up was for passes once, within :data:`GRACE` seconds, for a
requirement no stricter than the ``max_age`` the login was asked to meet (the callback has checked
``auth_time`` against that one, OIDC Core 3.1.3.7 step 13). Another page, a later request, a stricter
requirement, or a second use get nothing from it.

An API cannot redirect: a session's API call refused for ``max_age`` answers 403 with a ``step_up_url``
naming the API's path (``api_path``); the page sends the browser there with its own ``next``, and the
ticket then holds both paths, each good for one request: the page the browser comes back to, and the
API call the page retries. The API's path is checked to be a path of this site (:func:`api_path`) and
only ever compared with ``request.path``: it is never a place the browser is sent to.

"Once" holds across requests too: two requests of one session that both load it before either saves it
would both find the ticket, so taking it also claims it in the shared cache (an atomic add keyed by the
ticket's random id, as the login state is claimed): exactly one of them passes. When the cache cannot
say, nobody passes (fail closed: the page asks for the step-up again).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from .errors import CacheUnavailable

__all__ = ["GRACE", "KEY", "MAX_PATH", "Claims", "api_path", "grant", "page_path", "take"]

#: Seconds from the step-up's callback to the page's request within which the ticket is honoured.
GRACE = 30.0
#: Where the ticket lives in the record it is granted into (the session's login or Duo-passed record).
KEY = "step_up"
#: The longest API path a step-up may name (characters, as sent).
MAX_PATH = 2000
# The shared cache's key that a ticket was used (its random id and the path, hashed).
_USED_PREFIX = "duo_oidc:step-up-used:"


class Claims(Protocol):
    """Where a ticket is claimed: the shared cache (``add`` is atomic: True for the first caller only)."""

    def add(self, key: str, value: Any, timeout: Any = ...) -> bool: ...


def grant(record: dict[str, Any], *, path: str, max_age: int | None, now: float, api_path: str | None = None) -> None:
    """Leave a one-use ticket in ``record`` for the page at ``path`` (as ``request.path`` names it: see
    :func:`page_path`), and for the API at ``api_path`` when the step-up named one (:func:`api_path`):
    one request to each. ``max_age`` is what the login was asked to meet (None: any, as after Duo's
    step-up prompt, which asks no ``max_age``)."""
    paths = [path] if api_path is None or api_path == path else [path, api_path]
    record[KEY] = {"paths": paths, "max_age": max_age, "until": now + GRACE, "id": secrets.token_urlsafe(16)}


def api_path(value: str) -> str | None:
    """The path ``value`` names, as ``request.path`` names it, when it is a path of this site: it starts
    with a single ``/``, has no scheme, host, backslash, query or fragment, is printable and at most
    :data:`MAX_PATH` characters long. None otherwise (the caller refuses the step-up)."""
    if not value or len(value) > MAX_PATH or not value.isprintable() or "\\" in value:
        return None
    if not value.startswith("/") or value.startswith("//"):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.query or parts.fragment or "?" in value or "#" in value:
        return None
    return unquote(parts.path)


def page_path(url: str) -> str:
    """The page ``url`` (a ``next`` URL, percent-encoded as ``request.get_full_path()`` writes it) leads to,
    as Django's ``request.path`` names it there: decoded, without its query string or fragment."""
    return unquote(urlsplit(url).path)


def take(
    record: dict[str, Any] | None, *, path: str, max_age: int, now: float, claims: Claims | None = None
) -> int | None:
    """Once, when ``record`` holds a ticket for ``path`` still within its time and no looser than
    ``max_age``: the ``max_age`` the ticket is good for (0 after Duo's step-up: any), and ``path`` is
    removed from the ticket (the ticket with it when it was its last; the caller saves the session).
    None, and nothing removed, otherwise.

    With ``claims`` (the shared cache), the ticket must also be claimed there first: None when another
    request already claimed it, or when the cache cannot say (:class:`~.errors.CacheUnavailable`).
    """
    ticket = record.get(KEY) if record else None
    paths = ticket.get("paths") if isinstance(ticket, dict) else None
    if record is None or not isinstance(ticket, dict) or not isinstance(paths, list) or path not in paths:
        return None
    until, asked, ticket_id = ticket.get("until"), ticket.get("max_age"), ticket.get("id")
    fits = (
        isinstance(until, int | float)
        and not isinstance(until, bool)
        and math.isfinite(until)
        and now <= until
        and (asked is None or (isinstance(asked, int) and not isinstance(asked, bool) and asked <= max_age))
    )
    if not fits:
        return None
    if claims is not None:
        if not isinstance(ticket_id, str) or not ticket_id:
            return None
        used = _USED_PREFIX + hashlib.sha256(f"{ticket_id}\n{path}".encode()).hexdigest()
        try:
            if not claims.add(used, 1, timeout=int(GRACE) + 60):
                return None
        except CacheUnavailable:
            return None  # logged by the cache; the ticket stays for a retry within its time
    paths.remove(path)
    if not paths:
        del record[KEY]
    return 0 if asked is None else int(asked)
