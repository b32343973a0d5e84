"""The access review in the admin (issue 12, "Access review"): django_duo_oidc.directory.review.

What the last sync stored (DirectoryUser snapshots) next to what Django says, read-only, for the
holders of the view permission only, without N+1 queries, and never a secret or a live formula.
"""

from __future__ import annotations

import csv
import datetime
import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_duo_oidc.directory.review import (
    FLAG_BYPASS,
    FLAG_DELETED,
    FLAG_DELETED_BUT_ACTIVE,
    FLAG_DISABLED_BUT_ACTIVE,
    FLAG_NO_COUNTERPART,
    FLAG_NOT_ENROLLED,
    FLAG_NOT_LINKED,
    csv_cell,
    review_flags,
    user_admin_url,
)
from django_duo_oidc.models import DirectoryConnection, DirectoryUser, Identity, Provider

pytestmark = pytest.mark.django_db
User = get_user_model()

CHANGELIST = "admin:duo_oidc_directoryuser_changelist"
NO_COUNTERPART = "admin:duo_oidc_directoryuser_no_counterpart"
SKEY = "s3cr3t-admin-api-key-0123456789abcdefghij"


@pytest.fixture
def connection(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> DirectoryConnection:
    monkeypatch.setenv("DUO_ADMIN_SKEY", SKEY)
    conn = DirectoryConnection.objects.create(
        slug="corp",
        name="Corp directory",
        api_host="127.0.0.1:18361",
        integration_key="DIXXXXXXXXXXXXXXXXXX",
        secret_key_env="DUO_ADMIN_SKEY",
        provider=provider,
        last_sync_at=timezone.now(),
        last_sync_ok=True,
    )
    return conn


def linked(
    connection: DirectoryConnection, name: str, *, active: bool = True, sub: str | None = None, **duo: Any
) -> DirectoryUser:
    """A Django user with an identity of the connection's provider, and the Duo snapshot that links it."""
    user = User.objects.create_user(name, f"{name}@example.test", is_active=active)
    identity = Identity.objects.create(provider=connection.provider, sub=sub or f"sub-{name}", user=user)
    return snapshot(connection, name, identity=identity, **duo)


def snapshot(connection: DirectoryConnection, name: str, **duo: Any) -> DirectoryUser:
    fields: dict[str, Any] = {
        "duo_user_id": f"DU{name.upper():0<18}"[:20],
        "username": name,
        "email": f"{name}@example.test",
        "realname": name.title(),
        "status": "active",
        "is_enrolled": True,
        "groups": [{"group_id": "DGENG", "name": "engineering"}],
        "devices": {"phones": 1, "tokens": 0, "webauthn": 2, "desktop": 0},
        "seen_at": timezone.now(),
    }
    fields.update(duo)
    return DirectoryUser.objects.create(connection=connection, **fields)


@pytest.fixture
def admin_client(db: Any) -> Client:
    root = User.objects.create_superuser("root", "root@example.test", "pw")
    client = Client()
    client.force_login(root, backend="django.contrib.auth.backends.ModelBackend")
    return client


def staff_client(*perms: str) -> Client:
    staff = User.objects.create_user("reviewer", "reviewer@example.test", "pw", is_staff=True)
    for codename in perms:
        staff.user_permissions.add(Permission.objects.get(content_type__app_label="duo_oidc", codename=codename))
    client = Client()
    client.force_login(staff, backend="django.contrib.auth.backends.ModelBackend")
    return client


def export(client: Client, pks: list[int], **query: str) -> tuple[int, list[list[str]]]:
    url = reverse(CHANGELIST)
    data = {"action": "export_csv", "_selected_action": [str(pk) for pk in pks], "index": "0"}
    response = client.post(url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""), data)
    if response.status_code != 200 or not response.get("Content-Type", "").startswith("text/csv"):
        return response.status_code, []
    body = b"".join(response.streaming_content).decode()
    return response.status_code, list(csv.reader(io.StringIO(body)))


# What a row shows ----------------------------------------------------------------------------------


