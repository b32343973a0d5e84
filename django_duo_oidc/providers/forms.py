"""The provider's form: the admin's page and the shell's commands validate a provider row through it.

Kept out of :mod:`django_duo_oidc.admin` so that ``manage.py`` commands can use it on a site that does not
install ``django.contrib.admin`` (importing the admin module registers pages on the admin site).
"""

from __future__ import annotations

from typing import Any

from django import forms

from ..admin_generics import ModelForm
from ..models import Provider
from ..secret_fields import apply_secret, clear_box, secret_input

__all__ = ["SECRET_FORM_FIELDS", "ProviderForm"]

# Form-only fields that write the secret.
SECRET_FORM_FIELDS = ("client_secret", "clear_client_secret", "send_secret_to_new_connection")


class ProviderForm(ModelForm[Provider]):
    """Every field of a provider; the secret is write-only (stored encrypted, never shown back)."""

    client_secret = secret_input(
        "Write-only: stored encrypted (needs DUO_OIDC['ENCRYPTION_KEYS']); leave blank to keep the "
        "current one. Prefer the environment variable field."
    )
    clear_client_secret = clear_box("Remove the stored encrypted secret.")
    send_secret_to_new_connection = forms.BooleanField(
        required=False,
        help_text="When changing the issuer or client id while the secret comes from an environment variable: "
        "confirm that this secret may be sent to the new issuer.",
    )

    #: False for a user without the connection permission: the secret fields are then left out.
    connection_editable = True

    class Meta:
        model = Provider
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.connection_editable:
            for name in SECRET_FORM_FIELDS:
                self.fields.pop(name, None)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if "client_secret" not in self.fields:
            return data
        apply_secret(
            self, data, field="client_secret", clear="clear_client_secret", store=self.instance.set_client_secret
        )
        if data.get("send_secret_to_new_connection"):
            self.instance.confirm_secret_for_connection()
        return data
