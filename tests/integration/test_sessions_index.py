"""The session index (django_duo_oidc.sessions): recorded at login, followed when the key changes, dropped
at every logout, and ended at once from the session store (db and cache engines alike)."""

from __future__ import annotations

import datetime
import hashlib
import logging
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib import admin
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.core import checks
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client
from django.urls import path
from django.utils import timezone

from django_duo_oidc import signals
from django_duo_oidc.checks import check_settings
from django_duo_oidc.models import LiveSession, Provider
from django_duo_oidc.sessions import end_sessions, index
from django_duo_oidc.state.encryption import unseal
from tests.conftest import captured
from tests.fakeop import FakeOP
from tests.urls import urlpatterns as test_urls

from .test_login_views import login, me

pytestmark = pytest.mark.django_db
User = get_user_model()

ENGINES = ["django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cache"]


def change_password(request: HttpRequest) -> HttpResponse:
    """What a password-change view does: the session key is cycled (update_session_auth_hash)."""
    request.user.set_password("new-secret-123")
    request.user.save()
    update_session_auth_hash(request, request.user)
    return JsonResponse({"ok": True})


def cycle(request: HttpRequest) -> HttpResponse:
    request.session.cycle_key()
    return JsonResponse({"ok": True})


async def acycle(request: HttpRequest) -> HttpResponse:
    await request.session.acycle_key()
    return JsonResponse({"ok": True})


def ended_meanwhile(request: HttpRequest) -> HttpResponse:
    """A request in flight while a back-channel logout (another worker) ends its session; then it
    writes to its session, as the freshness check does when it stores renewed tokens."""
    end_sessions(request.user, reason="test: ended elsewhere")
    request.session["written_after_the_end"] = True
    return JsonResponse({"ok": True})


async def aended_meanwhile(request: HttpRequest) -> HttpResponse:
    from asgiref.sync import sync_to_async

    user = await request.auser()
    await sync_to_async(end_sessions)(user, reason="test: ended elsewhere")
    await request.session.aset("written_after_the_end", True)
    return JsonResponse({"ok": True})


urlpatterns = [
    *test_urls,
    path("t/sessions/password/", change_password),
    path("t/sessions/cycle/", cycle),
    path("t/sessions/acycle/", acycle),
    path("t/sessions/ended-meanwhile/", ended_meanwhile),
    path("t/sessions/aended-meanwhile/", aended_meanwhile),
]


def session_key(client: Client) -> str:
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def store_has(key: str) -> bool:
    store = import_module(django_settings.SESSION_ENGINE).SessionStore(key)
    store.load()
    return store.session_key == key


@pytest.fixture(params=ENGINES, ids=["db", "cache"])
def engine(request: Any, settings: Any) -> str:
    settings.SESSION_ENGINE = request.param
    return request.param


# Recording --------------------------------------------------------------------------------------


def test_login_records_the_session_sealed_and_by_digest(
    client: Client, fake_op: FakeOP, provider: Provider, engine: str
) -> None:
    fake_op.id_token_claims["sid"] = "op-session-1"
    login(client, fake_op)
    key = session_key(client)
    row = LiveSession.objects.get()
    assert row.key_digest == digest(key)
    assert key not in row.key_sealed and unseal(row.key_sealed) == key
    assert (row.provider, row.kind, row.sub, row.sid) == (provider, "oidc", "alice", "op-session-1")
    assert row.user.get_username() == "alice@example.test"
    assert row.expires_at is not None and row.expires_at > timezone.now()


