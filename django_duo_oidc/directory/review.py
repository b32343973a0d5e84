"""The access review: what Duo and Django each say about the people who can sign in, side by side.

Read-only, in the admin. :class:`AccessReviewAdmin` lists the :class:`~django_duo_oidc.models.DirectoryUser`
snapshots the last complete directory sync stored, one row per Duo user: Duo status, groups, enrolment,
devices (kind and count), last Duo login, the linked Django user, and where Duo and Django disagree
(:func:`review_flags`). Filters: "disabled in Duo", "not enrolled", "Duo and Django disagree", and
"no Duo counterpart", which opens :meth:`AccessReviewAdmin.no_counterpart_view`: the Django users with an
identity of a connection's provider that no Duo user of that connection links.

Nothing here writes: no add, change or delete permission, whoever asks; the view permission
(``duo_oidc.view_directoryuser``) is needed for every page and for the CSV export. Only allow-listed facts
are shown (group names; device kinds with integer counts), whatever else a snapshot holds, so a
secret never reaches a page or an export. Text from Duo is escaped on pages and neutralised in CSV
cells (a leading ``=``, ``+``, ``-``, ``@`` would otherwise run as a spreadsheet formula).

Registered from :mod:`django_duo_oidc.admin`. Over 300 lines on purpose: the columns, filters, the Django-side
listing and both CSV exports read one allow-list of what may be shown, kept in one module so that it is
decided in one place.
"""

from __future__ import annotations

import csv
import datetime
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from ..admin_generics import ModelAdmin
from ..models import DirectoryConnection, DirectoryUser, Identity

if TYPE_CHECKING:
    # The stubs' type of a list filter's choice (a TypedDict); Django itself names none.
    from django.contrib.admin.filters import _ListFilterChoices

logger = logging.getLogger("django_duo_oidc")

__all__ = [
    "ACTIVE_STATUSES",
    "DEVICE_KINDS",
    "AccessReviewAdmin",
    "csv_cell",
    "csv_response",
    "device_counts",
    "group_names",
    "review_flags",
]

#: Duo statuses that may sign in (DUO.md 4.5). Every other one (``disabled``, ``locked out``, ``pending
#: deletion``, one Duo adds later) refuses, as the sync's deprovisioning decides (fail closed).
ACTIVE_STATUSES = ("active", "bypass")
#: The device kinds a snapshot may count, in display order, with their singular and plural labels.
DEVICE_KINDS: dict[str, tuple[str, str]] = {
    "phones": ("phone", "phones"),
    "tokens": ("hardware token", "hardware tokens"),
    "webauthn": ("WebAuthn credential", "WebAuthn credentials"),
    "desktop": ("desktop authenticator", "desktop authenticators"),
}
#: A sync older than this makes the review say that it may be out of date.
STALE_AFTER = datetime.timedelta(days=1)
EXPORT_CHUNK = 500

# Review flags (stable strings: shown, exported, and asserted by the tests).
FLAG_DISABLED_BUT_ACTIVE = "disabled in Duo but active here"
FLAG_DELETED = "deleted from Duo"
FLAG_DELETED_BUT_ACTIVE = "deleted from Duo but active here"
FLAG_NOT_ENROLLED = "not enrolled"
FLAG_BYPASS = "bypass: no second factor in Duo"
FLAG_NOT_LINKED = "no Django user"
FLAG_NO_COUNTERPART = "no Duo counterpart"


# What a snapshot may show ---------------------------------------------------------------------------


def device_counts(devices: Any) -> dict[str, int]:
    """The allow-listed device kinds of a snapshot's ``devices`` with a non-negative integer count.

    Anything else the JSON holds (another key, a string, a nested object) is never shown.
    """
    if not isinstance(devices, dict):
        return {}
    counts = {}
    for kind in DEVICE_KINDS:
        value = devices.get(kind)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            counts[kind] = value
    return counts


def group_names(groups: Any) -> list[str]:
    """The names of a snapshot's ``groups`` (``[{"group_id", "name"}]``); nothing else of them is shown."""
    if not isinstance(groups, list):
        return []
    return [str(g["name"]) for g in groups if isinstance(g, dict) and isinstance(g.get("name"), str)]


def describe_devices(devices: Any) -> str:
    """E.g. ``"1 phone, 2 WebAuthn credentials"``, or ``"none"``."""
    parts = []
    for kind, count in device_counts(devices).items():
        if count:
            singular, plural = DEVICE_KINDS[kind]
            parts.append(f"{count} {singular if count == 1 else plural}")
    return ", ".join(parts) or "none"


