"""Providers, identities, group rules and live sessions in the Django admin. A secret is never shown back.

Sessions: the session index (read-only, never a key) with "End these sessions", "End all sessions of
these users" on identities, and :func:`end_user_sessions` for a project's own ``UserAdmin``; all need
``duo_oidc.delete_livesession``.

Over 300 lines on purpose: the admin pages of the app's models in the one module Django's autodiscovery
imports, each page's permission rules next to its fields.

The connection fields (where the client secret goes, which tokens count, how identities become
users: :data:`~django_duo_oidc.models.CONNECTION_FIELDS` and the secret) are read-only unless the
user holds ``duo_oidc.change_provider_connection``; adding a provider needs it too. Every change to
them is logged (field names and the admin user, never a value) and recorded in the admin history.

Over 300 lines on purpose: Django's admin autodiscovery reads one ``admin`` module per app; the Duo Admin
API directory connections (issue 12) are one block at its end, under the same connection permission.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from .admin_generics import ModelAdmin, TabularInline
from .models import CONNECTION_FIELDS, ENDPOINT_FIELDS, GroupRule, Identity, LiveSession, Provider, ScopeRule
from .policy.rules import reset_policy_cache
from .providers.connection import check_connection
from .providers.forms import SECRET_FORM_FIELDS, ProviderForm
from .sessions import end_indexed

logger = logging.getLogger("django_duo_oidc")
# The request of the provider form being rendered, per thread (read-only fields are given the object only).
_current = threading.local()


def _forget_request(*args: Any) -> None:
    _current.request = None


CONNECTION_PERMISSION = "duo_oidc.change_provider_connection"


class GroupRuleInline(TabularInline[GroupRule, Provider]):
    model = GroupRule
    extra = 1


@admin.register(Provider)
class ProviderAdmin(ModelAdmin[Provider]):
    form = ProviderForm
    list_display = ("name", "slug", "issuer", "client_id", "secret_status", "enabled", "is_default")
    list_filter = ("enabled",)
    search_fields = ("name", "slug", "issuer", "client_id")
    readonly_fields = ("secret_status", "backchannel_logout_url", "created_at", "updated_at")
    inlines = [GroupRuleInline]
    actions = ["check_connection_action"]

    @method_decorator(sensitive_post_parameters("client_secret"))  # never in an error report
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # For backchannel_logout_url, which is given only the object; the page is rendered after this
        # returns (a TemplateResponse), so the request is forgotten once it has been rendered.
        _current.request = request
        response = None
        try:
            response = super().changeform_view(request, *args, **kwargs)
        finally:
            if isinstance(response, TemplateResponse) and not response.is_rendered:
                response.add_post_render_callback(_forget_request)
            else:
                _forget_request()
        return response

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
                    "resource_indicators",
                    "browser_login",
                )
            },
        ),
        (
            "Logout",
            {
                "fields": (
                    "end_session",
                    "logout_id_token_hint",
                    "revoke_at_logout",
                    "backchannel_logout",
                    "backchannel_logout_url",
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

    @admin.display(description="back-channel logout URL")
    def backchannel_logout_url(self, obj: Provider) -> str:
        """The URL to give the provider as this client's ``backchannel_logout_uri``."""
        if not obj.pk or not obj.slug:
            return "(shown once the provider is saved)"
        try:
            path = reverse("duo_oidc:backchannel-logout", args=[obj.slug])
        except NoReverseMatch:
            return "(include django_duo_oidc.urls in the URLconf to receive back-channel logout)"
        request = getattr(_current, "request", None)
        url = request.build_absolute_uri(path) if request is not None else path
        return url if obj.backchannel_logout else f"{url} (off: turn on back-channel logout to accept it)"

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

    def changed_connection_fields(self, form: forms.ModelForm[Provider]) -> list[str]:
        connection = set(CONNECTION_FIELDS) | set(SECRET_FORM_FIELDS)
        changed = [f for f in form.changed_data if f in connection]
        # A typed secret shows as changed even when it is the same: that is still a change of connection.
        return changed

    def save_model(self, request: HttpRequest, obj: Provider, form: forms.ModelForm[Provider], change: bool) -> None:
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
        self,
        request: HttpRequest,
        form: forms.ModelForm[Provider],  # type: ignore[override]  # the admin passes its ModelForm; the stubs say Form
        formsets: Any,
        add: bool = False,
    ) -> list[dict[str, Any]]:
        # django-stubs types the form as forms.Form, which a ModelForm is not; Django's code takes either.
        message: list[dict[str, Any]] = super().construct_change_message(
            request,
            form,  # type: ignore[arg-type]  # as above
            formsets,
            add,
        )
        fields = self.changed_connection_fields(form)
        if fields and not add:
            labels = [str(form.fields[f].label or f) if f in form.fields else f for f in fields]
            message.append({"changed": {"name": "connection", "object": obj_label(form), "fields": labels}})
        return message

    @admin.action(description="Check connection")
    def check_connection_action(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        try:
            redirect_uri: str | None = request.build_absolute_uri(reverse("duo_oidc:callback"))
        except NoReverseMatch:
            redirect_uri = None  # the login URLs are not included: any URL does for the made-up code
        for provider in queryset:
            report = check_connection(provider, redirect_uri=redirect_uri)
            level = messages.SUCCESS if report.ok else messages.ERROR
            verdict = "works" if report.ok else "has problems"
            self.message_user(request, f"{provider.name} {verdict}: " + " ".join(report.lines), level)


def obj_label(form: forms.ModelForm[Provider]) -> str:
    return str(form.instance.slug)


# Ending sessions -----------------------------------------------------------------------------------
# Ending a session is deleting its index row and the session: the permission is delete_livesession.

END_SESSIONS_PERMISSION = "duo_oidc.delete_livesession"


def _may_end_sessions(modeladmin: admin.ModelAdmin[Any], request: HttpRequest) -> bool:
    if request.user.has_perm(END_SESSIONS_PERMISSION):
        return True
    logger.warning("Admin user %s may not end sessions (needs %s)", request.user.pk, END_SESSIONS_PERMISSION)
    modeladmin.message_user(request, "You may not end sessions.", messages.ERROR)
    return False


def _report_ended(modeladmin: admin.ModelAdmin[Any], request: HttpRequest, ended: int, whose: str) -> None:
    logger.warning("Admin user %s ended %s session(s) of %s", request.user.pk, ended, whose)
    modeladmin.message_user(request, f"Ended {ended} session(s) of {whose}.", messages.SUCCESS)


@admin.action(description="End all sessions of the selected users")
def end_user_sessions(modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]) -> None:
    """An admin action on a queryset of users: every indexed session of each ends at once.

    Add it to your own ``UserAdmin`` (``actions = [..., end_user_sessions]``); it checks the
    ``duo_oidc.delete_livesession`` permission itself.
    """
    if not _may_end_sessions(modeladmin, request):
        return
    users = list(queryset)
    reason = f"admin: ended by admin user {request.user.pk}"
    ended = end_indexed(LiveSession.objects.filter(user__in=users), reason=reason, request=request)
    _report_ended(modeladmin, request, ended, f"{len(users)} user(s)")