def test_sid_comes_from_the_id_token_only_never_from_userinfo(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    # fails before the fix: userinfo could override the ID token's sid (it was not in _ID_TOKEN_ONLY)
    fake_op.id_token_claims["sid"] = "from-id-token"
    fake_op.userinfo_overrides["sid"] = "from-userinfo"
    login(client, fake_op)
    assert LiveSession.objects.get().sid == "from-id-token"


def test_a_sid_that_is_not_a_short_string_is_not_indexed(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    fake_op.id_token_claims["sid"] = {"not": "a string"}
    login(client, fake_op)
    assert LiveSession.objects.get().sid == ""


def test_two_logins_are_two_rows(fake_op: FakeOP, provider: Provider) -> None:
    first, second = Client(), Client()
    login(first, fake_op)
    login(second, fake_op)
    assert LiveSession.objects.count() == 2
    assert session_key(first) != session_key(second)


# Logout -------------------------------------------------------------------------------------------


def test_our_logout_drops_the_row(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op)
    assert LiveSession.objects.count() == 1
    client.post("/oidc/logout/")
    assert LiveSession.objects.count() == 0


def test_djangos_admin_logout_drops_the_row(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op)
    User.objects.filter(username="alice@example.test").update(is_staff=True)
    assert LiveSession.objects.count() == 1
    response = client.post(f"/{admin.site.name}/logout/")
    assert response.status_code in (200, 302)  # LOGOUT_REDIRECT_URL decides
    assert me(client) == {"authenticated": False}
    assert LiveSession.objects.count() == 0


# The key changes after login ---------------------------------------------------------------------


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", ["/t/sessions/password/", "/t/sessions/cycle/", "/t/sessions/acycle/"])
def test_a_cycled_key_is_followed_and_can_still_be_ended(
    client: Client, fake_op: FakeOP, provider: Provider, engine: str, url: str
) -> None:
    login(client, fake_op)
    old = session_key(client)
    assert client.get(url).json() == {"ok": True}
    new = session_key(client)
    assert new != old
    row = LiveSession.objects.get()
    assert row.key_digest == digest(new) and unseal(row.key_sealed) == new
    assert me(client)["authenticated"] is True
    assert end_sessions(row.user, reason="test") == 1
    assert me(client) == {"authenticated": False}
    assert not store_has(new)


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", ["/t/sessions/ended-meanwhile/", "/t/sessions/aended-meanwhile/"])
@pytest.mark.parametrize("save_every_request", [False, True])
def test_a_request_in_flight_does_not_write_an_ended_session_back(
    client: Client, fake_op: FakeOP, provider: Provider, engine: str, url: str, save_every_request: bool, settings: Any
) -> None:
    # Django's db and cache stores both refuse to save a session deleted meanwhile (UpdateError, a 400
    # "session was deleted before the request completed"): the ended session is not written back.
    settings.SESSION_SAVE_EVERY_REQUEST = save_every_request
    login(client, fake_op)
    key = session_key(client)
    response = client.get(url)
    assert response.status_code == 400
    assert not store_has(key)
    assert me(client) == {"authenticated": False}


def test_an_unknown_session_cookie_costs_no_query(
    client: Client, django_assert_max_num_queries: Any, provider: Provider, long_lived_memos: None
) -> None:
    assert client.get("/t/unguarded/").status_code == 200  # the process memos (rules, providers) are read
    client.cookies[django_settings.SESSION_COOKIE_NAME] = "x" * 32
    with django_assert_max_num_queries(1):  # the session lookup itself, nothing for the index
        assert client.get("/t/unguarded/").status_code == 200


# Ending ------------------------------------------------------------------------------------------


def test_end_sessions_deletes_from_the_store_and_signals(
    fake_op: FakeOP, provider: Provider, engine: str, caplog: Any
) -> None:
    first, second = Client(), Client()
    login(first, fake_op)
    login(second, fake_op)
    keys = [session_key(first), session_key(second)]
    user = User.objects.get(username="alice@example.test")
    with captured(signals.session_ended) as ended, caplog.at_level(logging.INFO, logger="django_duo_oidc"):
        assert end_sessions(user, reason="test: ended") == 2
    assert [(e["user"], e["provider"], e["reason"], e["request"]) for e in ended] == [
        (user, provider, "test: ended", None)
    ] * 2
    assert not any(store_has(k) for k in keys)
    assert LiveSession.objects.count() == 0
    assert me(first) == {"authenticated": False} and me(second) == {"authenticated": False}
    lines = [r.getMessage() for r in caplog.records if "Ended session" in r.getMessage()]
    assert len(lines) == 2 and all(f"user {user.pk}" in line and "test: ended" in line for line in lines)
    assert not any(k in caplog.text for k in keys)


def test_ending_user_a_never_touches_user_b(fake_op: FakeOP, provider: Provider, engine: str) -> None:
    alice, bob = Client(), Client()
    login(alice, fake_op, sub="alice")
    login(bob, fake_op, sub="bob")
    assert end_sessions(User.objects.get(username="alice@example.test"), reason="test") == 1
    assert me(alice) == {"authenticated": False}
    assert me(bob)["authenticated"] is True
    assert LiveSession.objects.get().user.get_username() == "bob@example.test"


def test_provider_and_sid_narrow_it(fake_op: FakeOP, provider: Provider) -> None:
    one, two = Client(), Client()
    fake_op.id_token_claims["sid"] = "s1"
    login(one, fake_op)
    fake_op.id_token_claims["sid"] = "s2"
    login(two, fake_op)
    user = User.objects.get(username="alice@example.test")
    other = Provider.objects.create(slug="other", issuer="https://other.test", client_id="x")
    assert end_sessions(user, provider=other, reason="test") == 0
    assert end_sessions(user, sid="s2", reason="test") == 1
    assert me(one)["authenticated"] is True and me(two) == {"authenticated": False}
    with pytest.raises(ValueError):
        end_sessions(user, sid="", reason="test")  # "" would match every session without a sid
    assert end_sessions(user, provider=provider, reason="test") == 1


def test_ending_the_requests_own_session_flushes_it(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op)
    request = HttpRequest()
    request.session = import_module(django_settings.SESSION_ENGINE).SessionStore(session_key(client))
    user = User.objects.get(username="alice@example.test")
    request.user = user
    assert end_sessions(user, reason="test", request=request) == 1
    assert request.session.session_key is None and not request.user.is_authenticated
    assert me(client) == {"authenticated": False}


def test_a_row_sealed_under_a_retired_key_is_dropped_not_fatal(fake_op: FakeOP, provider: Provider) -> None:
    client = Client()
    login(client, fake_op)
    LiveSession.objects.update(key_sealed="not-sealed")
    user = User.objects.get(username="alice@example.test")
    assert end_sessions(user, reason="test") == 1
    assert LiveSession.objects.count() == 0


def test_a_store_that_fails_keeps_the_rows_for_a_retry(
    fake_op: FakeOP, provider: Provider, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    client = Client()
    login(client, fake_op)
    user = User.objects.get(username="alice@example.test")
    from django.contrib.sessions.backends.cache import SessionStore

    def down(self: Any, session_key: str | None = None) -> None:
        raise ConnectionError("cache down")

    monkeypatch.setattr(SessionStore, "delete", down)
    with pytest.raises(ConnectionError):
        end_sessions(user, reason="test")
    assert LiveSession.objects.count() == 1
    monkeypatch.undo()
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    assert end_sessions(user, reason="test") == 1
    assert me(client) == {"authenticated": False}


# Expired rows, client-side stores ------------------------------------------------------------------


def test_rows_past_expiry_are_cleaned_only_when_their_session_is_gone(
    fake_op: FakeOP, provider: Provider, engine: str
) -> None:
    alive, gone = Client(), Client()
    login(alive, fake_op)
    login(gone, fake_op)
    import_module(django_settings.SESSION_ENGINE).SessionStore().delete(session_key(gone))
    past = timezone.now() - datetime.timedelta(seconds=5)
    LiveSession.objects.update(expires_at=past)
    index._clean_up()
    row = LiveSession.objects.get()
    # The session still in the store (its expiry was pushed forward by use) keeps its row.
    assert row.key_digest == digest(session_key(alive)) and row.expires_at > timezone.now()


def test_cleanup_is_bounded(fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index, "CLEANUP_BATCH", 2)
    user = User.objects.create(username="u")
    past = timezone.now() - datetime.timedelta(seconds=5)
    for n in range(5):
        LiveSession.objects.create(user=user, key_digest=f"{n:064d}", key_sealed="x", expires_at=past)
    index._clean_up()
    assert LiveSession.objects.count() == 3


def test_signed_cookie_sessions_warn_in_checks_and_at_end_time(
    settings: Any, caplog: Any, fake_op: FakeOP, provider: Provider
) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    found = [m for m in check_settings() if m.id == "duo_oidc.W005"]
    assert len(found) == 1 and found[0].level == checks.WARNING
    user = User.objects.create(username="u")
    with caplog.at_level(logging.WARNING, logger="django_duo_oidc"):
        assert end_sessions(user, reason="test") == 0
    assert "cannot be ended" in caplog.text


def test_server_side_stores_raise_no_warning(settings: Any, engine: str) -> None:
    assert not [m for m in check_settings() if m.id == "duo_oidc.W005"]


# The admin -----------------------------------------------------------------------------------------


def staff(*perms: str) -> Client:
    from django.contrib.auth.models import Permission

    user = User.objects.create_user("staffer", "staffer@example.test", "pw", is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def superuser() -> Client:
    user = User.objects.create_superuser("root", "root@example.test", "pw")
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def run_action(client: Client, changelist: str, action: str, pks: list[Any]) -> Any:
    return client.post(changelist, {"action": action, "_selected_action": [str(pk) for pk in pks]}, follow=True)


LIVE = "/admin/duo_oidc/livesession/"
IDENTITIES = "/admin/duo_oidc/identity/"


def test_the_session_list_never_shows_a_key(fake_op: FakeOP, provider: Provider) -> None:
    alice = Client()
    fake_op.id_token_claims["sid"] = "op-sid-secretish"
    login(alice, fake_op)
    row = LiveSession.objects.get()
    admin_client = superuser()
    for url in (LIVE, f"{LIVE}{row.pk}/change/"):
        page = admin_client.get(url).content.decode()
        assert "alice@example.test" in page
        for secret in (session_key(alice), row.key_digest, row.key_sealed, "op-sid-secretish"):
            assert secret not in page
    assert admin_client.get(f"{LIVE}add/").status_code == 403
    assert admin_client.post(f"{LIVE}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert LiveSession.objects.count() == 1  # never forgotten without being ended


def test_end_these_sessions_ends_only_the_chosen_ones(fake_op: FakeOP, provider: Provider, engine: str) -> None:
    alice, bob = Client(), Client()
    login(alice, fake_op, sub="alice")
    login(bob, fake_op, sub="bob")
    admin_client = superuser()
    chosen = LiveSession.objects.get(user__username="alice@example.test")
    with captured(signals.session_ended) as ended:
        page = run_action(admin_client, LIVE, "end_these_sessions", [chosen.pk]).content.decode()
    assert "Ended 1 session(s) of 1 user(s)." in page
    assert me(alice) == {"authenticated": False} and me(bob)["authenticated"] is True
    assert ended[0]["reason"].startswith("admin: ended by admin user ")
    assert me(admin_client)["authenticated"] is True  # the admin's own session is not touched


def test_identity_action_ends_every_session_of_the_user(fake_op: FakeOP, provider: Provider) -> None:
    first, second, bob = Client(), Client(), Client()
    login(first, fake_op)
    login(second, fake_op)
    login(bob, fake_op, sub="bob")
    identity = provider.identities.get(sub="alice")
    second_provider = Provider.objects.create(slug="other", issuer="https://other.test", client_id="x")
    other = identity.user.duo_identities.create(provider=second_provider, sub="alice-elsewhere")
    page = run_action(superuser(), IDENTITIES, "end_all_sessions", [identity.pk, other.pk]).content.decode()
    assert "Ended 2 session(s) of 1 user(s)." in page
    assert me(first) == {"authenticated": False} and me(second) == {"authenticated": False}
    assert me(bob)["authenticated"] is True


@pytest.mark.parametrize(
    ("perms", "changelist", "action"),
    [
        (("duo_oidc.view_livesession",), LIVE, "end_these_sessions"),
        (("duo_oidc.view_identity", "duo_oidc.change_identity"), IDENTITIES, "end_all_sessions"),
    ],
)
def test_ending_sessions_needs_the_permission(
    fake_op: FakeOP, provider: Provider, perms: tuple[str, ...], changelist: str, action: str
) -> None:
    alice = Client()
    login(alice, fake_op)
    client = staff(*perms)
    page = client.get(changelist).content.decode()
    assert action not in page  # not offered
    pk = (LiveSession.objects.get() if changelist == LIVE else provider.identities.get()).pk
    run_action(client, changelist, action, [pk])  # forced: refused by the admin
    assert me(alice)["authenticated"] is True
    client = staff_with_more("duo_oidc.delete_livesession")
    run_action(client, changelist, action, [pk])
    assert me(alice) == {"authenticated": False}


def staff_with_more(*perms: str) -> Client:
    from django.contrib.auth.models import Permission

    user = User.objects.get(username="staffer")
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def test_the_user_admin_action_checks_the_permission_itself(fake_op: FakeOP, provider: Provider) -> None:
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.test import RequestFactory

    from django_duo_oidc.admin import IdentityAdmin, end_user_sessions

    alice = Client()
    login(alice, fake_op)
    users = User.objects.filter(username="alice@example.test")
    request = RequestFactory().post("/admin/auth/user/")
    request.user = User.objects.create_user("plain", is_staff=True)
    request.session = {}
    request._messages = FallbackStorage(request)
    model_admin = IdentityAdmin(LiveSession, admin.site)
    end_user_sessions(model_admin, request, users)
    assert me(alice)["authenticated"] is True
    request.user = User.objects.create_superuser("boss", "boss@example.test", "pw")
    end_user_sessions(model_admin, request, users)
    assert me(alice) == {"authenticated": False}


def test_logout_goes_on_when_the_index_cannot_be_written(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from django.db import OperationalError
    from django.db.models.query import QuerySet

    login(client, fake_op)
    real_delete = QuerySet.delete

    def delete(self: QuerySet[Any]) -> Any:
        if self.model is LiveSession:
            raise OperationalError("database is locked")
        return real_delete(self)

    monkeypatch.setattr(QuerySet, "delete", delete)
    assert client.post("/oidc/logout/").status_code == 302
    assert me(client) == {"authenticated": False}
    assert "Could not drop the index row" in caplog.text