def duo_status(entry: DirectoryUser) -> str:
    """Duo's status for the user, or "deleted" once Duo no longer lists them."""
    if entry.deleted_at is not None:
        return "deleted"
    return entry.status or "unknown"


def _linked_user(entry: DirectoryUser) -> Any:
    return entry.identity.user if entry.identity_id is not None and entry.identity is not None else None


def review_flags(entry: DirectoryUser) -> list[str]:
    """Where Duo and Django disagree about ``entry``, and what a reviewer should look at, worst first.

    Reads ``entry.identity.user`` (select it with the row: ``identity__user``).
    """
    user = _linked_user(entry)
    active_here = bool(user is not None and user.is_active)
    flags = []
    if entry.deleted_at is not None:
        flags.append(FLAG_DELETED_BUT_ACTIVE if active_here else FLAG_DELETED)
    elif entry.status not in ACTIVE_STATUSES and active_here:
        flags.append(FLAG_DISABLED_BUT_ACTIVE)
    if entry.status == "bypass" and entry.deleted_at is None:
        flags.append(FLAG_BYPASS)
    if not entry.is_enrolled:
        flags.append(FLAG_NOT_ENROLLED)
    if user is None:
        flags.append(FLAG_NOT_LINKED)
    return flags


def disagreement_q() -> Q:
    """Rows whose linked Django user is active while Duo refuses them (disabled, locked out, deleted...)."""
    refused = ~Q(status__in=ACTIVE_STATUSES) | Q(deleted_at__isnull=False)
    return refused & Q(identity__user__is_active=True)


def user_admin_url(user: Any) -> str | None:
    """The admin change page of a Django user, or None when the user model is not in the admin."""
    opts = user._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[user.pk])
    except NoReverseMatch:
        return None


# CSV -------------------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text: a leading formula character gets a ``'`` (OWASP)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(filename: str, header: list[str], rows: Iterable[list[Any]]) -> StreamingHttpResponse:
    """Stream ``rows`` as a CSV attachment (rows are read lazily: an export of 10,000 users stays small)."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([csv_cell(v) for v in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _iso(value: Any) -> str:
    return value.isoformat() if value is not None else ""


# Filters ----------------------------------------------------------------------------------------------


class DuoStatusFilter(admin.SimpleListFilter):
    title = "Duo status"
    parameter_name = "duo_status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("disabled", "disabled in Duo (disabled, locked out, any status but active or bypass)"),
            ("deleted", "deleted from Duo"),
            ("bypass", "bypass (no second factor)"),
            ("active", "active"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DirectoryUser]) -> QuerySet[DirectoryUser]:
        value = self.value()
        if value == "disabled":
            return queryset.exclude(status__in=ACTIVE_STATUSES).filter(deleted_at__isnull=True)
        if value == "deleted":
            return queryset.filter(deleted_at__isnull=False)
        if value in ("bypass", "active"):
            return queryset.filter(status=value, deleted_at__isnull=True)
        return queryset


class EnrolmentFilter(admin.SimpleListFilter):
    title = "enrolment"
    parameter_name = "enrolment"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("not_enrolled", "not enrolled"), ("enrolled", "enrolled")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DirectoryUser]) -> QuerySet[DirectoryUser]:
        if self.value() == "not_enrolled":
            return queryset.filter(is_enrolled=False)
        if self.value() == "enrolled":
            return queryset.filter(is_enrolled=True)
        return queryset


class DisagreementFilter(admin.SimpleListFilter):
    title = "Duo and Django"
    parameter_name = "review"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("disagree", "disagree (refused in Duo, active here)"),
            ("not_linked", "no Django user"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[DirectoryUser]) -> QuerySet[DirectoryUser]:
        if self.value() == "disagree":
            return queryset.filter(disagreement_q())
        if self.value() == "not_linked":
            return queryset.filter(identity__isnull=True)
        return queryset


class NoCounterpartFilter(admin.SimpleListFilter):
    """The Django side of the review is another listing (users, not Duo snapshots): this filter links to it."""

    title = "Django users"
    parameter_name = "counterpart"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("none", FLAG_NO_COUNTERPART)]

    def choices(self, changelist: Any) -> Iterator[_ListFilterChoices]:
        yield {
            "selected": True,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Duo users (this list)",
        }
        yield {
            "selected": False,
            "query_string": reverse("admin:duo_oidc_directoryuser_no_counterpart"),
            "display": f"{FLAG_NO_COUNTERPART} →",
        }

    def queryset(self, request: HttpRequest, queryset: QuerySet[DirectoryUser]) -> QuerySet[DirectoryUser]:
        return queryset


# The "no Duo counterpart" listing -------------------------------------------------------------------


@dataclass(frozen=True)
class CounterpartRow:
    """One identity of the connection's provider that no Duo user of the connection links."""

    identity: Identity
    user: Any
    user_url: str | None


