"""Management commands (``manage.py duo_oidc_*``), and what they share."""

from __future__ import annotations

import sys
from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError


def store_secret_from_stdin(store: Callable[[str], None], *, what: str = "secret") -> None:
    """Read a secret from the first line of standard input and ``store`` it (the row's setter, which
    encrypts): the ``--*-stdin`` options of the commands, so a secret is never a command-line value.

    :raises CommandError: nothing on standard input, or no ENCRYPTION_KEYS to store it with.
    """
    secret = sys.stdin.readline().rstrip("\n")
    if not secret:
        raise CommandError(f"No {what} on standard input.")
    try:
        store(secret)
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from None
