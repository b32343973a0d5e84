"""The second factor's configuration form: the admin's page and the shell's commands validate it through it.

Kept out of :mod:`.admin` so that ``manage.py`` commands can use it on a site that does not install
``django.contrib.admin``.
"""

from __future__ import annotations

from typing import Any

from ..admin_generics import ModelForm
from ..models import MFAConfiguration
from ..secret_fields import apply_secret, clear_box, secret_input

__all__ = ["MFAConfigurationForm"]


class MFAConfigurationForm(ModelForm[MFAConfiguration]):
    """Every field of the second factor's configuration; the client secret is write-only."""

    client_secret = secret_input(
        "Write-only: stored encrypted (needs DUO_OIDC['ENCRYPTION_KEYS']); leave blank to keep the "
        "current one. Prefer the environment variable field."
    )
    clear_client_secret = clear_box("Remove the stored encrypted secret.")

    class Meta:
        model = MFAConfiguration
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        apply_secret(
            self, data, field="client_secret", clear="clear_client_secret", store=self.instance.set_client_secret
        )
        return data