def test_a_row_shows_duo_status_groups_enrolment_devices_last_login_and_the_linked_user(
    admin_client: Client, connection: DirectoryConnection
) -> None:
    last = timezone.now() - datetime.timedelta(days=3)
    entry = linked(connection, "alice", last_login=last, groups=[{"group_id": "DG1", "name": "crm-users"}])
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "alice" in page and "Alice" in page
    assert "crm-users" in page
    assert "1 phone, 2 WebAuthn credentials" in page
    user = entry.identity.user
    assert reverse("admin:auth_user_change", args=[user.pk]) in page  # a link to the Django user
    assert "Access review" in page


def test_flags_say_where_duo_and_django_disagree(connection: DirectoryConnection) -> None:
    now = timezone.now()
    cases = {
        "dis": (linked(connection, "dis", status="disabled"), [FLAG_DISABLED_BUT_ACTIVE]),
        "locked": (linked(connection, "locked", status="locked out"), [FLAG_DISABLED_BUT_ACTIVE]),
        "off": (linked(connection, "off", status="disabled", active=False), []),
        # Any status but active or bypass refuses sign-in, as the sync decides (a status Duo adds later too).
        "pending": (linked(connection, "pending", status="pending deletion"), [FLAG_DISABLED_BUT_ACTIVE]),
        "newstatus": (linked(connection, "newstatus", status="suspended"), [FLAG_DISABLED_BUT_ACTIVE]),
        "gone": (linked(connection, "gone", deleted_at=now), [FLAG_DELETED_BUT_ACTIVE]),
        "goneoff": (linked(connection, "goneoff", deleted_at=now, active=False), [FLAG_DELETED]),
        "bypass": (linked(connection, "bypass", status="bypass"), [FLAG_BYPASS]),
        "new": (linked(connection, "new", is_enrolled=False), [FLAG_NOT_ENROLLED]),
        "duoonly": (snapshot(connection, "duoonly"), [FLAG_NOT_LINKED]),
        "fine": (linked(connection, "fine"), []),
    }
    loaded = {e.username: e for e in DirectoryUser.objects.select_related("identity__user")}
    for name, (_entry, flags) in cases.items():
        assert review_flags(loaded[name]) == flags, name


def test_the_changelist_shows_the_flags(admin_client: Client, connection: DirectoryConnection) -> None:
    linked(connection, "dis", status="disabled")
    linked(connection, "new", is_enrolled=False)
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert FLAG_DISABLED_BUT_ACTIVE in page
    assert FLAG_NOT_ENROLLED in page


# Filters -------------------------------------------------------------------------------------------


def _listed(client: Client, **query: str) -> set[str]:
    response = client.get(reverse(CHANGELIST), query)
    assert response.status_code == 200
    return {row.username for row in response.context["cl"].result_list}


def test_filter_disabled_in_duo(admin_client: Client, connection: DirectoryConnection) -> None:
    linked(connection, "dis", status="disabled")
    linked(connection, "locked", status="locked out")
    linked(connection, "ok")
    linked(connection, "pending", status="pending deletion")
    linked(connection, "bypass", status="bypass")
    linked(connection, "gone", status="disabled", deleted_at=timezone.now())
    assert _listed(admin_client, duo_status="disabled") == {"dis", "locked", "pending"}
    assert _listed(admin_client, duo_status="bypass") == {"bypass"}
    assert _listed(admin_client, duo_status="deleted") == {"gone"}


def test_filter_not_enrolled(admin_client: Client, connection: DirectoryConnection) -> None:
    linked(connection, "new", is_enrolled=False)
    linked(connection, "ok")
    assert _listed(admin_client, enrolment="not_enrolled") == {"new"}


def test_filter_duo_and_django_disagree(admin_client: Client, connection: DirectoryConnection) -> None:
    linked(connection, "dis", status="disabled")
    linked(connection, "dis_off", status="disabled", active=False)
    linked(connection, "gone", deleted_at=timezone.now())
    linked(connection, "ok")
    snapshot(connection, "duoonly", status="disabled")
    assert _listed(admin_client, review="disagree") == {"dis", "gone"}
    assert _listed(admin_client, review="not_linked") == {"duoonly"}


