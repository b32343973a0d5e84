"""The write-only secret field of the admin forms (provider, directory connection, second factor).

A secret typed in the admin is stored encrypted and never shown back: a password input that renders
empty, a box to clear the stored value, and the form's ``clean`` storing it through the row's setter.
Imports nothing of the package: entry points and capabilities use it alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.core.exceptions import ImproperlyConfigured

__all__ = ["apply_secret", "clear_box", "secret_input"]


def secret_input(help_text: str) -> forms.CharField:
    """A write-only field: never rendered back, not stripped (a secret's spaces are its own)."""
    return forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=help_text,
    )


def clear_box(help_text: str) -> forms.BooleanField:
    return forms.BooleanField(required=False, help_text=help_text)


def apply_secret(
    form: forms.BaseForm, data: dict[str, Any], *, field: str, clear: str, store: Callable[[str], None]
) -> None:
    """Store a typed secret (``store``, e.g. ``instance.set_client_secret``: it encrypts), or clear the
    stored one when the box is ticked; a blank field keeps the current one. Without ENCRYPTION_KEYS the
    field gets the error, never a 500."""
    secret = data.get(field)
    if secret:
        try:
            store(secret)
        except ImproperlyConfigured as exc:
            form.add_error(field, str(exc))
    elif data.get(clear):
        store("")
