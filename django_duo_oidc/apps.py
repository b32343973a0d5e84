from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class DuoOIDCConfig(AppConfig):
    name = "django_duo_oidc"
    label = "duo_oidc"
    verbose_name = "Duo single sign-on"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import post_delete, post_save

        from . import checks as duo_checks
        from . import logsafe
        from .models import Identity
        from .resource import context as resource_context

        # Before the first request: every record of the "django_duo_oidc" logger is escaped.
        logsafe.install()

        # A user or an identity changed: bearer tokens re-read who they belong to at their next request.
        for model in (settings.AUTH_USER_MODEL, Identity):
            for name, signal in (("saved", post_save), ("deleted", post_delete)):
                uid = f"duo_oidc_forget_linked_users_{name}_{model}"
                signal.connect(resource_context.forget_linked_users, sender=model, dispatch_uid=uid)

        checks.register(duo_checks.check_settings, checks.Tags.security)
        checks.register(duo_checks.check_providers, checks.Tags.database)
        checks.register(duo_checks.check_deploy, checks.Tags.security, deploy=True)