def identities_without_counterpart(connection: DirectoryConnection) -> QuerySet[Identity]:
    """Identities of ``connection``'s provider that no :class:`DirectoryUser` of the connection links.

    One query (a correlated ``NOT EXISTS``), users selected with it; active users first.
    """
    linked = DirectoryUser.objects.filter(connection=connection, identity=OuterRef("pk"))
    return (
        Identity.objects.filter(provider_id=connection.provider_id)
        .filter(~Exists(linked))
        .select_related("user", "provider")
        .order_by("-user__is_active", "user__" + get_user_model().USERNAME_FIELD, "pk")
    )


def sync_caveat(connection: DirectoryConnection, now: Any = None) -> str | None:
    """Why the snapshot of ``connection`` may not be the truth today, or None."""
    now = now or timezone.now()
    label = connection.name or connection.slug
    if connection.last_sync_at is None:
        return f"{label}: no sync has completed yet, so the review has nothing from Duo."
    if connection.last_sync_ok is False:
        return (
            f"{label}: the last sync failed; the review shows the last complete one "
            f"({connection.last_sync_at:%Y-%m-%d %H:%M} UTC)."
        )
    if now - connection.last_sync_at > STALE_AFTER:
        return f"{label}: the last sync is from {connection.last_sync_at:%Y-%m-%d %H:%M} UTC."
    return None


# The admin ---------------------------------------------------------------------------------------------