@admin.register(Identity)
class IdentityAdmin(ModelAdmin[Identity]):
    list_display = ("user", "provider", "sub", "created_at", "last_login_at")
    list_filter = ("provider",)
    search_fields = ("sub", "user__username", "user__email")
    raw_id_fields = ("user",)
    readonly_fields = ("provider", "sub", "created_at", "last_login_at", "granted_staff")
    actions = ["end_all_sessions"]

    def has_end_sessions_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(END_SESSIONS_PERMISSION)

    @admin.action(description="End all sessions of these users", permissions=["end_sessions"])
    def end_all_sessions(self, request: HttpRequest, queryset: QuerySet[Identity]) -> None:
        """Every indexed session of each identity's user, whichever provider (or password+MFA) opened it."""
        users = get_user_model()._default_manager.filter(duo_identities__in=queryset).distinct()
        end_user_sessions(self, request, users)


@admin.register(LiveSession)
class LiveSessionAdmin(ModelAdmin[LiveSession]):
    """The session index, read-only: who is logged in, through which provider, until when. Never a key.

    Rows are not deleted here (that would forget a session without ending it); the "End these
    sessions" action ends them.
    """

    list_display = ("user", "provider", "kind", "created_at", "expires_at")
    list_filter = ("kind", "provider")
    search_fields = ("user__username", "user__email")
    fields = ("user", "provider", "kind", "sub", "created_at", "expires_at")
    readonly_fields = fields
    list_select_related = ("user", "provider")
    actions = ["end_these_sessions"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LiveSession | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: LiveSession | None = None) -> bool:
        return False

    def has_end_sessions_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(END_SESSIONS_PERMISSION)

    @admin.action(description="End these sessions", permissions=["end_sessions"])
    def end_these_sessions(self, request: HttpRequest, queryset: QuerySet[LiveSession]) -> None:
        if not _may_end_sessions(self, request):
            return
        users = queryset.values("user").distinct().count()
        reason = f"admin: ended by admin user {request.user.pk}"
        ended = end_indexed(queryset, reason=reason, request=request)
        _report_ended(self, request, ended, f"{users} user(s)")


