"""The directory connection's form: the admin's page and the shell's commands validate a connection through it
(the API host and CA bundle rules of :mod:`.client` included).

Kept out of :mod:`django_duo_oidc.admin` so that ``manage.py`` commands can use it on a site that does not
install ``django.contrib.admin``.
"""

from __future__ import annotations

from typing import Any

from django import forms

from ..admin_generics import ModelForm
from ..models import DirectoryConnection
from ..secret_fields import apply_secret, clear_box, secret_input
from .client import ca_certs_refusal, parse_api_host

__all__ = ["DIRECTORY_CONNECTION_FIELDS", "DIRECTORY_SECRET_FORM_FIELDS", "DirectoryConnectionForm"]

# Fields that decide where the listing comes from, whose users it governs and how they are matched:
# changing them (or adding a connection) needs CONNECTION_PERMISSION, as for a provider's connection.
DIRECTORY_CONNECTION_FIELDS = (
    "api_host",
    "integration_key",
    "secret_key_env",
    "ca_certs",
    "provider",
    "match",
    "deprovision",
    "max_deprovision_percent",
)
DIRECTORY_SECRET_FORM_FIELDS = ("secret_key", "clear_secret_key")


class DirectoryConnectionForm(ModelForm[DirectoryConnection]):
    """Every field of a directory connection; the secret key is write-only."""

    secret_key = secret_input(
        "Write-only: the Admin API secret key, stored encrypted (needs DUO_OIDC['ENCRYPTION_KEYS']); "
        "leave blank to keep the current one. Prefer the environment variable field."
    )
    clear_secret_key = clear_box("Remove the stored encrypted secret key.")

    class Meta:
        model = DirectoryConnection
        fields = "__all__"

    def clean_api_host(self) -> str:
        value = str(self.cleaned_data.get("api_host", "")).strip()
        try:
            parse_api_host(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value

    def clean_ca_certs(self) -> str:
        value = str(self.cleaned_data.get("ca_certs", "")).strip()
        refusal = ca_certs_refusal(value)
        if refusal:
            raise forms.ValidationError(refusal)
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        apply_secret(self, data, field="secret_key", clear="clear_secret_key", store=self.instance.set_secret_key)
        return data
