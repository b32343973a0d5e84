"""Providers, identities and group rules in the Django admin. A secret is never shown back.

The connection fields (where the client secret goes, which tokens count, how identities become
users: :data:`~django_duo_oidc.models.CONNECTION_FIELDS` and the secret) are read-only unless the
user holds ``duo_oidc.change_provider_connection``; adding a provider needs it too. Every change to
them is logged (field names and the admin user, never a value) and recorded in the admin history.
"""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from .models import CONNECTION_FIELDS, ENDPOINT_FIELDS, GroupRule, Identity, Provider, ScopeRule
from .policy.rules import reset_policy_cache
from .providers.connection import check_connection

logger = logging.getLogger("django_duo_oidc")

CONNECTION_PERMISSION = "duo_oidc.change_provider_connection"
# Form-only fields that write the secret.
SECRET_FORM_FIELDS = ("client_secret", "clear_client_secret", "send_secret_to_new_connection")


class ProviderForm(forms.ModelForm):
    client_secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: stored encrypted (needs DUO_OIDC['ENCRYPTION_KEYS']); leave blank to keep the "
        "current one. Prefer the environment variable field.",
    )
    clear_client_secret = forms.BooleanField(required=False, help_text="Remove the stored encrypted secret.")
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

    def clean(self) -> dict:
        data = super().clean()
        if "client_secret" not in self.fields:
            return data
        secret = data.get("client_secret")
        if secret:
            try:
                self.instance.set_client_secret(secret)
            except ImproperlyConfigured as exc:
                self.add_error("client_secret", str(exc))
        elif data.get("clear_client_secret"):
            self.instance.set_client_secret("")
        if data.get("send_secret_to_new_connection"):
            self.instance.confirm_secret_for_connection()
        return data


class GroupRuleInline(admin.TabularInline):
    model = GroupRule
    extra = 1


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ("name", "slug", "issuer", "client_id", "secret_status", "enabled", "is_default")
    list_filter = ("enabled",)
    search_fields = ("name", "slug", "issuer", "client_id")
    readonly_fields = ("secret_status", "created_at", "updated_at")
    inlines = [GroupRuleInline]
    actions = ["check_connection_action"]

    @method_decorator(sensitive_post_parameters("client_secret"))  # never in an error report
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)

    fieldsets = (
        (None, {"fields": ("name", "slug", "enabled", "is_default")}),
        (
            "Connection",
            {
                "fields": (
                    "issuer",
                    "client_id",
                    "client_secret_env",
                    "client_secret",
                    "clear_client_secret",
                    "send_secret_to_new_connection",
                    "secret_status",
                    "token_auth_method",
                    "allowed_algorithms",
                )
            },
        ),
        (
            "Login request",
            {
                "fields": (
                    "scopes",
                    "prompt",
                    "max_age",
                    "use_userinfo",
                    "introspect",
                    "end_session",
                    "logout_id_token_hint",
                    "revoke_at_logout",
                    "resource_indicators",
                    "browser_login",
                )
            },
        ),
        (
            "APIs (bearer access tokens)",
            {
                "fields": (
                    "access_token_validation",
                    "access_token_audiences",
                    "access_token_require_audience",
                    "machine_clients",
                    "introspect_with",
                )
            },
        ),
        (
            "Endpoints set by hand (blank: from the provider's metadata)",
            {"classes": ("collapse",), "fields": ENDPOINT_FIELDS},
        ),
        (
            "Users",
            {
                "fields": (
                    "create_users",
                    "link_existing_by_email",
                    "username_claims",
                    "email_claim",
                    "first_name_claim",
                    "last_name_claim",
                )
            },
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="client secret")
    def secret_status(self, obj: Provider) -> str:
        return obj.secret_status

    # The connection permission ------------------------------------------------------------------

    def may_change_connection(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CONNECTION_PERMISSION)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A new provider is all connection: an issuer, a secret, linking rules.
        return super().has_add_permission(request) and self.may_change_connection(request)

    def get_form(self, request: HttpRequest, obj: Provider | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if self.may_change_connection(request):
            return form
        return type(form.__name__, (form,), {"connection_editable": False})

    def get_readonly_fields(self, request: HttpRequest, obj: Provider | None = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        if self.may_change_connection(request):
            return readonly
        return readonly + tuple(f for f in CONNECTION_FIELDS if f not in readonly)

    def get_fieldsets(self, request: HttpRequest, obj: Provider | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if self.may_change_connection(request):
            return fieldsets
        # The write-only secret fields cannot be shown read-only: they are left out.
        return [
            (name, {**options, "fields": tuple(f for f in options["fields"] if f not in SECRET_FORM_FIELDS)})
            for name, options in fieldsets
        ]

    def changed_connection_fields(self, form: forms.ModelForm) -> list[str]:
        connection = set(CONNECTION_FIELDS) | set(SECRET_FORM_FIELDS)
        changed = [f for f in form.changed_data if f in connection]
        # A typed secret shows as changed even when it is the same: that is still a change of connection.
        return changed

    def save_model(self, request: HttpRequest, obj: Provider, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        fields = self.changed_connection_fields(form)
        if fields:
            logger.warning(
                "Provider %s: connection %s by admin user %s: %s",
                obj.slug,
                "changed" if change else "created",
                request.user.pk,
                ", ".join(fields),
            )

    def construct_change_message(
        self, request: HttpRequest, form: forms.ModelForm, formsets: Any, add: bool = False
    ) -> list[dict[str, Any]]:
        message = super().construct_change_message(request, form, formsets, add)
        fields = self.changed_connection_fields(form)
        if fields and not add:
            labels = [str(form.fields[f].label or f) if f in form.fields else f for f in fields]
            message.append({"changed": {"name": "connection", "object": obj_label(form), "fields": labels}})
        return message

    @admin.action(description="Check connection")
    def check_connection_action(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            report = check_connection(provider)
            level = messages.SUCCESS if report.ok else messages.ERROR
            verdict = "works" if report.ok else "has problems"
            self.message_user(request, f"{provider.name} {verdict}: " + " ".join(report.lines), level)


def obj_label(form: forms.ModelForm) -> str:
    return str(form.instance.slug)


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    list_display = ("user", "provider", "sub", "created_at", "last_login_at")
    list_filter = ("provider",)
    search_fields = ("sub", "user__username", "user__email")
    raw_id_fields = ("user",)
    readonly_fields = ("provider", "sub", "created_at", "last_login_at", "granted_staff")


@admin.register(ScopeRule)
class ScopeRuleAdmin(admin.ModelAdmin):
    list_display = ("path_prefix", "url_name", "scopes", "any_of", "max_age", "enabled")
    list_filter = ("enabled",)

    def save_model(self, request: HttpRequest, obj: ScopeRule, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        reset_policy_cache()  # this process at once; other workers within policy.rules.RULES_TTL seconds

    def delete_model(self, request: HttpRequest, obj: ScopeRule) -> None:
        super().delete_model(request, obj)
        reset_policy_cache()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        super().delete_queryset(request, queryset)  # the changelist's "Delete selected" action
        reset_policy_cache()


# The second factor (Duo Universal Prompt): its admin pages, and its inline on the user's admin page.
from .mfa import admin as mfa_admin  # noqa: E402, F401
