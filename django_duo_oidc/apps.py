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
        from django.db.models.signals import class_prepared, post_delete, post_save

        from . import checks as duo_checks
        from . import logsafe
        from .models import Identity
        from .resource import context as resource_context

        # Before the first request: every record of the "django_duo_oidc" logger is escaped.
        logsafe.install()

        # A user or an identity changed: bearer tokens re-read who they belong to at their next request.
        # post_save's sender is the class saved, so proxies and subclasses of the user model (an
        # "Employee" admin page) are connected too; every model is loaded when ready() runs. Each by its
        # sender: a receiver for all senders would turn off Django's fast delete for every model.
        from django.apps import apps

        watched = (apps.get_model(settings.AUTH_USER_MODEL), Identity)

        def watch(model: type) -> None:
            if not issubclass(model, watched):
                return
            for name, signal in (("saved", post_save), ("deleted", post_delete)):
                uid = f"duo_oidc_forget_linked_users_{name}_{model._meta.label}"
                signal.connect(resource_context.forget_linked_users, sender=model, dispatch_uid=uid)

        def watch_later(sender: type, **kwargs: object) -> None:
            watch(sender)  # a model class created after ready() (rare: tests, dynamic models)

        self._watch_later = watch_later  # the signal holds a weak reference
        for model in apps.get_models():
            watch(model)
        class_prepared.connect(watch_later, dispatch_uid="duo_oidc_watch_user_models")

        # Every logout (ours, the admin's, any view calling auth.logout) drops the session's index row.
        from django.contrib.auth.signals import user_logged_out

        from .sessions import index as sessions_index

        user_logged_out.connect(sessions_index.on_logged_out, dispatch_uid="duo_oidc_forget_session")

        checks.register(duo_checks.check_settings, checks.Tags.security)
        checks.register(duo_checks.check_providers, checks.Tags.database)
        checks.register(duo_checks.check_deploy, checks.Tags.security, deploy=True)
        checks.register(duo_checks.check_api_auth_order, checks.Tags.security, checks.Tags.urls)
        checks.register(duo_checks.check_mfa, checks.Tags.database)
        checks.register(duo_checks.check_mfa_deploy, checks.Tags.security, deploy=True)

        # The second factor: the admin site's login goes through Duo while it is on (every AdminSite that
        # does not override login; the middleware ends password sessions that went around it in any case).
        from django.contrib.admin.sites import AdminSite

        from .mfa import views as mfa_views
        from .mfa.who import reset_config_memo
        from .models import MFAConfiguration

        # Replacing a method of Django's class on purpose (mypy refuses assignments to methods).
        AdminSite.login = mfa_views.admin_login(AdminSite.login)  # type: ignore[method-assign,assignment]
        for signal in (post_save, post_delete):
            signal.connect(reset_config_memo, sender=MFAConfiguration, dispatch_uid=f"duo_oidc_mfa_{signal!r}")

        # A scope rule saved or deleted anywhere (the admin, duo_oidc_scope_rule, duo_oidc_import): this
        # process re-reads the rules at once, other processes within policy.rules.RULES_TTL seconds.
        from .models import ScopeRule
        from .policy.rules import reset_policy_cache

        def forget_scope_rules(**kwargs: object) -> None:
            reset_policy_cache()

        self._forget_scope_rules = forget_scope_rules  # the signal holds a weak reference
        for signal in (post_save, post_delete):
            signal.connect(forget_scope_rules, sender=ScopeRule, dispatch_uid=f"duo_oidc_scope_rules_{signal!r}")
