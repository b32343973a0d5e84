"""OpenID Connect Back-Channel Logout 1.0 at /oidc/backchannel-logout/<slug>/: a valid logout token from the
provider ends the sessions it names (section 2.7), anything else is refused with 400 (section 2.8), and an
outage is a 503 the provider can retry, never a 500 and never a logout on an unchecked token."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.core.cache.backends.locmem import LocMemCache
from django.core.management import call_command
from django.test import Client

from django_duo_oidc import signals
from django_duo_oidc.core.jwks import JWKSStore
from django_duo_oidc.core.tokens import BACKCHANNEL_LOGOUT_EVENT
from django_duo_oidc.models import LiveSession, Provider
from tests.conftest import captured
from tests.fakeop import FakeOP

from .test_hardening_cache_outage import DownCache, use_cache
from .test_login_views import login, me

pytestmark = pytest.mark.django_db
User = get_user_model()
URL = "/oidc/backchannel-logout/duo/"


@pytest.fixture(autouse=True)
def _local_memory_cache(settings: Any) -> None:
    # On the Redis leg too: the outage tests swap in a failing twin at the same location.
    settings.CACHES = {"default": {"BACKEND": f"{LocMemCache.__module__}.LocMemCache", "LOCATION": "duo-oidc-tests"}}


def logout_token(op: FakeOP, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": op.issuer,
        "aud": op.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_urlsafe(12),
        "sub": "alice",
        "sid": "op-sid-alice",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    claims.update(overrides)
    return op.sign({k: v for k, v in claims.items() if v is not None}, {"typ": "logout+jwt"})


FORM = "application/x-www-form-urlencoded"


def form(data: dict[str, Any]) -> str:
    return urlencode(data, doseq=True)


def post(token: str, url: str = URL, client: Client | None = None) -> Any:
    """What a provider sends (section 2.5): a form-encoded POST with the token."""
    return (client or Client()).post(url, form({"logout_token": token}), content_type=FORM)


def logged_in(op: FakeOP, sub: str = "alice", sid: str | None = "op-sid-alice") -> Client:
    client = Client()
    op.id_token_claims.pop("sid", None)
    if sid is not None:
        op.id_token_claims["sid"] = sid
    login(client, op, sub=sub)
    assert me(client)["authenticated"] is True
    return client


def assert_refused(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert body["error"] == ("temporarily_unavailable" if status == 503 else "invalid_request")
    assert body["error_description"]
    return body


# Success ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["db", "cache"])
def test_a_valid_token_ends_the_session_its_sid_names(
    fake_op: FakeOP, provider: Provider, settings: Any, engine: str, caplog: Any
) -> None:
    settings.SESSION_ENGINE = f"django.contrib.sessions.backends.{engine}"
    alice = logged_in(fake_op)
    other_tab = logged_in(fake_op, sid="op-sid-alice-2")  # another provider session of the same user
    token = logout_token(fake_op)
    with captured(signals.session_ended) as ended, caplog.at_level(logging.INFO, logger="django_duo_oidc"):
        response = post(token)
    assert response.status_code == 200 and response.content == b""
    assert "no-store" in response["Cache-Control"]
    assert me(alice) == {"authenticated": False}
    assert me(other_tab)["authenticated"] is True
    assert [(e["reason"], e["provider"], e["request"]) for e in ended] == [("backchannel_logout", provider, None)]
    assert LiveSession.objects.filter(sid="op-sid-alice").count() == 0
    assert token not in caplog.text


def test_sub_alone_ends_every_session_of_that_user_at_that_provider(fake_op: FakeOP, provider: Provider) -> None:
    first, second = logged_in(fake_op), logged_in(fake_op, sid="another")
    bob = logged_in(fake_op, sub="bob", sid="op-sid-bob")
    assert post(logout_token(fake_op, sid=None)).status_code == 200
    assert me(first) == {"authenticated": False} and me(second) == {"authenticated": False}
    assert me(bob)["authenticated"] is True


def test_ending_alice_never_touches_bob_even_with_bobs_sid(fake_op: FakeOP, provider: Provider) -> None:
    bob = logged_in(fake_op, sub="bob", sid="op-sid-bob")
    # A token about alice that names bob's session: sid and sub must both match.
    assert post(logout_token(fake_op, sub="alice", sid="op-sid-bob")).status_code == 200
    assert me(bob)["authenticated"] is True


def test_no_matching_session_is_still_200(fake_op: FakeOP, provider: Provider) -> None:
    alice = logged_in(fake_op)
    assert post(logout_token(fake_op, sid="unknown-sid")).status_code == 200
    assert post(logout_token(fake_op, sub="nobody", sid=None)).status_code == 200
    assert me(alice)["authenticated"] is True


def test_it_needs_no_csrf_token_and_no_login(fake_op: FakeOP, provider: Provider, settings: Any) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.contrib.auth.middleware.LoginRequiredMiddleware"]
    alice = logged_in(fake_op)
    assert post(logout_token(fake_op), client=Client(enforce_csrf_checks=True)).status_code == 200
    assert alice.get("/me/")["Location"].startswith("/oidc/login/")  # logged out: sent to log in
    assert LiveSession.objects.count() == 0


# Refused tokens: 400, nothing ended -----------------------------------------------------------------


BAD_CLAIMS = [
    {"iss": "https://evil.example/oidc/x"},
    {"aud": "another-client"},
    {"aud": ["django-client", "untrusted"]},
    {"iat": None},
    {"iat": int(time.time()) + 3600},
    {"iat": int(time.time()) - 3600, "exp": None},
    {"exp": int(time.time()) - 3600},
    {"jti": None},
    {"nonce": "n-123"},
    {"events": None},
    {"events": {BACKCHANNEL_LOGOUT_EVENT: "yes"}},
    {"events": [BACKCHANNEL_LOGOUT_EVENT]},
    {"sub": None, "sid": None},
]


@pytest.mark.parametrize("overrides", BAD_CLAIMS, ids=[",".join(sorted(o)) + str(i) for i, o in enumerate(BAD_CLAIMS)])
def test_bad_claims_are_refused(fake_op: FakeOP, provider: Provider, overrides: dict[str, Any]) -> None:
    alice = logged_in(fake_op)
    if "aud" in overrides and isinstance(overrides["aud"], list):
        overrides = {"aud": [fake_op.client_id, "untrusted"]}
    assert_refused(post(logout_token(fake_op, **overrides)))
    assert me(alice)["authenticated"] is True


@pytest.mark.parametrize("sign_with", ["other-key", "none", "hs256-public-key", "hs256-client-secret"])
def test_forged_and_downgraded_signatures_are_refused(fake_op: FakeOP, provider: Provider, sign_with: str) -> None:
    alice = logged_in(fake_op)
    fake_op.sign_with = sign_with
    assert_refused(post(logout_token(fake_op)))
    assert me(alice)["authenticated"] is True


def test_an_id_token_is_not_a_logout_token(fake_op: FakeOP, provider: Provider) -> None:
    alice = logged_in(fake_op)
    now = int(time.time())
    id_token = fake_op.sign(
        {"iss": fake_op.issuer, "aud": fake_op.client_id, "sub": "alice", "iat": now, "exp": now + 300, "nonce": "x"}
    )
    assert_refused(post(id_token))
    assert me(alice)["authenticated"] is True


def test_a_replayed_jti_is_refused_also_on_another_worker(fake_op: FakeOP, provider: Provider) -> None:
    token = logout_token(fake_op, jti="once")
    assert post(token).status_code == 200
    alice = logged_in(fake_op)  # logs in again after the logout
    JWKSStore.forget_all()  # "another worker": nothing in process memory, only the shared cache
    assert "already used" in assert_refused(post(token))["error_description"]
    # A new token with the same jti (a replay of the jti, re-signed) is refused as well.
    assert_refused(post(logout_token(fake_op, jti="once")))
    assert me(alice)["authenticated"] is True


def test_jti_is_single_use_per_provider(fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    other = Provider.objects.create(
        slug="other", issuer=fake_op.issuer, client_id="other-client", client_secret_env="DUO_FAKE_OP_SECRET"
    )
    assert post(logout_token(fake_op, jti="same")).status_code == 200
    token = logout_token(fake_op, jti="same", aud="other-client")
    assert post(token, url=f"/oidc/backchannel-logout/{other.slug}/").status_code == 200


def test_a_token_for_another_provider_row_is_refused(fake_op: FakeOP, provider: Provider) -> None:
    Provider.objects.create(slug="other", issuer=fake_op.issuer, client_id="other-client")
    # Signed by the same issuer, but for this site's "duo" client: not valid at the "other" row.
    assert_refused(post(logout_token(fake_op), url="/oidc/backchannel-logout/other/"))


# Refused requests ----------------------------------------------------------------------------------


def test_get_is_not_allowed(fake_op: FakeOP, provider: Provider) -> None:
    response = Client().get(URL, {"logout_token": logout_token(fake_op)})
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("slug", ["nope", "disabled", "off"])
def test_unknown_disabled_or_opted_out_providers_are_404(fake_op: FakeOP, provider: Provider, slug: str) -> None:
    Provider.objects.create(slug="disabled", issuer=fake_op.issuer, client_id=fake_op.client_id, enabled=False)
    Provider.objects.create(
        slug="off", issuer=fake_op.issuer, client_id=fake_op.client_id, backchannel_logout=False, is_default=False
    )
    calls = len(fake_op.calls)
    response = post(logout_token(fake_op), url=f"/oidc/backchannel-logout/{slug}/")
    assert_refused(response, 404)
    assert len(fake_op.calls) == calls  # no discovery or key fetched on its behalf


def test_a_huge_body_is_refused_before_it_is_read(fake_op: FakeOP, provider: Provider) -> None:
    assert_refused(post("x" * 40_000))
    assert_refused(post(logout_token(fake_op, padding="p" * 17_000)))  # a body that fits, a token too large


def test_the_body_must_be_a_form_with_exactly_one_token(fake_op: FakeOP, provider: Provider) -> None:
    token = logout_token(fake_op)
    client = Client()
    assert_refused(client.post(URL, form({"logout_token": [token, token]}), content_type=FORM))
    assert_refused(client.post(URL, form({"other": "x"}), content_type=FORM))
    assert_refused(client.post(URL, form({"logout_token": ""}), content_type=FORM))
    assert_refused(client.post(URL, {"logout_token": token}))  # multipart
    assert_refused(client.post(URL, {"logout_token": token}, content_type="application/json"))
    assert_refused(client.post(URL, "", content_type=FORM))
    assert_refused(client.post(URL, form({"logout_token": "not.a.jwt"}), content_type=FORM))


# Outages: 503 with Retry-After, nothing ended, never a 500 -----------------------------------------------


def test_keys_unreachable_is_503_and_retried_later(fake_op: FakeOP, provider: Provider, caplog: Any) -> None:
    alice = logged_in(fake_op)
    from django.core.cache import cache

    cache.clear()
    JWKSStore.forget_all()
    fake_op.faults["jwks"] = "down"
    token = logout_token(fake_op)
    response = post(token)
    assert_refused(response, 503)
    assert int(response["Retry-After"]) >= 1
    assert me(alice)["authenticated"] is True
    assert "could not be done" in caplog.text
    del fake_op.faults["jwks"]
    assert post(token).status_code == 200  # the provider's retry: the jti was never claimed
    assert me(alice) == {"authenticated": False}


def test_discovery_garbage_is_503(fake_op: FakeOP, provider: Provider) -> None:
    from django.core.cache import cache

    cache.clear()
    fake_op.faults[".well-known/openid-configuration"] = "garbage"
    assert_refused(post(logout_token(fake_op)), 503)


def test_cache_down_fails_closed_with_503(fake_op: FakeOP, provider: Provider, settings: Any) -> None:
    alice = logged_in(fake_op)
    use_cache(settings, DownCache)
    assert_refused(post(logout_token(fake_op)), 503)
    settings.CACHES = {"default": {"BACKEND": f"{LocMemCache.__module__}.LocMemCache", "LOCATION": "duo-oidc-tests"}}
    assert me(alice)["authenticated"] is True  # no logout on a token whose single use was not proven


def test_cache_down_only_for_the_jti_fails_closed(
    fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = logged_in(fake_op)
    post(logout_token(fake_op, sid="warm-up"))  # discovery and keys in the cache
    from django_duo_oidc.state.cache import SharedCache

    real_add = SharedCache.add

    def add(self: SharedCache, key: str, *args: Any, **kwargs: Any) -> bool:
        if key.startswith("duo_oidc:logout-jti:"):
            return self._call("no_such_operation")  # type: ignore[no-any-return]
        return real_add(self, key, *args, **kwargs)

    monkeypatch.setattr(SharedCache, "add", add)
    assert_refused(post(logout_token(fake_op)), 503)
    assert me(alice)["authenticated"] is True


def test_session_store_down_is_503_and_the_retry_works(
    fake_op: FakeOP, provider: Provider, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    alice = logged_in(fake_op)
    from django.contrib.sessions.backends.cache import SessionStore

    real_delete = SessionStore.delete

    def down(self: Any, session_key: str | None = None) -> None:
        raise ConnectionError("session cache down")

    monkeypatch.setattr(SessionStore, "delete", down)
    token = logout_token(fake_op)
    assert_refused(post(token), 503)
    monkeypatch.setattr(SessionStore, "delete", real_delete)
    assert post(token).status_code == 200  # same jti: released when the logout failed
    assert me(alice) == {"authenticated": False}


# Where the URL is shown -------------------------------------------------------------------------------


def test_the_admin_shows_the_url_to_give_the_provider(fake_op: FakeOP, provider: Provider) -> None:
    admin = User.objects.create_superuser("root", "root@example.test", "pw")
    client = Client()
    client.force_login(admin, backend="django.contrib.auth.backends.ModelBackend")
    page = client.get(f"/admin/duo_oidc/provider/{provider.pk}/change/").content.decode()
    assert "http://testserver/oidc/backchannel-logout/duo/" in page
    provider.backchannel_logout = False
    provider.save()
    page = client.get(f"/admin/duo_oidc/provider/{provider.pk}/change/").content.decode()
    assert "turn on back-channel logout" in page


def test_the_command_prints_the_url_and_switches_it(fake_op: FakeOP, provider: Provider, capsys: Any) -> None:
    call_command("duo_oidc_provider", "duo")
    assert "/oidc/backchannel-logout/duo/" in capsys.readouterr().out
    call_command("duo_oidc_provider", "duo", "--no-backchannel-logout")
    assert "backchannel-logout" not in capsys.readouterr().out
    provider.refresh_from_db()
    assert provider.backchannel_logout is False
    assert_refused(post(logout_token(fake_op)), 404)
    call_command("duo_oidc_provider", "duo", "--backchannel-logout")
    provider.refresh_from_db()
    assert provider.backchannel_logout is True


def test_the_database_down_is_503_not_500(fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import OperationalError
    from django.db.models.query import QuerySet

    def down(self: Any) -> Any:
        raise OperationalError("database is locked")

    token = logout_token(fake_op)
    monkeypatch.setattr(QuerySet, "first", down)
    response = post(token)
    assert_refused(response, 503)
    assert response["Retry-After"]


def test_a_flood_of_unknown_keys_does_not_flood_the_provider(
    fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "JWKS_REFETCH_INTERVAL": 3600}  # a cache timeout: Redis keeps time
    post(logout_token(fake_op, sid="warm-up"))  # discovery and keys fetched once
    before = sum(1 for _method, name in fake_op.calls if name == "jwks")
    for n in range(20):
        token = fake_op.sign({"iss": fake_op.issuer, "aud": fake_op.client_id}, {"kid": f"unknown-{n}"})
        assert_refused(post(token))
    after = sum(1 for _method, name in fake_op.calls if name == "jwks")
    assert after - before <= 1  # one refetch for a possibly rotated key, then JWKS_REFETCH_INTERVAL
