"""Password, then Duo's Universal Prompt: the real ``duo_universal`` SDK against the fake Web SDK v4 server.

Each bad input of issue 13 is its own test and fails when the check it names is removed. No SDK mock:
the app's ``duo_universal.Client`` talks HTTPS to ``tests/fakeduo/universal.py`` (fixture
``fake_duo_universal``), which verifies the request JWT and client assertions as Duo does.
"""

from __future__ import annotations

import logging
import time
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from django.views import View

from django_duo_oidc import signals
from django_duo_oidc.login import session as oidc_session
from django_duo_oidc.mfa import session as mfa_session
from django_duo_oidc.mfa.decorators import DuoRequiredMixin, duo_required
from django_duo_oidc.mfa.remember import COOKIE_NAME
from django_duo_oidc.mfa.who import reset_config_memo
from django_duo_oidc.models import LiveSession, MFAConfiguration, MFAUserState, Provider
from tests.conftest import captured, close_executor_connections
from tests.urls import urlpatterns as test_urls

User = get_user_model()
PASSWORD = "correct horse battery staple"
SECRET_ENV = "DUO_MFA_TEST_CLIENT_SECRET"


# Views of this module (pytest.mark.urls) ----------------------------------------------------------


@duo_required(max_age=60)
def recent_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("recent ok")


@duo_required
def any_duo_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("duo ok")


@duo_required(max_age=60)
async def async_recent_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("async recent ok")


class RecentMixinView(DuoRequiredMixin, View):
    duo_max_age = 60

    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("mixin recent ok")


urlpatterns = [
    *test_urls,
    path("t/mfa/recent/", recent_view),
    path("t/mfa/any/", any_duo_view),
    path("t/mfa/async/", async_recent_view),
    path("t/mfa/mixin/", RecentMixinView.as_view()),
    # Django's own LoginView: a password login that does not go through Duo.
    path("t/plain-login/", LoginView.as_view(template_name="admin/login.html")),
]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


# Fixtures and helpers -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_state() -> Any:
    cache.clear()
    reset_config_memo()
    yield
    cache.clear()
    reset_config_memo()  # the rolled-back configuration must not outlive this test in the process memo


@pytest.fixture
def client() -> Client:
    # An exception escaping a view must fail the test loudly, never become a page.
    return Client(raise_request_exception=True)


@pytest.fixture
def duo(fake_duo_universal: Any) -> Any:
    return fake_duo_universal


@pytest.fixture
def config(duo: Any, monkeypatch: pytest.MonkeyPatch) -> MFAConfiguration:
    monkeypatch.setenv(SECRET_ENV, duo.client_secret)
    return MFAConfiguration.objects.create(
        client_id=duo.client_id, client_secret_env=SECRET_ENV, api_host=duo.api_host, ca_certs=duo.ca_path
    )


@pytest.fixture
def alice() -> Any:
    return User.objects.create_user("alice", "alice@example.test", PASSWORD, is_staff=True)


@pytest.fixture
def bob() -> Any:
    return User.objects.create_user("bob", "bob@example.test", PASSWORD)


