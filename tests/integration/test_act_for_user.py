"""Issue 14, acting for the user: ``request.oidc.access_token()`` hands out a currently valid access
token of the session's grant (sync and async), renewed single-flight when due, and raises
``ReauthenticationRequired`` (answered with a login redirect) when it cannot be renewed; the example's
``/me/upstream/`` shows the chain; the token never reaches the browser or the logs; the system check
refuses session engines that would put it in a cookie; RFC 8707 resource indicators at login and refresh."""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import pytest
import requests
from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from requests.adapters import BaseAdapter

import example_project.views as example_views
from django_duo_oidc import signals
from django_duo_oidc.checks import check_settings
from django_duo_oidc.core.errors import ProviderUnavailable, ReauthenticationRequired
from django_duo_oidc.login import session as stored
from django_duo_oidc.login.renewal import login_again
from django_duo_oidc.models import Provider
from django_duo_oidc.resource.context import BearerContext
from tests.conftest import StillClock, captured, query
from tests.fakeop import FakeOP
from tests.urls import urlpatterns as test_urls

from .test_login_views import login, me, start, token_calls
from .test_policy import CRM

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


# Views that act for the user, mounted on this module's URLconf ------------------------------------


def token_view(request: HttpRequest) -> HttpResponse:
    """Hands the token to the test through a side channel, never to the browser."""
    force = request.GET.get("force") == "1"
    HANDED_OUT.append(request.oidc.access_token(force=force))  # type: ignore[attr-defined]
    return HttpResponse("ok")


async def async_token_view(request: HttpRequest) -> HttpResponse:
    force = request.GET.get("force") == "1"
    HANDED_OUT.append(await request.oidc.aaccess_token(force=force))  # type: ignore[attr-defined]
    return HttpResponse("async ok")


def caught_view(request: HttpRequest) -> HttpResponse:
    try:
        request.oidc.access_token()  # type: ignore[attr-defined]
    except ReauthenticationRequired as exc:
        return login_again(request, exc)
    return HttpResponse("ok")


HANDED_OUT: list[str] = []

urlpatterns = [
    *test_urls,
    path("t/act/token/", token_view),
    path("t/act/async/", async_token_view),
    path("t/act/caught/", caught_view),
]


@pytest.fixture(autouse=True)
def _clean(fake_op: FakeOP) -> Any:
    # Opaque tokens are random; the fake's JWTs minted within one second are identical strings.
    fake_op.access_token_format = "opaque"
    HANDED_OUT.clear()
    yield
    HANDED_OUT.clear()


def due(client: Client, **changes: Any) -> None:
    """Make the stored access token due for renewal (issued long ago, expiring now), keeping the
    freshness check of the middleware quiet (checked just now)."""
    session = client.session
    data = dict(session["duo_oidc"])
    data.update({"expires_at": time.time() + 5, "issued_at": time.time() - 3600, "checked_at": time.time()})
    data.update(changes)
    session["duo_oidc"] = data
    session.save()


def stored_tokens(client: Client) -> tuple[str, str | None]:
    data = client.session["duo_oidc"]
    return stored.access_token(data), stored.refresh_token(data)


# request.oidc.access_token() ----------------------------------------------------------------------


def test_a_fresh_token_is_handed_out_without_a_provider_call(client: Client, fake_op: FakeOP, provider: Any) -> None:
    login(client, fake_op, scope=CRM)
    calls = len(fake_op.calls)
    assert client.get("/t/act/token/").status_code == 200
    assert [stored_tokens(client)[0]] == HANDED_OUT
    assert HANDED_OUT[0] in fake_op.tokens  # the login's own token
    assert len(fake_op.calls) == calls


def test_a_due_token_is_renewed_and_kept_sealed(client: Client, fake_op: FakeOP, provider: Any) -> None:
    """Due in the middle of a request (the middleware's freshness check ran before it was due)."""
    login(client, fake_op, scope=CRM)
    first = stored_tokens(client)[0]
    due(client)
    request = _session_request(client)
    renewed = request.oidc.access_token()  # type: ignore[attr-defined]
    assert renewed != first and fake_op.tokens[renewed]["active"]
    assert token_calls(fake_op) == 2  # the code, one refresh
    assert stored.access_token(request.session["duo_oidc"]) == renewed  # type: ignore[attr-defined]
    raw = str(dict(request.session.items()))  # type: ignore[attr-defined]
    assert renewed not in raw  # sealed at rest
    request.session.save()  # type: ignore[attr-defined]
    # The next request uses the renewed token as it is.
    assert client.get("/t/act/token/").status_code == 200
    assert [renewed] == HANDED_OUT and token_calls(fake_op) == 2


