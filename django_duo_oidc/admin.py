"""Providers, identities and group rules in the Django admin. A secret is never shown back."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from .connection import check_connection
from .middleware import reset_policy_cache
from .models import GroupRule, Identity, Provider, ScopeRule


class ProviderForm(forms.ModelForm):
    client_secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: stored encrypted (needs DUO_OIDC['ENCRYPTION_KEYS']); leave blank to keep the "
        "current one. Prefer the environment variable field.",
    )
    clear_client_secret = forms.BooleanField(required=False, help_text="Remove the stored encrypted secret.")

    class Meta:
        model = Provider
        fields = "__all__"

    def clean(self) -> dict:
        data = super().clean()
        secret = data.get("client_secret")
        if secret:
            try:
                self.instance.set_client_secret(secret)
            except ImproperlyConfigured as exc:
                self.add_error("client_secret", str(exc))
        elif data.get("clear_client_secret"):
            self.instance.set_client_secret("")
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
                    "secret_status",
                    "token_auth_method",
                    "allowed_algorithms",
                )
            },
        ),
        ("Login request", {"fields": ("scopes", "prompt", "max_age", "use_userinfo", "introspect", "end_session")}),
        ("APIs (bearer access tokens)", {"fields": ("access_token_validation", "access_token_audiences")}),
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

    @admin.action(description="Check connection")
    def check_connection_action(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            report = check_connection(provider)
            level = messages.SUCCESS if report.ok else messages.ERROR
            verdict = "works" if report.ok else "has problems"
            self.message_user(request, f"{provider.name} {verdict}: " + " ".join(report.lines), level)


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
        reset_policy_cache()  # this process at once; other workers within middleware.RULES_TTL seconds

    def delete_model(self, request: HttpRequest, obj: ScopeRule) -> None:
        super().delete_model(request, obj)
        reset_policy_cache()