def update(config: MFAConfiguration, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(config, name, value)
    config.save()


def password(client: Client, username: str, url: str = "/oidc/mfa/login/?next=/me/", pw: str = PASSWORD) -> Any:
    return client.post(url, {"username": username, "password": pw})


def to_duo(client: Client, duo: Any, username: str, url: str = "/oidc/mfa/login/?next=/me/") -> str:
    """The password step; returns Duo's authorize URL it redirected to."""
    response = password(client, username, url)
    assert response.status_code == 302, response.content[:500]
    location = response["Location"]
    assert location.startswith(f"https://{duo.api_host}/oauth/v1/authorize?"), location
    return location


def callback(client: Client, url: str) -> Any:
    parts = urlsplit(url)
    assert parts.path == "/oidc/mfa/callback/", url
    return client.get(parts.path + "?" + parts.query)


def login(client: Client, duo: Any, username: str, url: str = "/oidc/mfa/login/?next=/me/") -> Any:
    return callback(client, duo.approve(to_duo(client, duo, username, url)))


def sso_login(client: Client, user: Any) -> None:
    """A session as the OIDC callback leaves it (Duo SSO): the OIDC backend AND the OIDC login it stores
    (the backend's name alone is no proof: the middleware ends such a session, test_review_issue13), of an
    enabled provider row (the session of a provider that is not one ends: test_disabled_provider_sessions)."""
    Provider.objects.get_or_create(slug="duo", defaults={"issuer": "https://duo.example.test", "client_id": "sso"})
    client.force_login(user, backend="django_duo_oidc.backends.DuoOIDCBackend")
    store = client.session
    now = time.time()
    data = {"provider": "duo", "sub": f"sub-{user.pk}", "expires_at": now + 3600, "issued_at": now}
    data.update(scopes="openid", auth_time=None, login_at=now, checked_at=now)
    store[oidc_session.LOGIN_KEY] = oidc_session.with_tokens(data, access_token="at", refresh_token=None)
    store.save()


def log_out(client: Client) -> None:
    """Log out as a browser does, keeping its other cookies (``Client.logout()`` drops them all)."""
    assert client.post("/oidc/logout/").status_code == 302
    assert not authenticated(client)


def me(client: Client) -> dict[str, Any]:
    return client.get("/me/").json()


def authenticated(client: Client) -> bool:
    return bool(me(client)["authenticated"])


def params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
def failures() -> Any:
    with captured(signals.second_factor_failed) as seen:
        yield seen


@pytest.fixture
def passes() -> Any:
    with captured(signals.second_factor_passed) as seen:
        yield seen


# The happy path -----------------------------------------------------------------------------------


def test_password_then_duo_allow_logs_in_and_lands_on_next(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, passes: list[dict[str, Any]], caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="django_duo_oidc")
    authorize = to_duo(client, duo, "alice")
    assert not authenticated(client)  # the password alone gave no session
    pending_key = client.session.session_key
    back = duo.approve(authorize)
    response = callback(client, back)
    assert response.status_code == 302
    assert response["Location"] == "/me/"
    assert me(client)["username"] == "alice"
    assert client.session.session_key != pending_key  # auth.login rotated the key
    state = MFAUserState.objects.get(user=alice)
    assert (state.last_result, state.last_factor, state.last_device) == ("allow", "Duo Push", "mobile phone (push)")
    assert [(p["user"], p["via"], p["factor"]) for p in passes] == [(alice, "duo", "Duo Push")]
    assert LiveSession.objects.filter(user=alice, kind="mfa").count() == 1
    assert "Second factor passed for user" in caplog.text and "factor=Duo Push" in caplog.text
    # Never the code, the state or the secret in a log line.
    for secret in (params(back)["duo_code"], params(back)["state"], duo.client_secret):
        assert secret not in caplog.text
    assert duo.stats()["tokens"] == 1


def test_the_sdk_is_given_username_state_and_nonce_as_duo_expects(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    query = params(to_duo(client, duo, "alice"))
    assert query["client_id"] == duo.client_id and query["response_type"] == "code"
    assert 16 < len(query["nonce"]) < 1024  # duo_universal's exclusive nonce bounds
    pending = client.session[mfa_session.PENDING_KEY]
    assert pending["username"] == "alice" and pending["purpose"] == "login"
    assert 16 <= len(pending["state"]) <= 1024


def test_email_as_duo_username(client: Client, duo: Any, config: MFAConfiguration, alice: Any) -> None:
    update(config, username_from="email")
    to_duo(client, duo, "alice")
    assert client.session[mfa_session.PENDING_KEY]["username"] == "alice@example.test"


def test_admin_login_goes_through_duo_then_reaches_the_admin(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    authorize = to_duo(client, duo, "alice", "/admin/login/?next=/admin/")
    assert client.get("/admin/").status_code == 302  # not logged in yet
    response = callback(client, duo.approve(authorize))
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_user_who_need_not_use_duo_logs_in_with_the_password(
    client: Client, duo: Any, config: MFAConfiguration, bob: Any
) -> None:
    update(config, who="staff")
    response = password(client, "bob")
    assert response.status_code == 302 and response["Location"] == "/me/"
    assert authenticated(client)
    assert authenticated(client)  # and stays logged in: the middleware does not end an exempt session
    assert duo.stats()["health_checks"] == 0


def test_without_a_configuration_the_login_is_plain_django(client: Client, duo: Any, alice: Any) -> None:
    response = password(client, "alice")
    assert response["Location"] == "/me/"
    assert authenticated(client)


def test_a_wrong_password_never_reaches_duo(client: Client, duo: Any, config: MFAConfiguration, alice: Any) -> None:
    response = password(client, "alice", pw="wrong")
    assert response.status_code == 200  # the form again, with its error
    assert duo.stats()["health_checks"] == 0
    assert mfa_session.PENDING_KEY not in client.session


# Who must use Duo ---------------------------------------------------------------------------------


def test_staff_only_mode_stops_a_staff_user_at_duo(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    update(config, who="staff")
    to_duo(client, duo, "alice")
    assert not authenticated(client)


def test_group_mode_sends_members_to_duo_and_lets_others_in(
    client: Client, duo: Any, config: MFAConfiguration, bob: Any
) -> None:
    group = Group.objects.create(name="finance")
    update(config, who="groups")
    config.groups.set([group])
    assert password(client, "bob")["Location"] == "/me/"
    client.logout()
    bob.groups.add(group)
    to_duo(client, duo, "bob")


def test_a_user_made_staff_after_a_password_only_login_is_logged_out(
    client: Client, duo: Any, config: MFAConfiguration, bob: Any, failures: list[dict[str, Any]]
) -> None:
    update(config, who="staff")
    password(client, "bob")
    assert authenticated(client)
    User.objects.filter(pk=bob.pk).update(is_staff=True)
    assert not authenticated(client)
    assert failures[-1]["reason"] == "no_second_factor"


# Around Duo: other password logins ----------------------------------------------------------------


def test_client_login_of_a_user_who_must_use_duo_gets_no_usable_session(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    assert client.login(username="alice", password=PASSWORD)
    assert not authenticated(client)
    assert client.get("/admin/").status_code == 302
    assert [f["reason"] for f in failures] == ["no_second_factor"]


def test_another_login_view_gets_no_usable_session(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    response = password(client, "alice", "/t/plain-login/?next=/me/")
    assert response.status_code == 302 and response["Location"] == "/me/"  # Django logged the user in...
    assert not authenticated(client)  # ...and the middleware ended it at the next request
    assert client.get("/admin/").status_code == 302


def test_force_login_on_an_admin_page_is_ended_before_the_view(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    client.force_login(alice, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_a_duo_sso_session_is_not_asked_for_the_second_factor(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    sso_login(client, alice)
    assert authenticated(client)


# The attacker's list ------------------------------------------------------------------------------


def test_password_ok_but_callback_never_completed_gives_no_session(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    to_duo(client, duo, "alice")
    assert not authenticated(client)
    assert client.get("/admin/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_replayed_state_after_a_completed_login_is_refused(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    back = duo.approve(to_duo(client, duo, "alice"))
    assert callback(client, back).status_code == 302
    client.logout()
    response = callback(client, back)
    assert response.status_code == 400
    assert not authenticated(client)
    assert failures[-1]["reason"] == "state_unknown"
    assert duo.stats()["tokens"] == 1  # nothing redeemed the second time


def test_a_state_claimed_by_another_worker_is_refused_before_any_exchange(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    """Two requests that both loaded the session before either saved it: the atomic claim lets one go on."""
    import hashlib

    back = duo.approve(to_duo(client, duo, "alice"))
    state = params(back)["state"]
    cache.add("duo_oidc:mfa-state-used:" + hashlib.sha256(state.encode()).hexdigest(), 1)
    response = callback(client, back)
    assert response.status_code == 400
    assert failures[-1]["reason"] == "state_replayed"
    assert not authenticated(client)
    assert duo.stats()["tokens"] == 0


def test_replayed_duo_code_with_a_fresh_state_is_refused_by_duo(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    old = duo.approve(to_duo(client, duo, "alice"))
    assert callback(client, old).status_code == 302
    client.logout()
    fresh_state = params(to_duo(client, duo, "alice"))  # a new attempt, whose state is in the session
    state = client.session[mfa_session.PENDING_KEY]["state"]
    assert fresh_state["client_id"] == duo.client_id
    response = client.get(f"/oidc/mfa/callback/?state={state}&duo_code={params(old)['duo_code']}")
    assert response.status_code == 400
    assert failures[-1]["reason"] == "invalid_grant"
    assert not authenticated(client)
    assert duo.stats()["replays"] == 1


def test_a_state_from_another_session_is_refused_and_the_victims_attempt_survives(
    duo: Any, config: MFAConfiguration, alice: Any, bob: Any, failures: list[dict[str, Any]]
) -> None:
    victim, attacker = Client(raise_request_exception=True), Client(raise_request_exception=True)
    victim_authorize = to_duo(victim, duo, "alice")
    attacker_back = duo.approve(to_duo(attacker, duo, "bob"))
    # The attacker's callback URL opened in the victim's browser (login CSRF): refused.
    response = callback(victim, attacker_back)
    assert response.status_code == 400
    assert failures[-1]["reason"] == "state_unknown"
    assert not authenticated(victim)
    # The victim's own attempt was not consumed by the forged answer.
    assert callback(victim, duo.approve(victim_authorize)).status_code == 302
    assert me(victim)["username"] == "alice"


def test_a_callback_with_no_pending_attempt_is_refused_without_asking_duo(
    client: Client, duo: Any, config: MFAConfiguration, failures: list[dict[str, Any]]
) -> None:
    response = client.get("/oidc/mfa/callback/?state=" + "s" * 36 + "&duo_code=abc")
    assert response.status_code == 400
    assert b"No Duo login is waiting" in response.content
    assert b'href="/oidc/login/"' in response.content  # "Log in again": LOGIN_URL
    assert failures[-1]["reason"] == "state_unknown" and failures[-1]["user"] is None
    assert duo.stats()["tokens"] == 0


def test_an_expired_attempt_is_refused_without_asking_duo(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    back = duo.approve(to_duo(client, duo, "alice"))
    store = client.session
    store[mfa_session.PENDING_KEY]["started_at"] = time.time() - mfa_session.PENDING_TTL - 1
    store.save()
    response = callback(client, back)
    assert response.status_code == 400
    assert failures[-1]["reason"] == "state_expired"
    assert not authenticated(client)
    assert duo.stats()["tokens"] == 0


def test_deny_ends_on_a_clear_page_with_no_session(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]], caplog: Any
) -> None:
    response = callback(client, duo.deny(to_duo(client, duo, "alice")))
    assert "Second factor failed (access_denied, purpose=login" in caplog.text
    assert response.status_code == 403
    assert b"Duo did not approve this login" in response.content
    assert b"Log in again" in response.content and b'href="/oidc/mfa/login/?next=/me/"' in response.content
    assert not authenticated(client)
    assert failures[-1]["reason"] == "access_denied" and failures[-1]["user"] == alice
    assert MFAUserState.objects.get(user=alice).last_result == "deny"
    assert LiveSession.objects.count() == 0


def test_a_wrong_username_in_duos_answer_is_refused(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    duo.faults(wrong_username=True)
    response = callback(client, duo.approve(to_duo(client, duo, "alice")))
    assert response.status_code == 502
    assert b"another user" in response.content
    assert not authenticated(client)
    assert failures[-1]["reason"] == "invalid_token"


def test_a_refused_factor_is_refused(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    update(config, refused_factors="Bypass Code, SMS Passcode")
    duo.faults(factor="Bypass Code")
    response = callback(client, duo.approve(to_duo(client, duo, "alice")))
    assert response.status_code == 403
    assert b"does not accept this kind of second factor" in response.content
    assert not authenticated(client)
    assert (failures[-1]["reason"], failures[-1]["factor"], failures[-1]["device"]) == (
        "factor_refused",
        "Bypass Code",
        "bypass code",
    )
    state = MFAUserState.objects.get(user=alice)
    assert (state.last_result, state.last_reason, state.last_factor) == ("error", "factor_refused", "Bypass Code")


def test_an_accepted_factor_still_passes_when_others_are_refused(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    update(config, refused_factors="Bypass Code")
    duo.faults(factor="WebAuthn Security Key")
    assert login(client, duo, "alice").status_code == 302
    assert MFAUserState.objects.get(user=alice).last_device == "security key or passkey"


def test_an_error_from_duo_on_the_callback_is_a_refusal(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    to_duo(client, duo, "alice")
    state = client.session[mfa_session.PENDING_KEY]["state"]
    response = client.get(f"/oidc/mfa/callback/?state={state}&error=access_denied&error_description=x")
    assert response.status_code == 403
    assert failures[-1]["reason"] == "access_denied"
    assert duo.stats()["tokens"] == 0


def test_a_password_change_during_the_prompt_ends_the_attempt(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    back = duo.approve(to_duo(client, duo, "alice"))
    alice.set_password("a new password")
    alice.save()
    response = callback(client, back)
    assert response.status_code == 400
    assert failures[-1]["reason"] == "password_changed"
    assert not authenticated(client)


def test_a_user_deactivated_during_the_prompt_is_refused(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    back = duo.approve(to_duo(client, duo, "alice"))
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert callback(client, back).status_code == 403
    assert failures[-1]["reason"] == "user_inactive"
    assert not authenticated(client)


def test_an_off_site_next_is_not_followed(client: Client, duo: Any, config: MFAConfiguration, alice: Any) -> None:
    response = login(client, duo, "alice", "/oidc/mfa/login/?next=https://evil.example/steal")
    assert response.status_code == 302
    assert response["Location"] == settings.LOGIN_REDIRECT_URL
    for sneaky in ("//evil.example/", "/\\evil.example/", "https:evil.example"):
        client.logout()
        response = login(client, duo, "alice", f"/oidc/mfa/login/?next={sneaky}")
        assert response["Location"] == settings.LOGIN_REDIRECT_URL, sneaky


def test_the_error_page_and_reports_never_show_the_code(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    back = duo.deny(to_duo(client, duo, "alice"))
    response = callback(client, back)
    assert params(back)["duo_code"].encode() not in response.content
    assert params(back)["state"].encode() not in response.content
    # Cleansed once the view is done: Django's error reports list request.GET and the query string.
    request = response.wsgi_request
    assert params(back)["duo_code"] not in request.META["QUERY_STRING"]
    assert request.GET["duo_code"] != params(back)["duo_code"]


# Duo down, slow, or refusing the credentials -------------------------------------------------------


def test_duo_down_fail_closed_shows_a_clear_page(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]], caplog: Any
) -> None:
    duo.faults(down=True)
    response = password(client, "alice")
    assert response.status_code == 503
    assert b"Duo could not be reached" in response.content
    assert not authenticated(client)
    assert failures[-1]["reason"] == "duo_unavailable"
    assert "Second factor failed (duo_unavailable" in caplog.text


def test_duo_slow_fail_closed_answers_within_the_timeout(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, settings: Any
) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "HTTP_TIMEOUT": 0.5}
    delay = 60.0  # the fake's longest: a loaded machine's slowness stays far below it
    duo.faults(delay=delay)
    began = time.monotonic()
    response = password(client, "alice")
    assert time.monotonic() - began < delay / 2  # the SDK sets no timeout of its own (Duo answers after 60 s)
    assert response.status_code == 503
    assert not authenticated(client)


def test_duo_health_failing_fail_closed(client: Client, duo: Any, config: MFAConfiguration, alice: Any) -> None:
    duo.faults(health="fail")
    assert password(client, "alice").status_code == 503
    assert not authenticated(client)


def test_duo_down_fail_open_logs_in_and_logs_loudly(
    client: Client,
    duo: Any,
    config: MFAConfiguration,
    alice: Any,
    passes: list[dict[str, Any]],
    caplog: Any,
) -> None:
    update(config, fail_mode="open")
    duo.faults(down=True)
    response = password(client, "alice")
    assert response["Location"] == "/me/"
    assert authenticated(client)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "django_duo_oidc"]
    assert any("DUO SECOND FACTOR SKIPPED" in r.getMessage() for r in errors)
    assert passes[-1]["via"] == "fail_open"
    assert MFAUserState.objects.get(user=alice).last_result == "fail_open"
    # A fail-open session has not passed Duo: a view that needs Duo sends it through Duo (closed, still down).
    assert client.get("/t/mfa/any/")["Location"].startswith("/oidc/mfa/step-up/")
    assert client.get("/oidc/mfa/step-up/?next=/t/mfa/any/").status_code == 503


def test_duo_slow_fail_open_logs_in_after_the_timeout(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, settings: Any
) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "HTTP_TIMEOUT": 0.5}
    update(config, fail_mode="open")
    duo.faults(delay=8)
    assert password(client, "alice")["Location"] == "/me/"


def test_credentials_of_another_app_type_fail_closed_even_in_open_mode(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    update(config, fail_mode="open", client_id=duo.other_app_client_id)
    response = password(client, "alice")
    assert response.status_code == 503
    assert b"not those of a Duo Web SDK application" in response.content
    assert not authenticated(client)
    assert failures[-1]["reason"] == "duo_misconfigured"


def test_a_wrong_secret_fails_closed_even_in_open_mode(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    update(config, fail_mode="open")
    monkeypatch.setenv(SECRET_ENV, "x" * 40)
    response = password(client, "alice")
    assert response.status_code == 503
    assert b"invalid_client, 40002" in response.content
    assert not authenticated(client)


def test_a_missing_secret_fails_closed(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    update(config, fail_mode="open")
    monkeypatch.delenv(SECRET_ENV)
    response = password(client, "alice")
    assert response.status_code == 503
    assert SECRET_ENV.encode() not in response.content or b"is not set" in response.content
    assert not authenticated(client)


def test_duo_down_at_the_callback_gives_no_session(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    back = duo.approve(to_duo(client, duo, "alice"))
    duo.faults(down=True)
    response = callback(client, back)
    assert response.status_code == 503
    assert not authenticated(client)
    assert failures[-1]["reason"] == "duo_unavailable"


def test_the_shared_cache_down_at_the_callback_gives_no_session(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, settings: Any
) -> None:
    back = duo.approve(to_duo(client, duo, "alice"))
    settings.CACHES = {
        "default": {"BACKEND": "tests.integration.test_hardening_cache_outage.DownCache", "LOCATION": "duo-oidc-tests"}
    }
    response = callback(client, back)
    assert response.status_code == 503
    assert not authenticated(client)
    assert duo.stats()["tokens"] == 0


def test_a_disabled_configuration_during_the_prompt_fails_closed(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    back = duo.approve(to_duo(client, duo, "alice"))
    update(config, enabled=False)
    assert callback(client, back).status_code == 503
    assert not authenticated(client)


# Remembered browsers ------------------------------------------------------------------------------


def test_every_time_mode_asks_duo_at_each_login(client: Client, duo: Any, config: MFAConfiguration, alice: Any) -> None:
    response = login(client, duo, "alice")
    assert COOKIE_NAME not in response.cookies
    log_out(client)
    to_duo(client, duo, "alice")


def test_a_remembered_browser_skips_duo_until_revoked(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, passes: list[dict[str, Any]]
) -> None:
    update(config, remember_days=7)
    response = login(client, duo, "alice")
    cookie = response.cookies[COOKIE_NAME]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax"
    assert int(cookie["max-age"]) == 7 * 86400
    log_out(client)
    checks = duo.stats()["health_checks"]
    response = password(client, "alice")
    assert response["Location"] == "/me/"
    assert authenticated(client)
    assert duo.stats()["health_checks"] == checks
    assert passes[-1]["via"] == "remembered"
    # A remembered login has not passed Duo in this session: a view needing Duo steps up.
    assert client.get("/t/mfa/any/")["Location"].startswith("/oidc/mfa/step-up/")


def test_a_forged_remember_cookie_is_ignored(client: Client, duo: Any, config: MFAConfiguration, alice: Any) -> None:
    from django.core import signing

    update(config, remember_days=7)
    forged = {"u": str(alice.pk), "x": int(time.time()) + 86400, "p": "0" * 32, "e": 0, "c": duo.client_id}
    for value in ("garbage", signing.dumps(forged, salt="another.salt"), signing.dumps(forged, salt="x") + "x"):
        client.cookies[COOKIE_NAME] = value
        to_duo(client, duo, "alice")


def skips_duo(client: Client, duo: Any, username: str) -> bool:
    """A password login; whether it went straight in (a remembered browser). Logs out again."""
    checks = duo.stats()["health_checks"]
    response = password(client, username)
    assert response.status_code == 302
    skipped = response["Location"] == "/me/" and authenticated(client)
    assert skipped == (duo.stats()["health_checks"] == checks)
    if skipped:
        log_out(client)
    else:
        client.cookies.pop(settings.SESSION_COOKIE_NAME, None)  # abandon the pending attempt
    return skipped


def test_an_expired_remember_cookie_is_ignored(client: Client, duo: Any, config: MFAConfiguration, alice: Any) -> None:
    from django.core import signing

    from django_duo_oidc.mfa import remember

    update(config, remember_days=7)
    login(client, duo, "alice")
    log_out(client)
    value = signing.loads(client.cookies[COOKIE_NAME].value, salt=remember.SALT)
    assert skips_duo(client, duo, "alice")  # the real cookie works
    client.cookies[COOKIE_NAME] = signing.dumps({**value, "x": int(time.time()) - 1}, salt=remember.SALT)
    assert not skips_duo(client, duo, "alice")


def test_another_users_remember_cookie_is_ignored(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, bob: Any
) -> None:
    update(config, remember_days=7)
    login(client, duo, "bob")
    log_out(client)
    assert skips_duo(client, duo, "bob")  # bob's browser is remembered for bob...
    assert not skips_duo(client, duo, "alice")  # ...not for alice


def test_a_remember_cookie_dies_with_a_password_change(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    update(config, remember_days=7)
    login(client, duo, "alice")
    log_out(client)
    assert skips_duo(client, duo, "alice")
    alice.set_password(PASSWORD)  # even the same password: a new salt, a new hash
    alice.save()
    assert not skips_duo(client, duo, "alice")


def test_a_remember_cookie_dies_with_the_admins_revoke_action(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    update(config, remember_days=7)
    login(client, duo, "alice")
    log_out(client)
    assert skips_duo(client, duo, "alice")
    admin = Client(raise_request_exception=True)
    root = User.objects.create_superuser("root", "root@example.test", PASSWORD)
    sso_login(admin, root)
    state = MFAUserState.objects.get(user=alice)
    response = admin.post(
        "/admin/duo_oidc/mfauserstate/",
        {"action": "revoke_remembered_browsers", "_selected_action": [state.pk]},
    )
    assert response.status_code == 302
    assert MFAUserState.objects.get(user=alice).remember_epoch == 1
    assert not skips_duo(client, duo, "alice")


def test_a_remember_cookie_ends_when_remembering_is_turned_off(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    update(config, remember_days=7)
    login(client, duo, "alice")
    log_out(client)
    assert skips_duo(client, duo, "alice")
    update(config, remember_days=0)
    assert not skips_duo(client, duo, "alice")


def test_a_remember_cookie_of_another_duo_application_is_ignored(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    from django.core import signing

    from django_duo_oidc.mfa import remember

    update(config, remember_days=7)
    login(client, duo, "alice")
    log_out(client)
    value = signing.loads(client.cookies[COOKIE_NAME].value, salt=remember.SALT)
    client.cookies[COOKIE_NAME] = signing.dumps({**value, "c": "DI" + "X" * 18}, salt=remember.SALT)
    assert not skips_duo(client, duo, "alice")


def test_a_remember_cookie_is_not_a_password(client: Client, duo: Any, config: MFAConfiguration, alice: Any) -> None:
    update(config, remember_days=7)
    login(client, duo, "alice")
    log_out(client)
    assert password(client, "alice", pw="wrong").status_code == 200
    assert not authenticated(client)


# Step-up: @duo_required and DuoRequiredMixin ------------------------------------------------------


@pytest.mark.parametrize("url", ["/t/mfa/recent/", "/t/mfa/mixin/", "/t/mfa/async/"])
def test_a_fresh_duo_login_opens_a_recent_view(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, url: str
) -> None:
    login(client, duo, "alice")
    response = client.get(url)
    assert response.status_code == 200


@pytest.mark.parametrize("url", ["/t/mfa/recent/", "/t/mfa/mixin/", "/t/mfa/async/"])
def test_an_old_duo_login_steps_up_and_comes_back(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, url: str, passes: list[dict[str, Any]]
) -> None:
    login(client, duo, "alice")
    store = client.session
    store[mfa_session.PASSED_KEY]["auth_time"] = time.time() - 61
    store.save()
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == "/oidc/mfa/step-up/?next=" + url.replace("/", "%2F")
    authorize = client.get(response["Location"])["Location"]
    assert authorize.startswith(f"https://{duo.api_host}/")
    key = client.session.session_key
    back = callback(client, duo.approve(authorize))
    assert back["Location"] == url
    assert client.session.session_key == key  # a step-up is not a new login
    assert client.get(url).status_code == 200
    assert passes[-1]["purpose"] == "step-up"


@pytest.mark.parametrize("url", ["/t/mfa/recent/", "/t/mfa/mixin/", "/t/mfa/async/"])
def test_an_anonymous_user_goes_to_the_login_page(client: Client, config: MFAConfiguration, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(str(settings.LOGIN_URL).replace("duo_oidc:login", "/oidc/login/"))


def test_a_denied_step_up_keeps_the_view_closed(client: Client, duo: Any, config: MFAConfiguration, alice: Any) -> None:
    sso_login(client, alice)
    authorize = client.get(client.get("/t/mfa/recent/")["Location"])["Location"]
    response = callback(client, duo.deny(authorize))
    assert response.status_code == 403
    assert b"needs a fresh second factor" in response.content
    assert client.get("/t/mfa/recent/").status_code == 302
    assert authenticated(client)  # a failed step-up does not log the user out


def test_a_step_up_answer_cannot_log_in_another_browser(
    duo: Any, config: MFAConfiguration, alice: Any, failures: list[dict[str, Any]]
) -> None:
    client = Client(raise_request_exception=True)
    sso_login(client, alice)
    authorize = client.get(client.get("/t/mfa/recent/")["Location"])["Location"]
    client.logout()  # the session (and its pending step-up) is gone
    response = callback(client, duo.approve(authorize))
    assert response.status_code == 400
    assert not authenticated(client)


def test_a_step_up_without_a_configuration_fails_closed(client: Client, alice: Any) -> None:
    sso_login(client, alice)
    response = client.get("/t/mfa/recent/")
    assert client.get(response["Location"]).status_code == 503


# Sessions are ended like any other ------------------------------------------------------------------


def test_the_mfa_session_is_indexed_and_can_be_ended(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    from django_duo_oidc.sessions import end_sessions

    login(client, duo, "alice")
    assert end_sessions(alice, reason="test") == 1
    assert not authenticated(client)
    engine = import_module(settings.SESSION_ENGINE)
    assert not engine.SessionStore().exists(client.cookies[settings.SESSION_COOKIE_NAME].value)


def test_an_off_site_next_of_a_step_up_is_not_followed(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    sso_login(client, alice)
    authorize = client.get("/oidc/mfa/step-up/?next=https://evil.example/")["Location"]
    response = callback(client, duo.approve(authorize))
    assert response["Location"] == settings.LOGIN_REDIRECT_URL


def test_a_step_up_answer_for_another_user_than_the_sessions_is_refused(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, bob: Any, failures: list[dict[str, Any]]
) -> None:
    """The pending step-up names the user it was started for: the session must still be that user's."""
    sso_login(client, alice)
    authorize = client.get("/oidc/mfa/step-up/?next=/t/mfa/recent/")["Location"]
    store = client.session
    store[mfa_session.PENDING_KEY].update(user=str(bob.pk), hash=bob.get_session_auth_hash())
    store.save()
    assert callback(client, duo.approve(authorize)).status_code == 400
    assert failures[-1]["reason"] == "user_changed"
    assert client.get("/t/mfa/recent/").status_code == 302


def test_a_remember_cookie_is_bound_to_its_user(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any, bob: Any
) -> None:
    """Even with the same password hash (so the password digest matches) and epoch, another user's cookie
    does not skip Duo."""
    User.objects.filter(pk=bob.pk).update(password=User.objects.get(pk=alice.pk).password)
    update(config, remember_days=7)
    login(client, duo, "alice")
    log_out(client)
    assert skips_duo(client, duo, "alice")
    assert not skips_duo(client, duo, "bob")


def test_a_session_key_planted_before_the_password_does_not_carry_the_attempt(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    planted = client.session  # a session the attacker could have fixed in the victim's browser
    planted["x"] = 1
    planted.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key
    to_duo(client, duo, "alice")
    assert client.session.session_key != planted.session_key
    engine = import_module(settings.SESSION_ENGINE)
    assert mfa_session.PENDING_KEY not in engine.SessionStore(planted.session_key).load()


@pytest.mark.django_db(transaction=True)
def test_the_async_middleware_ends_a_session_that_skipped_duo(
    client: Client, duo: Any, config: MFAConfiguration, alice: Any
) -> None:
    import asyncio

    from django.test import AsyncClient

    client.force_login(alice, backend="django.contrib.auth.backends.ModelBackend")
    async_client = AsyncClient()
    async_client.cookies = client.cookies
    try:
        response = asyncio.run(async_client.get("/t/mfa/async/"))  # an async view: the async middleware path
        assert response.status_code == 302
        assert response["Location"].startswith("/oidc/login/")  # ended before the view: anonymous
    finally:
        close_executor_connections()
    assert not authenticated(client)