def test_a_due_token_is_renewed_by_the_middleware_first(client: Client, fake_op: FakeOP, provider: Any) -> None:
    login(client, fake_op, scope=CRM)
    first = stored_tokens(client)[0]
    due(client)
    assert client.get("/t/act/token/").status_code == 200
    assert HANDED_OUT[0] != first and HANDED_OUT[0] == stored_tokens(client)[0]
    assert token_calls(fake_op) == 2


def test_renewal_is_single_flight_across_workers(client: Client, fake_op: FakeOP, provider: Any) -> None:
    """Two workers holding the same due login (two requests that loaded the session before either
    saved) make one refresh between them and hand out the same token: a rotating refresh token is
    never spent twice."""
    fake_op.rotate_refresh_tokens = True
    login(client, fake_op, scope=CRM)
    due(client)
    snapshot = dict(client.session["duo_oidc"])
    assert client.get("/t/act/token/").status_code == 200
    # Worker 2 still holds the old login (old refresh token) in its copy of the session.
    session = client.session
    session["duo_oidc"] = snapshot
    session.save()
    assert client.get("/t/act/token/").status_code == 200
    assert token_calls(fake_op) == 2  # one refresh
    assert HANDED_OUT[0] == HANDED_OUT[1]
    assert client.get("/me/").json()["authenticated"] is True


def test_forced_renewal_after_a_refusal(client: Client, fake_op: FakeOP, provider: Any) -> None:
    login(client, fake_op, scope=CRM)
    first = stored_tokens(client)[0]
    due(client, expires_at=time.time() + 3000)  # not due, but old enough to be renewed when refused
    assert client.get("/t/act/token/?force=1").status_code == 200
    assert HANDED_OUT[0] != first and token_calls(fake_op) == 2


def test_a_forced_renewal_of_a_token_refused_twice_asks_the_provider_again(
    client: Client, fake_op: FakeOP, provider: Any
) -> None:
    """With a refresh token that does not rotate, the shared single-flight result (60 s) still holds
    the token the API refused: it is dropped, not handed out again."""
    login(client, fake_op, scope=CRM)
    due(client, expires_at=time.time() + 3000)
    client.get("/t/act/token/?force=1")
    due(client, expires_at=time.time() + 3000)  # the renewed token, refused too, a while later
    client.get("/t/act/token/?force=1")
    assert token_calls(fake_op) == 3
    assert HANDED_OUT[0] != HANDED_OUT[1]


def test_a_token_issued_seconds_ago_is_not_renewed_on_a_refusal(
    client: Client, fake_op: FakeOP, provider: Any, caplog: pytest.LogCaptureFixture, still_clock: StillClock
) -> None:
    """An API that refuses a brand-new token is misconfigured: renewing on each of its 401s would make
    every call a provider call (a renewal storm)."""
    login(client, fake_op, scope=CRM)
    for _ in range(5):
        assert client.get("/t/act/token/?force=1").status_code == 200
    assert token_calls(fake_op) == 1
    assert len(set(HANDED_OUT)) == 1
    assert "check what that API expects" in caplog.text


def test_a_refused_renewal_ends_the_session_and_sends_the_user_to_login(
    client: Client, fake_op: FakeOP, provider: Any
) -> None:
    login(client, fake_op, scope=CRM)
    fake_op.revoke("alice")  # the refresh token is refused (invalid_grant)
    due(client, expires_at=time.time() + 3000)  # an API refused the token: a forced renewal
    with captured(signals.session_ended) as ended:
        response = client.get("/t/act/token/?x=1&force=1")
    assert response.status_code == 302
    assert query(response["Location"]) == {"provider": "duo", "next": "/t/act/token/?x=1&force=1"}
    assert response["Location"].startswith("/oidc/login/")
    assert len(ended) == 1 and HANDED_OUT == []
    assert me(client) == {"authenticated": False}