class AccessReviewAdmin(ModelAdmin[DirectoryUser]):
    """The access review: read-only, one row per Duo user of each directory connection."""

    list_display = (
        "duo_username",
        "realname",
        "connection",
        "duo_status",
        "duo_groups",
        "enrolled",
        "devices_summary",
        "last_duo_login",
        "django_user",
        "active_here",
        "review",
    )
    list_display_links = ("duo_username",)
    list_filter = (DuoStatusFilter, EnrolmentFilter, DisagreementFilter, NoCounterpartFilter, "connection")
    list_select_related = ("connection", "identity__user")
    search_fields = ("username", "email", "realname", "duo_user_id")
    list_per_page = 100
    actions = ["export_csv"]
    fields = (
        "connection",
        "duo_user_id",
        "username",
        "email",
        "realname",
        "duo_status",
        "enrolled",
        "duo_groups",
        "devices_summary",
        "last_duo_login",
        "seen_at",
        "deleted_at",
        "deprovisioned_at",
        "django_user",
        "active_here",
        "review",
    )
    readonly_fields = fields

    # Read-only, whoever asks -----------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[DirectoryUser]:
        return super().get_queryset(request).select_related("connection", "identity__user")

    # Columns ----------------------------------------------------------------------------------------

    @admin.display(description="Duo user", ordering="username")
    def duo_username(self, obj: DirectoryUser) -> str:
        return obj.username or obj.email or obj.duo_user_id

    @admin.display(description="Duo status", ordering="status")
    def duo_status(self, obj: DirectoryUser) -> str:
        return duo_status(obj)

    @admin.display(description="Duo groups")
    def duo_groups(self, obj: DirectoryUser) -> str:
        return ", ".join(group_names(obj.groups)) or "-"

    @admin.display(description="enrolled in Duo", boolean=True, ordering="is_enrolled")
    def enrolled(self, obj: DirectoryUser) -> bool:
        return obj.is_enrolled

    @admin.display(description="last Duo login", ordering="last_login")
    def last_duo_login(self, obj: DirectoryUser) -> Any:
        return obj.last_login

    @admin.display(description="devices")
    def devices_summary(self, obj: DirectoryUser) -> str:
        return describe_devices(obj.devices)

    @admin.display(description="Django user", ordering="identity__user__username")
    def django_user(self, obj: DirectoryUser) -> str:
        user = _linked_user(obj)
        if user is None:
            return "-"
        url = user_admin_url(user)
        name = user.get_username()
        return format_html('<a href="{}">{}</a>', url, name) if url else name

    @admin.display(description="active here", boolean=True)
    def active_here(self, obj: DirectoryUser) -> bool | None:
        user = _linked_user(obj)
        return None if user is None else user.is_active

    @admin.display(description="review")
    def review(self, obj: DirectoryUser) -> str:
        flags = review_flags(obj)
        if not flags:
            return "-"
        return format_html_join(mark_safe("<br>"), "{}", ((f,) for f in flags))

    # Pages ------------------------------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.no_counterpart_view)
        return [path("no-counterpart/", view, name="duo_oidc_directoryuser_no_counterpart"), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if self.has_view_permission(request):
            self.warn_about_snapshots(request, DirectoryConnection.objects.all())
        context = {"title": "Access review: Duo users and their Django accounts", **(extra_context or {})}
        return super().changelist_view(request, context)

    def warn_about_snapshots(self, request: HttpRequest, connections: Iterable[DirectoryConnection]) -> None:
        now = timezone.now()
        for connection in connections:
            caveat = sync_caveat(connection, now)
            if caveat:
                self.message_user(request, caveat, messages.WARNING)

    def no_counterpart_view(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        """Django users with an identity of a connection's provider that no Duo user of it links.

        ``?connection=<slug>`` picks the connection (default: the first), ``?format=csv`` exports it.
        """
        if not self.has_view_permission(request):
            raise PermissionDenied
        connections = list(DirectoryConnection.objects.select_related("provider").order_by("slug"))
        wanted = request.GET.get("connection", "")
        connection = next((c for c in connections if c.slug == wanted), connections[0] if connections else None)
        identities = identities_without_counterpart(connection) if connection else Identity.objects.none()
        if connection is not None and request.GET.get("format") == "csv":
            return self.export_no_counterpart(request, connection, identities)
        page = Paginator(identities, self.list_per_page).get_page(request.GET.get("p"))
        rows = [CounterpartRow(i, i.user, user_admin_url(i.user)) for i in page.object_list]
        caveat = sync_caveat(connection) if connection else None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Access review: {FLAG_NO_COUNTERPART}",
            "connections": connections,
            "connection": connection,
            "caveat": caveat,
            "page": page,
            "rows": rows,
            "flag": FLAG_NO_COUNTERPART,
            "changelist_url": reverse("admin:duo_oidc_directoryuser_changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "duo_oidc/access_review_no_counterpart.html", context)

    # Exports ----------------------------------------------------------------------------------------

    REVIEW_HEADER = [
        "connection",
        "duo_user_id",
        "duo_username",
        "email",
        "realname",
        "duo_status",
        "enrolled",
        "groups",
        *DEVICE_KINDS,
        "last_duo_login",
        "seen_at",
        "django_user",
        "active_here",
        "review",
    ]

    @admin.action(description="Export the selected rows of the review as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[DirectoryUser]) -> StreamingHttpResponse:
        selected = queryset.select_related("connection", "identity__user").order_by("connection__slug", "username")
        logger.info("Access review exported as CSV by admin user %s", request.user.pk)

        def rows() -> Iterator[list[Any]]:
            for entry in selected.iterator(chunk_size=EXPORT_CHUNK):
                user = _linked_user(entry)
                counts = device_counts(entry.devices)
                yield [
                    entry.connection.slug,
                    entry.duo_user_id,
                    entry.username,
                    entry.email,
                    entry.realname,
                    duo_status(entry),
                    "yes" if entry.is_enrolled else "no",
                    "; ".join(group_names(entry.groups)),
                    *(counts.get(kind, "") for kind in DEVICE_KINDS),
                    _iso(entry.last_login),
                    _iso(entry.seen_at),
                    user.get_username() if user is not None else "",
                    "" if user is None else ("yes" if user.is_active else "no"),
                    "; ".join(review_flags(entry)),
                ]

        return csv_response("access-review.csv", self.REVIEW_HEADER, rows())

    def export_no_counterpart(
        self, request: HttpRequest, connection: DirectoryConnection, identities: QuerySet[Identity]
    ) -> StreamingHttpResponse:
        logger.info(
            "Access review (%s, no Duo counterpart) exported as CSV by admin user %s", connection.slug, request.user.pk
        )
        header = ["connection", "provider", "django_user", "email", "active_here", "sub", "last_login_at", "review"]

        def rows() -> Iterator[list[Any]]:
            for identity in identities.iterator(chunk_size=EXPORT_CHUNK):
                user = identity.user
                yield [
                    connection.slug,
                    identity.provider.slug,
                    user.get_username(),
                    getattr(user, "email", ""),
                    "yes" if user.is_active else "no",
                    identity.sub,
                    _iso(identity.last_login_at),
                    FLAG_NO_COUNTERPART,
                ]

        return csv_response(f"access-review-{connection.slug}-no-counterpart.csv", header, rows())