@admin.register(ScopeRule)
class ScopeRuleAdmin(ModelAdmin[ScopeRule]):
    list_display = ("path_prefix", "url_name", "scopes", "any_of", "max_age", "enabled")
    list_filter = ("enabled",)

    def save_model(self, request: HttpRequest, obj: ScopeRule, form: forms.ModelForm[ScopeRule], change: bool) -> None:
        super().save_model(request, obj, form, change)
        reset_policy_cache()  # this process at once; other workers within policy.rules.RULES_TTL seconds

    def delete_model(self, request: HttpRequest, obj: ScopeRule) -> None:
        super().delete_model(request, obj)
        reset_policy_cache()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        super().delete_queryset(request, queryset)  # the changelist's "Delete selected" action
        reset_policy_cache()


# The second factor (Duo Universal Prompt): its admin pages, and its inline on the user's admin page.
# Access review (issue 12)
from .directory.review import AccessReviewAdmin  # noqa: E402
from .mfa import admin as mfa_admin  # noqa: E402, F401
from .models import DirectoryUser  # noqa: E402

admin.site.register(DirectoryUser, AccessReviewAdmin)


# Directory connections (Duo Admin API, issue 12) ------------------------------------------------------
# One block, kept together: the access review's admin (DirectoryUser) lives in directory/review.py.

from .directory.client import DirectoryError  # noqa: E402
from .directory.client import check_connection as check_directory_connection  # noqa: E402
from .directory.forms import (  # noqa: E402
    DIRECTORY_CONNECTION_FIELDS,
    DIRECTORY_SECRET_FORM_FIELDS,
    DirectoryConnectionForm,
)
from .directory.sync import sync_connection  # noqa: E402
from .models import DirectoryConnection  # noqa: E402