def test_a_bare_4xx_refusal_is_a_refusal_too(client: Client, fake_op: FakeOP, provider: Any) -> None:
    login(client, fake_op, scope=CRM)
    due(client)
    fake_op.faults["token"] = 400
    request = _session_request(client)
    response = caught_view(request)
    assert request.user.is_anonymous  # type: ignore[attr-defined]
    assert response.status_code == 302 and response["Location"].startswith("/oidc/login/?provider=duo")
    assert me(client) == {"authenticated": False}


def test_without_a_refresh_token_the_user_logs_in_again(client: Client, fake_op: FakeOP, provider: Any) -> None:
    fake_op.issue_refresh_tokens = False
    login(client, fake_op, scope=CRM)
    due(client)
    response = client.get("/t/act/token/")
    assert response.status_code == 302 and "/oidc/login/" in response["Location"]
    assert token_calls(fake_op) == 1


def test_tokens_that_no_longer_decrypt_end_the_session(client: Client, fake_op: FakeOP, provider: Any) -> None:
    login(client, fake_op, scope=CRM)
    session = client.session
    data = dict(session["duo_oidc"])
    data["tokens"] = "not-a-sealed-value"
    session["duo_oidc"] = data
    session.save()
    response = client.get("/t/act/token/")
    assert response.status_code == 302 and "/oidc/login/" in response["Location"]
    assert me(client) == {"authenticated": False}


def test_a_disabled_provider_ends_the_session(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    due(client)
    Provider.objects.filter(pk=provider.pk).update(enabled=False)
    assert client.get("/t/act/token/").status_code == 302
    assert me(client) == {"authenticated": False}


def test_provider_down_hands_out_a_token_that_is_still_valid(
    client: Client, fake_op: FakeOP, provider: Any, settings: Any, still_clock: StillClock
) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "PROVIDER_DOWN_BACKOFF": 3600}  # a cache timeout: Redis keeps time
    login(client, fake_op, scope=CRM)
    first = stored_tokens(client)[0]
    due(client)  # due (5 s left), not expired
    fake_op.faults["token"] = "down"
    assert client.get("/t/act/token/").status_code == 200
    assert [first] == HANDED_OUT
    # The provider is now marked down: the next request does not ask it again.
    calls = token_calls(fake_op)
    assert client.get("/t/act/token/").status_code == 200
    assert token_calls(fake_op) == calls


@pytest.mark.parametrize("fault", ["down", "timeout", 503, "garbage"])
def test_provider_down_with_an_expired_token_is_a_503_not_a_session(
    client: Client, fake_op: FakeOP, provider: Any, fault: Any
) -> None:
    login(client, fake_op, scope=CRM)
    due(client, expires_at=time.time() - 1)
    fake_op.faults["token"] = fault
    response = client.get("/t/act/token/")
    assert response.status_code == 503
    assert HANDED_OUT == []
    assert me(client)["authenticated"] is True  # an outage does not end the session


def test_a_forced_renewal_during_an_outage_is_a_503(client: Client, fake_op: FakeOP, provider: Any) -> None:
    login(client, fake_op, scope=CRM)
    due(client, expires_at=time.time() + 3000)
    fake_op.faults["token"] = "down"
    with pytest.raises(ProviderUnavailable):
        # Through the Django machinery the middleware answers 503 (above); called directly it raises.
        from django_duo_oidc.login.renewal import current_access_token

        request = _session_request(client)
        current_access_token(request, force=True)