def test_the_no_counterpart_filter_links_to_the_django_side(admin_client: Client, connection: Any) -> None:
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert f'href="{reverse(NO_COUNTERPART)}"' in page
    assert FLAG_NO_COUNTERPART in page
    # With the admin's facet counts too.
    linked(connection, "dis", status="disabled")
    response = admin_client.get(reverse(CHANGELIST), {"_facets": "True", "duo_status": "disabled"})
    assert response.status_code == 200
    assert {r.username for r in response.context["cl"].result_list} == {"dis"}


# The Django side: no Duo counterpart ------------------------------------------------------------------


def test_no_counterpart_lists_the_provider_users_no_duo_user_links(
    admin_client: Client, connection: DirectoryConnection, fake_op: Any
) -> None:
    linked(connection, "alice")
    mallory = User.objects.create_user("mallory", "mallory@example.test")
    Identity.objects.create(provider=connection.provider, sub="sub-mallory", user=mallory)
    # A user of another provider is not this connection's business.
    other = Provider.objects.create(slug="other", name="Other", issuer="https://other.example.test", client_id="x")
    Identity.objects.create(provider=other, sub="sub-eve", user=User.objects.create_user("eve"))
    # A user without any identity cannot sign in through the provider at all.
    User.objects.create_user("localonly")
    # Linked by a snapshot of ANOTHER connection of the same provider: still no counterpart in this one.
    second = DirectoryConnection.objects.create(
        slug="second", api_host="h", integration_key="DI2", provider=connection.provider
    )
    linked(second, "bob")

    response = admin_client.get(reverse(NO_COUNTERPART), {"connection": "corp"})
    assert response.status_code == 200
    names = {row.user.username for row in response.context["rows"]}
    assert names == {"mallory", "bob"}
    page = response.content.decode()
    assert reverse("admin:auth_user_change", args=[mallory.pk]) in page
    assert FLAG_NO_COUNTERPART in page

    response = admin_client.get(reverse(NO_COUNTERPART), {"connection": "second"})
    assert {row.user.username for row in response.context["rows"]} == {"mallory", "alice"}


def test_no_counterpart_is_one_query_per_page_not_per_user(
    admin_client: Client,
    connection: DirectoryConnection,
    django_assert_max_num_queries: Any,
    long_lived_memos: None,
) -> None:
    for i in range(100):
        user = User.objects.create_user(f"u{i:03}")
        Identity.objects.create(provider=connection.provider, sub=f"s{i}", user=user)
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse(NO_COUNTERPART))
    assert len(response.context["rows"]) == 100


