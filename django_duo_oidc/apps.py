from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class DuoOIDCConfig(AppConfig):
    name = "django_duo_oidc"
    label = "duo_oidc"
    verbose_name = "Duo single sign-on"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks as duo_checks
        from . import logsafe

        # Before the first request: every record of the "django_duo_oidc" logger is escaped.
        logsafe.install()

        checks.register(duo_checks.check_settings, checks.Tags.security)
        checks.register(duo_checks.check_providers, checks.Tags.database)
        checks.register(duo_checks.check_deploy, checks.Tags.security, deploy=True)