def test_the_cache_down_during_renewal_is_a_503(
    client: Client, fake_op: FakeOP, provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    login(client, fake_op, scope=CRM)
    due(client, expires_at=time.time() - 1)
    from django_duo_oidc.core.errors import CacheUnavailable
    from django_duo_oidc.providers.runtime import ProviderRuntime

    def broken(self: Any) -> bool:
        raise CacheUnavailable()

    monkeypatch.setattr(ProviderRuntime, "recently_down", broken)
    assert client.get("/t/act/token/").status_code == 503
    assert token_calls(fake_op) == 1  # the provider is not asked without single-flight


def test_async_views_get_the_token_too(client: Client, fake_op: FakeOP, provider: Any) -> None:
    login(client, fake_op, scope=CRM)
    due(client)
    assert client.get("/t/act/async/").status_code == 200
    assert len(HANDED_OUT) == 1 and fake_op.tokens[HANDED_OUT[0]]["active"]
    assert token_calls(fake_op) == 2
    assert stored_tokens(client)[0] == HANDED_OUT[0]


def test_an_async_view_whose_grant_is_refused_sends_the_user_to_login(
    client: Client, fake_op: FakeOP, provider: Any
) -> None:
    login(client, fake_op, scope=CRM)
    fake_op.revoke("alice")
    due(client, expires_at=time.time() + 3000)
    response = client.get("/t/act/async/?force=1")
    assert response.status_code == 302
    assert query(response["Location"]) == {"provider": "duo", "next": "/t/act/async/?force=1"}
    assert me(client) == {"authenticated": False}


def test_an_async_view_during_an_outage_is_a_503(client: Client, fake_op: FakeOP, provider: Any) -> None:
    login(client, fake_op, scope=CRM)
    due(client, expires_at=time.time() + 3000)
    fake_op.faults["token"] = "down"
    assert client.get("/t/act/async/?force=1").status_code == 503
    assert me(client)["authenticated"] is True


def test_anonymous_requests_have_no_token(client: Client, fake_op: FakeOP, provider: Any) -> None:
    response = client.get("/t/act/token/")
    assert response.status_code == 302 and response["Location"].startswith("/oidc/login/?next=")


def test_a_bearer_context_says_it_has_no_token_to_hand_out() -> None:
    context = BearerContext()
    with pytest.raises(ReauthenticationRequired):
        context.access_token()
    with pytest.raises(ReauthenticationRequired):
        async_to_sync(context.aaccess_token)()


def test_the_error_names_the_login_to_do() -> None:
    exc = ReauthenticationRequired(provider="duo")
    assert exc.error == "login_required" and exc.status_code == 401 and exc.provider == "duo"
    assert "sign in again" in exc.description


def _session_request(client: Client) -> HttpRequest:
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    from django_duo_oidc.login.context import OIDCContext

    request = RequestFactory().get("/")
    request.session = client.session  # type: ignore[attr-defined]
    request.user = get_user_model().objects.get(pk=client.session["_auth_user_id"])  # type: ignore[attr-defined]
    request.oidc = OIDCContext(request)  # type: ignore[attr-defined]
    return request


# The example's /me/upstream/: the chain in one page -----------------------------------------------


class DjangoAdapter(BaseAdapter):
    """Serve requests to http://testserver/ from this Django project in process (a second "worker")."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, str]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.seen.append(dict(request.headers))
        answer = Client().generic(
            request.method or "GET", request.path_url, headers={"Authorization": request.headers["Authorization"]}
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response._content = answer.content
        response.headers.update(dict(answer.items()))
        response.url = request.url or ""
        response.request = request
        response.connection = self  # type: ignore[attr-defined]
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch, provider: Provider) -> DjangoAdapter:
    # Opaque tokens: the API introspects them, and sees a revocation at once.
    provider.access_token_validation = Provider.AccessTokenValidation.INTROSPECTION
    provider.save()
    adapter = DjangoAdapter()

    def session() -> requests.Session:
        http = requests.Session()
        http.mount("http://testserver/", adapter)
        return http

    monkeypatch.setattr(example_views, "upstream_session", session)
    return adapter


def test_me_upstream_shows_what_the_api_saw(
    client: Client, fake_op: FakeOP, provider: Any, upstream: DjangoAdapter
) -> None:
    login(client, fake_op, scope=CRM)
    response = client.get("/me/upstream/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == 200
    assert body["api_saw"] == {
        "caller": {"sub": "alice", "username": "alice@example.test"},
        "scopes": ["crm.contacts.read", "email", "openid", "profile"],
    }
    assert upstream.seen[0]["Authorization"] == f"Bearer {stored_tokens(client)[0]}"
    assert "Cookie" not in upstream.seen[0]  # the API call carries the token, not the user's session


def test_me_upstream_after_a_revocation_sends_the_user_to_login(
    client: Client, fake_op: FakeOP, provider: Any, upstream: DjangoAdapter
) -> None:
    login(client, fake_op, scope=CRM)
    due(client, expires_at=time.time() + 3000)
    fake_op.revoke("alice")
    response = client.get("/me/upstream/")
    # The API answered 401, the forced renewal was refused: the session ended, back to login.
    assert response.status_code == 302 and response["Location"].startswith("/oidc/login/?provider=duo")
    assert len(upstream.seen) == 1


def test_me_upstream_when_the_api_does_not_answer(
    client: Client, fake_op: FakeOP, provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Hanging(BaseAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            assert kwargs["timeout"] == example_views.UPSTREAM_TIMEOUT  # bounded, never waits forever
            raise requests.ReadTimeout("no free worker")

        def close(self) -> None:
            pass

    def session() -> requests.Session:
        http = requests.Session()
        http.mount("http://", Hanging())
        return http

    monkeypatch.setattr(example_views, "upstream_session", session)
    login(client, fake_op, scope=CRM)
    response = client.get("/me/upstream/")
    assert response.status_code == 504
    assert "free worker" in response.json()["message"]


def test_me_upstream_needs_a_login(client: Client, fake_op: FakeOP, provider: Any) -> None:
    response = client.get("/me/upstream/")
    assert response.status_code == 302 and "/oidc/login/" in response["Location"]


# The token never reaches the browser, nor the logs ------------------------------------------------


def _everything_sent(response: Any) -> str:
    parts = [response.content.decode(errors="replace"), str(dict(response.items()))]
    parts += [f"{morsel.key}={morsel.value}" for morsel in response.cookies.values()]
    return "\n".join(parts)


def test_no_token_reaches_the_browser_or_the_logs(
    client: Client, fake_op: FakeOP, provider: Any, upstream: DjangoAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_op.rotate_refresh_tokens = True
    sent: list[str] = []
    url = start(client)
    sent.append(url)  # the authorization request
    callback = client.get("/oidc/callback/?" + fake_op.authorize(url, scope=CRM))
    sent.append(_everything_sent(callback))
    sent.append(_everything_sent(client.get("/me/")))
    sent.append(_everything_sent(client.get("/me/upstream/")))
    due(client)
    sent.append(_everything_sent(client.get("/me/upstream/")))  # renewed on the way
    sent.append(_everything_sent(client.get("/contacts/")))
    sent.append(_everything_sent(client.post("/oidc/logout/")))
    tokens = [t for t in [*fake_op.tokens, *fake_op.refresh_tokens] if t]
    assert len(tokens) >= 4  # two access tokens, two refresh tokens (rotated)
    text = "\n".join(sent) + "\n" + caplog.text
    for token in tokens:
        assert token not in text
        if token.count(".") == 2:
            assert token.split(".")[1] not in text and token.split(".")[2] not in text


def test_signed_cookie_sessions_are_refused(settings: Any) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    assert "duo_oidc.E007" in [m.id for m in check_settings()]


def test_a_session_engine_built_on_signed_cookies_is_refused_too(settings: Any) -> None:
    """Fails before the fix: the check compared the setting with Django's module path only, so a
    project's own engine subclassing it (to rename the cookie, say) put the tokens in a cookie unseen."""
    settings.SESSION_ENGINE = "tests.integration.cookie_session_engine"
    assert "duo_oidc.E007" in [m.id for m in check_settings()]


def test_server_side_session_engines_pass(settings: Any) -> None:
    for engine in ("db", "cache", "cached_db", "file"):
        settings.SESSION_ENGINE = f"django.contrib.sessions.backends.{engine}"
        assert "duo_oidc.E007" not in [m.id for m in check_settings()]
    settings.SESSION_ENGINE = "no.such.engine"
    assert "duo_oidc.E007" not in [m.id for m in check_settings()]  # not ours to report


# RFC 8707 resource indicators --------------------------------------------------------------------


def test_resource_indicators_are_sent_at_login_and_on_refresh(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    provider.resource_indicators = "urn:crm https://api.example.test/contacts"
    provider.full_clean()
    provider.save()
    url = start(client)
    from urllib.parse import parse_qs, urlsplit

    assert parse_qs(urlsplit(url).query)["resource"] == ["urn:crm", "https://api.example.test/contacts"]
    client.get("/oidc/callback/?" + fake_op.authorize(url, scope=CRM))
    # The login reads userinfo: its token stays the provider's (a token for urn:crm would be refused there).
    assert "resource" not in fake_op.token_requests[-1]
    due(client)
    client.get("/t/act/token/")
    assert fake_op.token_requests[-1]["grant_type"] == ["refresh_token"]
    assert fake_op.token_requests[-1]["resource"] == ["urn:crm", "https://api.example.test/contacts"]


def test_with_resource_indicators_the_freshness_check_introspects_the_refresh_token(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    """The session's access token is meant for another API, and providers refuse to introspect it for
    this client (oidc-provider: unsupported_token_type, which ended the session): the grant's refresh
    token says whether it is alive. Fails before the fix: the access token was introspected."""
    provider.resource_indicators = "urn:crm"
    provider.save()
    login(client, fake_op, scope=CRM)
    access, refresh = stored_tokens(client)
    original = fake_op.introspection_endpoint

    def refuse_api_tokens(request: Any) -> Any:  # what oidc-provider does with a token for urn:crm
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        if f"token={access}" in body:
            return 400, {"error": "unsupported_token_type"}, {}
        return original(request)

    fake_op.introspection_endpoint = refuse_api_tokens  # type: ignore[method-assign]
    session = client.session
    data = dict(session["duo_oidc"])
    data["checked_at"] = time.time() - 3600
    session["duo_oidc"] = data
    session.save()
    assert client.get("/contacts/").status_code == 200
    assert fake_op.introspected == [refresh]
    fake_op.revoke("alice")
    session = client.session
    data = dict(session["duo_oidc"])
    data["checked_at"] = time.time() - 3600
    session["duo_oidc"] = data
    session.save()
    cache.clear()  # the window's shared answer
    assert client.get("/contacts/").status_code == 302  # the grant was revoked: the session ends
    assert me(client) == {"authenticated": False}


def test_without_userinfo_the_code_exchange_names_the_resources_too(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    provider.resource_indicators = "urn:crm"
    provider.use_userinfo = False
    provider.save()
    login(client, fake_op, scope=CRM)
    assert fake_op.token_requests[-1]["grant_type"] == ["authorization_code"]
    assert fake_op.token_requests[-1]["resource"] == ["urn:crm"]


def test_without_resource_indicators_none_is_sent(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    url = start(client)
    assert "resource=" not in url
    client.get("/oidc/callback/?" + fake_op.authorize(url, scope=CRM))
    due(client)
    client.get("/t/act/token/")
    assert all("resource" not in form for form in fake_op.token_requests)


@pytest.mark.parametrize(
    "value", ["crm", "/api/contacts", "https://api.example.test/#frag", "urn:crm#x", "https://", "http:///x", "a b"]
)
def test_the_model_refuses_what_is_not_an_absolute_uri_without_fragment(provider: Provider, value: str) -> None:
    provider.resource_indicators = value
    with pytest.raises(ValidationError) as raised:
        provider.full_clean()
    assert "resource_indicators" in raised.value.message_dict


def test_the_command_sets_resource_indicators(provider: Provider) -> None:
    out = io.StringIO()
    call_command("duo_oidc_provider", "duo", "--resource", "urn:crm", "--resource", "urn:a urn:b", stdout=out)
    provider.refresh_from_db()
    assert provider.resource_indicators == "urn:crm urn:a urn:b"
    assert provider.resource_list == ("urn:crm", "urn:a", "urn:b")
    call_command("duo_oidc_provider", "duo", "--resource", "", stdout=out)
    provider.refresh_from_db()
    assert provider.resource_indicators == ""
    with pytest.raises(CommandError, match="fragment"):
        call_command("duo_oidc_provider", "duo", "--resource", "https://api.example.test/#x", stdout=out)


def test_the_command_switches_revocation_at_logout(provider: Provider) -> None:
    call_command("duo_oidc_provider", "duo", "--no-revoke-at-logout", stdout=io.StringIO())
    provider.refresh_from_db()
    assert provider.revoke_at_logout is False
    call_command("duo_oidc_provider", "duo", "--revoke-at-logout", stdout=io.StringIO())
    provider.refresh_from_db()
    assert provider.revoke_at_logout is True