@admin.register(DirectoryConnection)
class DirectoryConnectionAdmin(ModelAdmin[DirectoryConnection]):
    """Duo Admin API connections: never shows the secret key; "Check connection", "Sync now", "Preview sync"."""

    form = DirectoryConnectionForm
    list_display = (
        "slug",
        "name",
        "api_host",
        "integration_key",
        "provider",
        "match",
        "secret_status",
        "enabled",
        "last_sync_at",
        "last_sync_ok",
    )
    list_filter = ("enabled", "last_sync_ok", "provider")
    search_fields = ("slug", "name", "api_host", "integration_key")
    readonly_fields = ("secret_status", "last_sync_at", "last_sync_ok", "last_sync_summary", "created_at", "updated_at")
    actions = ["check_connection_action", "sync_now_action", "preview_sync_action"]
    fieldsets = (
        (None, {"fields": ("slug", "name", "enabled", "provider")}),
        (
            "Admin API",
            {
                "fields": (
                    "api_host",
                    "integration_key",
                    "secret_key_env",
                    "secret_key",
                    "clear_secret_key",
                    "secret_status",
                    "ca_certs",
                )
            },
        ),
        ("Matching and groups", {"fields": ("match", "manage_groups", "group_prefix")}),
        ("Deprovisioning", {"fields": ("deprovision", "max_deprovision_percent")}),
        ("Last sync", {"fields": ("last_sync_at", "last_sync_ok", "last_sync_summary", "created_at", "updated_at")}),
    )

    @method_decorator(sensitive_post_parameters("secret_key"))  # never in an error report
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)

    @admin.display(description="secret key")
    def secret_status(self, obj: DirectoryConnection) -> str:
        return obj.secret_status

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and request.user.has_perm(CONNECTION_PERMISSION)

    def has_change_permission(self, request: HttpRequest, obj: DirectoryConnection | None = None) -> bool:
        # A connection decides whose access a sync takes away: as sensitive as a provider's connection.
        return super().has_change_permission(request, obj) and request.user.has_perm(CONNECTION_PERMISSION)

    def save_model(
        self, request: HttpRequest, obj: DirectoryConnection, form: forms.ModelForm[DirectoryConnection], change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        fields = [f for f in form.changed_data if f in DIRECTORY_CONNECTION_FIELDS or f in DIRECTORY_SECRET_FORM_FIELDS]
        if fields:
            logger.warning(
                "Directory %s: connection %s by admin user %s: %s",
                obj.slug,
                "changed" if change else "created",
                request.user.pk,
                ", ".join(fields),
            )

    @admin.action(description="Check connection")
    def check_connection_action(self, request: HttpRequest, queryset: QuerySet[DirectoryConnection]) -> None:
        for connection in queryset:
            report = check_directory_connection(connection)
            level = messages.SUCCESS if report.ok else messages.ERROR
            verdict = "works" if report.ok else "has problems"
            self.message_user(request, f"{connection} {verdict}: " + " ".join(report.lines), level)

    def _sync(self, request: HttpRequest, queryset: QuerySet[DirectoryConnection], *, dry_run: bool) -> None:
        for connection in queryset.select_related("provider"):
            if not connection.enabled:
                self.message_user(request, f"{connection} is disabled: not synced.", messages.ERROR)
                continue
            try:
                result = sync_connection(connection, dry_run=dry_run)
            except DirectoryError as exc:  # sync_connection reports failures itself; defensive only
                self.message_user(request, f"{connection}: {exc.message}", messages.ERROR)
                continue
            changes = [str(c) for c in result.changes[:20]]
            more = len(result.changes) - len(changes)
            text = f"{connection}: {result.summary()}"
            if changes:
                text += " - " + "; ".join(changes) + (f"; and {more} more" if more > 0 else "")
            self.message_user(request, text, messages.SUCCESS if result.ok else messages.ERROR)
            if not dry_run:
                logger.warning("Directory %s: sync started by admin user %s", connection.slug, request.user.pk)

    @admin.action(description="Sync now", permissions=["change"])
    def sync_now_action(self, request: HttpRequest, queryset: QuerySet[DirectoryConnection]) -> None:
        self._sync(request, queryset, dry_run=False)

    @admin.action(description="Preview sync (dry run: changes nothing)", permissions=["change"])
    def preview_sync_action(self, request: HttpRequest, queryset: QuerySet[DirectoryConnection]) -> None:
        self._sync(request, queryset, dry_run=True)
