"""The second factor in the Django admin: its configuration (the secret typed, stored encrypted, never
shown back), each user's last Duo second factor (read-only, also as an inline on the user's own admin page,
without replacing the project's ``UserAdmin``), and the "Revoke remembered browsers" action.

Registered on the default admin site when ``django_duo_oidc.admin`` imports this module.
"""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from ..admin_generics import ModelAdmin, StackedInline
from ..models import MFAConfiguration, MFAUserState
from .forms import MFAConfigurationForm

__all__ = [
    "MFAConfigurationAdmin",
    "MFAConfigurationForm",
    "MFAUserStateAdmin",
    "MFAUserStateInline",
    "show_mfa_state_on_user_admin",
]

logger = logging.getLogger("django_duo_oidc")


@admin.register(MFAConfiguration)
class MFAConfigurationAdmin(ModelAdmin[MFAConfiguration]):
    """The second factor's settings; the secret is typed, stored encrypted, and never shown back."""

    form = MFAConfigurationForm
    list_display = ("name", "enabled", "api_host", "client_id", "secret_status", "fail_mode", "who", "remember_days")
    readonly_fields = ("secret_status", "created_at", "updated_at")
    filter_horizontal = ("groups",)
    fieldsets = (
        (None, {"fields": ("name", "enabled", "fail_mode")}),
        (
            "Duo Web SDK application",
            {
                "fields": (
                    "client_id",
                    "client_secret_env",
                    "client_secret",
                    "clear_client_secret",
                    "secret_status",
                    "api_host",
                    "ca_certs",
                )
            },
        ),
        ("Who and how", {"fields": ("who", "groups", "username_from", "remember_days", "refused_factors")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    @method_decorator(sensitive_post_parameters("client_secret"))  # never in an error report
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # One configuration: a second row would only be confusing (the first enabled one is used).
        return super().has_add_permission(request) and not MFAConfiguration.objects.exists()

    @admin.display(description="client secret")
    def secret_status(self, obj: MFAConfiguration) -> str:
        return obj.secret_status

    def save_model(
        self, request: HttpRequest, obj: MFAConfiguration, form: forms.ModelForm[MFAConfiguration], change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        if form.changed_data:
            # Field names only, never a value: turning the second factor off or on is worth a log line.
            logger.warning(
                "Second factor configuration %s %s by admin user %s: %s",
                obj.pk,
                "changed" if change else "created",
                request.user.pk,
                ", ".join(form.changed_data),
            )


@admin.action(description="Revoke remembered browsers (Duo is asked at the next login)", permissions=["change"])
def revoke_remembered_browsers(modeladmin: Any, request: HttpRequest, queryset: QuerySet[MFAUserState]) -> None:
    count = queryset.update(remember_epoch=F("remember_epoch") + 1)
    logger.warning("Remembered browsers of %s user(s) revoked by admin user %s", count, request.user.pk)
    modeladmin.message_user(request, f"Remembered browsers revoked for {count} user(s).", messages.SUCCESS)


_MFA_STATE_FIELDS = ("last_auth_at", "last_result", "last_factor", "last_device", "last_reason", "remember_epoch")


@admin.register(MFAUserState)
class MFAUserStateAdmin(ModelAdmin[MFAUserState]):
    """Each user's last Duo second factor (read-only), and the revoke action for remembered browsers."""

    list_display = ("user", *_MFA_STATE_FIELDS)
    list_filter = ("last_result",)
    search_fields = ("user__username", "user__email")
    readonly_fields = ("user", *_MFA_STATE_FIELDS, "updated_at")
    actions = [revoke_remembered_browsers]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # written by logins only


class MFAUserStateInline(StackedInline[MFAUserState, Any]):
    """The last Duo second factor on the user's own admin page (read-only)."""

    model = MFAUserState
    fields = _MFA_STATE_FIELDS
    readonly_fields = _MFA_STATE_FIELDS
    can_delete = False
    extra = 0
    max_num = 0
    verbose_name = verbose_name_plural = "last Duo second factor"


def show_mfa_state_on_user_admin(site: admin.AdminSite = admin.site) -> bool:
    """Add :class:`MFAUserStateInline` to the user model's registered admin (not replacing it); return
    whether one was registered. Runs when this module is imported by the admin's autodiscovery, which
    imports ``django.contrib.auth``'s admin first when it is listed before this app."""
    from django.contrib.auth import get_user_model

    model_admin = site._registry.get(get_user_model())
    if model_admin is None:
        return False
    if MFAUserStateInline not in model_admin.inlines:
        # This site's registered instance gets its own list; the class (maybe shared) is left alone.
        model_admin.inlines = [*model_admin.inlines, MFAUserStateInline]  # type: ignore[misc]
    return True


show_mfa_state_on_user_admin()