def test_no_counterpart_csv(admin_client: Client, connection: DirectoryConnection) -> None:
    user = User.objects.create_user("=cmd|' /C calc'!A0", "x@example.test")
    Identity.objects.create(provider=connection.provider, sub="sub-x", user=user)
    response = admin_client.get(reverse(NO_COUNTERPART), {"connection": "corp", "format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["connection", "provider", "django_user"]
    assert rows[1][2] == "'=cmd|' /C calc'!A0"  # a formula stays text
    assert rows[1][-1] == FLAG_NO_COUNTERPART


def test_no_counterpart_without_any_connection_says_so(admin_client: Client) -> None:
    response = admin_client.get(reverse(NO_COUNTERPART))
    assert response.status_code == 200
    assert "No directory connection is configured" in response.content.decode()


def test_an_unknown_connection_slug_falls_back_to_the_first(admin_client: Client, connection: Any) -> None:
    response = admin_client.get(reverse(NO_COUNTERPART), {"connection": "<script>x</script>"})
    assert response.status_code == 200
    assert response.context["connection"] == connection
    assert "<script>x</script>" not in response.content.decode()


# Read-only, view permission required -------------------------------------------------------------------


def test_a_staff_user_without_the_view_permission_gets_403_everywhere(connection: DirectoryConnection) -> None:
    entry = linked(connection, "alice")
    client = staff_client()
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(reverse("admin:duo_oidc_directoryuser_change", args=[entry.pk])).status_code == 403
    assert client.get(reverse(NO_COUNTERPART)).status_code == 403
    assert client.get(reverse(NO_COUNTERPART), {"format": "csv"}).status_code == 403
    status, rows = export(client, [entry.pk])
    assert status == 403 and rows == []


def test_the_view_permission_is_enough_to_review_and_export(connection: DirectoryConnection) -> None:
    entry = linked(connection, "alice")
    client = staff_client("view_directoryuser")
    assert client.get(reverse(CHANGELIST)).status_code == 200
    assert client.get(reverse("admin:duo_oidc_directoryuser_change", args=[entry.pk])).status_code == 200
    assert client.get(reverse(NO_COUNTERPART)).status_code == 200
    status, rows = export(client, [entry.pk])
    assert status == 200 and rows[1][2] == "alice"


def test_nobody_adds_changes_or_deletes_a_snapshot(admin_client: Client, connection: DirectoryConnection) -> None:
    entry = linked(connection, "alice", status="disabled")
    change = reverse("admin:duo_oidc_directoryuser_change", args=[entry.pk])
    assert admin_client.get(reverse("admin:duo_oidc_directoryuser_add")).status_code == 403
    assert admin_client.get(reverse("admin:duo_oidc_directoryuser_delete", args=[entry.pk])).status_code == 403
    response = admin_client.post(change, {"status": "active", "username": "mallory", "is_enrolled": "on"})
    assert response.status_code == 403
    # Not even the changelist's bulk delete.
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    )
    entry.refresh_from_db()
    assert (entry.status, entry.username) == ("disabled", "alice")
    assert DirectoryUser.objects.filter(pk=entry.pk).exists()
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "delete_selected" not in page
    assert 'name="_save"' not in admin_client.get(change).content.decode()


# Never a secret, never a live formula or script ------------------------------------------------------


def test_only_allow_listed_facts_are_shown_and_exported(admin_client: Client, connection: DirectoryConnection) -> None:
    connection.set_secret_key("encrypted-" + SKEY)
    connection.save()
    entry = linked(
        connection,
        "alice",
        groups=[{"group_id": "DG1", "name": "crm-users", "desc": "hidden-description-xyz"}, {"bad": 1}, "str"],
        devices={"phones": 1, "bypass_codes": ["123456"], "webauthn": "2", "tokens": -1, "desktop": True},
    )
    detail = admin_client.get(reverse("admin:duo_oidc_directoryuser_change", args=[entry.pk])).content.decode()
    listing = admin_client.get(reverse(CHANGELIST)).content.decode()
    _, rows = export(admin_client, [entry.pk])
    exported = "\n".join(",".join(r) for r in rows)
    for text in (detail, listing, exported):
        assert "crm-users" in text
        for secret in ("123456", "hidden-description-xyz", SKEY, "bypass_codes"):
            assert secret not in text
    assert "1 phone" in listing and "WebAuthn" not in listing
    header, row = rows[0], rows[1]
    assert dict(zip(header, row, strict=True))["webauthn"] == ""  # "2" (a string) is not a count
    assert dict(zip(header, row, strict=True))["phones"] == "1"


def test_text_from_duo_is_escaped_on_pages(admin_client: Client, connection: DirectoryConnection) -> None:
    entry = linked(
        connection,
        "alice",
        realname="<script>alert(1)</script>",
        groups=[{"group_id": "DG1", "name": "<img src=x onerror=alert(2)>"}],
    )
    for url in (reverse(CHANGELIST), reverse("admin:duo_oidc_directoryuser_change", args=[entry.pk])):
        page = admin_client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_csv_cells_never_start_a_formula() -> None:
    for evil in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert csv_cell(evil).startswith("'")
    assert csv_cell("alice") == "alice"
    assert csv_cell(None) == ""


def test_the_review_export(admin_client: Client, connection: DirectoryConnection) -> None:
    a = linked(connection, "alice", realname='=HYPERLINK("http://evil")', status="disabled")
    b = snapshot(connection, "bob", is_enrolled=False)
    status, rows = export(admin_client, [a.pk, b.pk])
    assert status == 200
    by_user = {r[2]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert by_user["alice"]["realname"] == '\'=HYPERLINK("http://evil")'
    assert by_user["alice"]["duo_status"] == "disabled"
    assert by_user["alice"]["django_user"] == "alice"
    assert by_user["alice"]["active_here"] == "yes"
    assert by_user["alice"]["review"] == FLAG_DISABLED_BUT_ACTIVE
    assert by_user["alice"]["groups"] == "engineering"
    assert by_user["bob"]["django_user"] == "" and by_user["bob"]["enrolled"] == "no"
    assert by_user["bob"]["review"] == f"{FLAG_NOT_ENROLLED}; {FLAG_NOT_LINKED}"


def test_garbled_snapshots_do_not_break_the_review(admin_client: Client, connection: DirectoryConnection) -> None:
    entry = snapshot(connection, "odd", groups={"name": "x"}, devices=["phones"], status="")
    assert admin_client.get(reverse(CHANGELIST)).status_code == 200
    assert admin_client.get(reverse("admin:duo_oidc_directoryuser_change", args=[entry.pk])).status_code == 200
    status, rows = export(admin_client, [entry.pk])
    assert status == 200 and rows[1][5] == "unknown"


# The snapshot's age ------------------------------------------------------------------------------------


def test_a_failed_or_missing_sync_is_said_on_the_review(admin_client: Client, connection: DirectoryConnection) -> None:
    connection.last_sync_ok = False
    connection.save()
    DirectoryConnection.objects.create(slug="fresh", api_host="h", integration_key="DI2", provider=connection.provider)
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "Corp directory: the last sync failed" in page
    assert "Fresh: no sync has completed yet" in page  # the admin capitalises messages
    page = admin_client.get(reverse(NO_COUNTERPART), {"connection": "fresh"}).content.decode()
    assert "no sync has completed yet" in page


def test_an_old_sync_is_said(admin_client: Client, connection: DirectoryConnection) -> None:
    connection.last_sync_at = timezone.now() - datetime.timedelta(days=3)
    connection.save()
    assert "Corp directory: the last sync is from" in admin_client.get(reverse(CHANGELIST)).content.decode()


# Efficiency --------------------------------------------------------------------------------------------


def _fill(connection: DirectoryConnection, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        if i % 3:
            linked(connection, f"user{i:04}", status="disabled" if i % 5 == 0 else "active")
        else:
            snapshot(connection, f"user{i:04}", is_enrolled=False)


def test_a_page_of_100_users_takes_a_fixed_number_of_queries(
    admin_client: Client,
    connection: DirectoryConnection,
    django_assert_max_num_queries: Any,
    long_lived_memos: None,
) -> None:
    _fill(connection, 5)
    admin_client.get(reverse(CHANGELIST))  # warm the session, content types
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(db) as few:
        admin_client.get(reverse(CHANGELIST))
    _fill(connection, 95, start=5)
    with django_assert_max_num_queries(12), CaptureQueriesContext(db) as many:
        response = admin_client.get(reverse(CHANGELIST))
    assert len(response.context["cl"].result_list) == 100
    assert len(many) == len(few)  # nothing per row
    status, rows = export(admin_client, list(DirectoryUser.objects.values_list("pk", flat=True)))
    assert status == 200 and len(rows) == 101


def test_a_bad_page_number_is_the_last_page_not_an_error(admin_client: Client, connection: DirectoryConnection) -> None:
    User.objects.create_user("mallory")
    Identity.objects.create(provider=connection.provider, sub="sub-m", user=User.objects.get(username="mallory"))
    for page in ("abc", "-1", "99999", "1e9"):
        response = admin_client.get(reverse(NO_COUNTERPART), {"p": page})
        assert response.status_code == 200, page


def test_a_user_model_outside_the_admin_is_named_not_linked(connection: DirectoryConnection) -> None:
    # Any model the admin does not serve has no change page to link to (auth.Permission is one).
    assert user_admin_url(Permission.objects.first()) is None
    alice = linked(connection, "alice").identity.user
    assert user_admin_url(alice) == reverse("admin:auth_user_change", args=[alice.pk])


# What a real sync stores is what the review reads ------------------------------------------------------


def test_the_review_of_a_real_sync_through_duo_client(
    admin_client: Client, provider: Provider, fake_duo_admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_duo_oidc.directory.sync import sync_connection
    from tests.fakeduo.admin_fixtures import duo_user

    monkeypatch.setenv("DUO_REVIEW_SKEY", fake_duo_admin.skey)
    fake_duo_admin.set_state(
        users=[
            duo_user("alice", status="disabled", groups=["crm-users"], phones=2, webauthn=1),
            duo_user("bob", is_enrolled=False, phones=0),
            duo_user("carol", groups=["crm-users", "admins"], tokens=1),
            duo_user("dave"),  # in Duo, never signed in here
        ]
    )
    for name in ("alice", "bob", "carol", "mallory"):
        user = User.objects.create_user(name, f"{name}@example.test")
        Identity.objects.create(provider=provider, sub=f"sub-{name}", user=user, last_claims={"email": user.email})
    connection = DirectoryConnection.objects.create(
        slug="real",
        api_host=fake_duo_admin.api_host,
        integration_key=fake_duo_admin.ikey,
        secret_key_env="DUO_REVIEW_SKEY",
        ca_certs=fake_duo_admin.ca_path,
        provider=provider,
        deprovision=False,  # record only: the review then shows who Duo refuses but Django lets in
    )
    result = sync_connection(connection)
    assert result.ok, result.message

    response = admin_client.get(reverse(CHANGELIST))
    rows = {r.username: r for r in response.context["cl"].result_list}
    assert set(rows) == {"alice", "bob", "carol", "dave"}
    admin = response.context["cl"].model_admin
    assert admin.duo_status(rows["alice"]) == "disabled"
    assert admin.duo_groups(rows["alice"]) == "crm-users"
    assert admin.devices_summary(rows["alice"]) == "2 phones, 1 WebAuthn credential"
    assert admin.devices_summary(rows["carol"]) == "1 phone, 1 hardware token"
    assert review_flags(rows["alice"]) == [FLAG_DISABLED_BUT_ACTIVE]
    assert review_flags(rows["bob"]) == [FLAG_NOT_ENROLLED]
    assert review_flags(rows["carol"]) == []
    assert review_flags(rows["dave"]) == [FLAG_NOT_LINKED]
    assert _listed(admin_client, review="disagree") == {"alice"}
    assert _listed(admin_client, enrolment="not_enrolled") == {"bob"}
    response = admin_client.get(reverse(NO_COUNTERPART), {"connection": "real"})
    assert {r.user.username for r in response.context["rows"]} == {"mallory"}
    # Nothing of what Duo returned beyond the allow-list reaches the page (a phone's number, a token's serial).
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    detail = admin_client.get(reverse("admin:duo_oidc_directoryuser_change", args=[rows["carol"].pk]))
    for text in (page, detail.content.decode()):
        assert "+1555" not in text and "100000" not in text


def test_a_non_staff_user_is_sent_to_the_admin_login(connection: DirectoryConnection) -> None:
    user = User.objects.create_user("plain", "plain@example.test", "pw")
    user.user_permissions.add(Permission.objects.get(codename="view_directoryuser"))  # a permission is not enough
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    for url in (reverse(CHANGELIST), reverse(NO_COUNTERPART)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_an_export_is_logged_with_who_not_what(
    admin_client: Client, connection: DirectoryConnection, caplog: pytest.LogCaptureFixture
) -> None:
    entry = linked(connection, "alice", realname="Alice Secretname")
    with caplog.at_level("INFO", logger="django_duo_oidc"):
        export(admin_client, [entry.pk])
        b"".join(admin_client.get(reverse(NO_COUNTERPART), {"format": "csv"}).streaming_content)
    root = User.objects.get(username="root")
    lines = [r.getMessage() for r in caplog.records if "exported" in r.getMessage()]
    assert lines == [
        f"Access review exported as CSV by admin user {root.pk}",
        f"Access review (corp, no Duo counterpart) exported as CSV by admin user {root.pk}",
    ]
    assert "Secretname" not in caplog.text and SKEY not in caplog.text
