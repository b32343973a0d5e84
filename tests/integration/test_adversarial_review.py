"""Adversarial review of the issue 10 hardening: each test shows a hole still open (fails before its fix)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

import pytest
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client
from django.urls import path
from django.views import View

from django_duo_oidc.models import Provider
from django_duo_oidc.policy.mixins import ScopesRequiredMixin
from django_duo_oidc.resource.views import BearerAuthMixin
from tests.fakeop import FakeOP
from tests.urls import urlpatterns as test_urls

from . import test_hardening_bearer
from .test_hardening_bearer import get, introspection_mode, issue, link
from .test_login_views import login

pytestmark = pytest.mark.django_db

CRM = "openid profile email crm.contacts.read"


class ScopesFirstBearerView(ScopesRequiredMixin, BearerAuthMixin, View):
    """The mixins in the order a reader of "combine in either order" (the decorators) would try."""

    required_scopes = "crm.contacts.read"

    def get(self, request: HttpRequest) -> HttpResponse:
        return JsonResponse({"sub": request.oidc.sub, "scopes": sorted(request.oidc.scopes)})


wsgi = test_hardening_bearer.wsgi  # the fixture: requests through the real WSGI handler

urlpatterns = [*test_urls, path("adv/scopes-first/", ScopesFirstBearerView.as_view())]


def _result_key(token: str) -> str:
    return "duo_oidc:bearer:introspection:" + hashlib.sha256(token.encode()).hexdigest() + ":result"


def test_a_sealed_introspection_answer_moved_to_another_tokens_key_does_not_authenticate_it(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    """singleflight's docstring: a sealed result in the cache "must not be forgeable by whoever can write
    to the cache". A sealed value is not bound to its key, so one who can write to the cache (but has no
    key) copies Alice's sealed "active" answer under the key of a string they made up, and that string
    then authenticates as Alice."""
    introspection_mode(provider)
    fake_op.access_token_format = "opaque"
    link(provider)
    alice = issue(fake_op)
    assert get(client, "/t/bearer/any/", alice).json()["user"] == "alice"
    sealed = cache.get(_result_key(alice))
    assert sealed is not None
    forged = secrets.token_urlsafe(32)  # never issued by the provider
    cache.set(_result_key(forged), sealed, 300)
    response = get(client, "/t/bearer/any/", forged)
    assert response.status_code == 401, response.content


def test_a_bearer_revalidation_refused_by_the_down_flag_does_not_extend_it(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    """The down flag says "leave the provider alone for PROVIDER_DOWN_BACKOFF". A proven token whose
    revalidation is due, sent while the flag is set, is refused with "failed moments ago" without any
    call; that refusal then sets the flag again (mark_down), resetting its TTL. One client polling with
    one valid token (or any steady API traffic) keeps the provider "down" for good after a single blip:
    the provider is never asked again and every session's scope views stay on 503."""
    import time

    from django_duo_oidc.providers.runtime import ProviderRuntime

    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0.2, "PROVIDER_DOWN_BACKOFF": 1}
    assert provider.access_token_validation == Provider.AccessTokenValidation.AUTO  # jwt+introspection
    token = issue(fake_op)
    assert get(client, "/api/contacts/", token).status_code == 200
    ProviderRuntime(provider).mark_down()  # one blip
    started = time.monotonic()
    calls = fake_op.count("token_introspection")
    while time.monotonic() - started < 1.6:  # past the backoff of the blip
        get(client, "/api/contacts/", token)
        time.sleep(0.25)
    assert fake_op.count("token_introspection") > calls, "the provider was never asked again after the backoff"
    assert get(client, "/api/contacts/", token).status_code == 200


@pytest.mark.parametrize("exp", [10**400, -(10**400)], ids=["huge", "-huge"])
def test_an_introspection_answer_with_an_out_of_range_exp_is_not_a_500(
    client: Client, fake_op: FakeOP, provider: Provider, exp: int
) -> None:
    """Item 4's sibling on the introspection side: TokenInfo.from_answer keeps any int as ``exp``, and
    ``float(exp)`` (single_flight's ttl, grant_from_introspection) overflows: a provider answering
    ``"exp": 1e400``-as-an-integer (a lying or broken provider, tier 3 of the review) gives a 500."""
    introspection_mode(provider)
    fake_op.access_token_format = "opaque"
    token = issue(fake_op)
    fake_op.tokens[token]["introspection"] = {"exp": exp}
    response = get(client, "/api/contacts/", token)
    assert response.status_code in (401, 503), response.status_code


@pytest.mark.urls(__name__)
def test_scopes_mixin_before_bearer_mixin_judges_the_token_not_the_session_cookie(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    """@scopes_required judges a bearer view on its token in either order; ScopesRequiredMixin placed
    before BearerAuthMixin judges the session cookie instead (and, the view being token-only, a session
    the middleware never freshened), then lets the token in: a token without the scope opens the view."""
    login(client, fake_op, scope=CRM)  # the session holds crm.contacts.read
    narrow = issue(fake_op, sub="bob-sub", scope="email")  # the token does not
    response = get(client, "/adv/scopes-first/", narrow)
    assert response.status_code == 403, response.content


def test_an_old_sealed_introspection_answer_written_back_does_not_outlive_its_ttl(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    """The same cache writer, replaying: a sealed answer carries no expiry of its own (Fernet's timestamp
    is never checked), so an "active" answer kept from before a revocation, written back under its own
    key after its TTL, is trusted again: the revoked token keeps working."""
    import time

    settings.DUO_OIDC = {**settings.DUO_OIDC, "REVALIDATE_SECONDS": 0.2}
    introspection_mode(provider)
    fake_op.access_token_format = "opaque"
    token = issue(fake_op)
    assert get(client, "/api/contacts/", token).status_code == 200
    old = cache.get(_result_key(token))
    fake_op.revoke_token(token)
    time.sleep(0.3)  # the answer's TTL passed: the next request must ask the provider again
    cache.set(_result_key(token), old, 300)
    assert get(client, "/api/contacts/", token).status_code == 401


@pytest.mark.parametrize("max_age", ["\u00b2", "1\u00b9"])  # str.isdigit() is True for superscripts
def test_a_login_url_with_a_non_decimal_digit_max_age_is_not_a_500(
    client: Client, fake_op: FakeOP, provider: Provider, max_age: str
) -> None:
    """get_extra_params now does int(requested) after requested.isdigit(): superscript digits pass
    isdigit() and int() raises ValueError, a 500 on /oidc/login/ from a crafted link (item 5's code)."""
    response = client.get("/oidc/login/", {"provider": "duo", "max_age": max_age})
    assert response.status_code == 302


@pytest.mark.parametrize("expires_in", ["\u00b2", 10**400, -(10**400)], ids=["superscript", "huge", "-huge"])
def test_a_token_answer_with_an_unusable_expires_in_ends_on_the_error_page_not_a_500(
    client: Client, fake_op: FakeOP, provider: Provider, expires_in: Any
) -> None:
    """core.flow._token_request: ``expires_in.isdigit()`` then int() (superscripts raise ValueError), and
    any int is kept, so ``now + expires_in`` (session.store_login, the refresh, the client token)
    overflows: a lying provider's token answer is a 500 at the callback instead of the login error page."""
    fake_op.token_overrides = {"expires_in": expires_in}
    response = login(client, fake_op)  # the test client re-raises an unhandled exception
    assert response.status_code != 500


def test_a_policy_path_rule_holds_when_the_site_is_served_under_a_script_prefix(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    """DuoOIDCMiddleware matches SCOPE_POLICY / ScopeRule prefixes against request.path, which carries the
    script prefix (SCRIPT_NAME / FORCE_SCRIPT_NAME), while the URLconf (and the admin's "e.g. /admin/")
    is written without it: a site mounted under /app serves every "protected" view unguarded."""
    from django_duo_oidc.policy.rules import reset_policy_cache

    from .test_policy import settings_with

    reset_policy_cache()
    try:
        with settings_with(SCOPE_POLICY=[{"path": "/t/policy/", "scopes": ["crm.contacts.read"]}]):
            assert client.get("/t/policy/area/").status_code == 302  # anonymous: to login
            mounted = client.get("/t/policy/area/", SCRIPT_NAME="/app")
            assert mounted.status_code == 302, mounted.content
    finally:
        reset_policy_cache()


def test_refused_tokens_with_a_long_alg_retain_a_bounded_amount_of_memory(
    fake_op: FakeOP, provider: Provider, wsgi: Any
) -> None:
    """Item 8's byte bound assumes a refusal costs a fixed ENTRY_OVERHEAD (512 B), but _Refused keeps the
    exception's description, and check_algorithm puts the token's own ``alg`` in it (``f"... {alg!r}
    ..."``). An unauthenticated flood of ~16 kB tokens whose header ``alg`` is ~11 kB keeps ~11 kB per
    entry: SEEN_MAX (10,000) of them hold ~110+ MB per worker while the accounting says 5 MB."""
    from .test_hardening_bearer import _b64, _retained

    def long_alg() -> str:
        header = _b64(json.dumps({"alg": "A" * 11_000 + secrets.token_hex(4), "kid": fake_op.kid}).encode())
        now = int(time.time())
        claims = {"iss": fake_op.issuer, "sub": "m", "aud": fake_op.client_id, "exp": now + 600, "iat": now}
        return f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(b'x' * 32)}"

    assert len(long_alg()) <= 16_384
    assert wsgi("/api/contacts/", long_alg()) == 401  # discovery and JWKS fetched outside the measurement

    def flood() -> None:
        for _ in range(1_000):
            assert wsgi("/api/contacts/", long_alg()) == 401
        fake_op.calls.clear()

    retained = _retained(flood)
    assert retained < 2 * 1024 * 1024, f"{retained / 1e6:.1f} MB retained by 1,000 refusals"


def test_without_the_connection_permission_revocation_checks_cannot_be_turned_off(provider: Provider) -> None:
    """Item 16's sibling: CONNECTION_FIELDS gates access_token_validation ("which tokens count"), but not
    ``introspect``, which decides the same thing (auto: jwt+introspection or plain jwt) and whether
    sessions ever hear of a revocation. A staff user with only "change provider" turns it off unlogged:
    revoked grants and narrowed scopes at Duo then hold until the tokens expire."""
    from tests.integration.test_admin_checks_command import provider_form
    from tests.integration.test_hardening_admin import change_url, staff_client

    assert provider.introspect
    client = staff_client("change_provider", "view_provider")
    data = provider_form(provider, name="Renamed")
    data.pop("introspect", None)  # an unticked checkbox
    response = client.post(change_url(provider), data)
    assert response.status_code == 302, response.content
    provider.refresh_from_db()
    assert provider.name == "Renamed"
    assert provider.introspect, "revocation checks turned off without the connection permission"


def test_a_key_set_written_into_the_shared_cache_does_not_make_forged_tokens_valid(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    """Where the cache's integrity matters most: the JWKS (and the discovery document: token_endpoint,
    where the client secret goes) are kept in the shared cache as plain dicts, so whoever can write to
    the cache (the adversary single_flight's sealing is meant to stop) adds their own key and signs any
    access token: Alice's, any scope, no provider call. Either the cache is trusted for integrity (then
    say so, and sealing results buys nothing against writers) or these entries need a MAC too."""
    import jwt

    from django_duo_oidc.core.jwks import JWKSStore
    from tests.fakeop import public_jwk, rsa_key

    link(provider)
    attacker = rsa_key("attacker-in-the-cache")
    jwks_key = "duo_oidc:jwks:" + hashlib.sha256(f"{fake_op.issuer}/jwks".encode()).hexdigest()[:32]
    cache.set(jwks_key, {"fp": "planted", "jwks": {"keys": [public_jwk(attacker, "planted")]}}, 3600)
    JWKSStore.forget_all()
    now = int(time.time())
    claims = {
        "iss": fake_op.issuer,
        "sub": "alice-sub",
        "aud": fake_op.client_id,
        "exp": now + 600,
        "iat": now,
        "scope": "crm.contacts.read crm.contacts.write",
    }
    forged = jwt.encode(claims, attacker, algorithm="RS256", headers={"kid": "planted"})
    provider.access_token_validation = Provider.AccessTokenValidation.JWT
    provider.save()
    response = get(client, "/t/bearer/any/", forged)
    assert response.status_code == 401, response.content


def test_setting_encryption_keys_for_the_first_time_keeps_sessions(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    """A stock site seals tokens under keys derived from SECRET_KEY. The day it sets ENCRYPTION_KEYS (as
    the admin's error message tells it to, to store a client secret in the database), _token_key_material
    drops SECRET_KEY altogether: every session's tokens stop opening and every user is logged out at
    their next check (REVALIDATE_SECONDS), every shared result and client token is thrown away."""
    import time as _time

    from cryptography.fernet import Fernet

    from .test_policy import age_session
    from .test_tokens_at_rest import without_encryption_keys

    without_encryption_keys(settings)
    login(client, fake_op, scope=CRM)
    settings.DUO_OIDC = {**settings.DUO_OIDC, "ENCRYPTION_KEYS": [Fernet.generate_key().decode()]}
    age_session(client, expires_at=_time.time() - 1)
    assert client.get("/contacts/").status_code == 200


LOGIN_REQUIRED_MW = "django.contrib.auth.middleware.LoginRequiredMiddleware"


def _with_login_required_middleware(settings: Any) -> None:
    """Django 5.1's LoginRequiredMiddleware, placed as its docs say: right after AuthenticationMiddleware."""
    middleware = list(settings.MIDDLEWARE)
    after = middleware.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1
    middleware.insert(after, LOGIN_REQUIRED_MW)
    settings.MIDDLEWARE = middleware


def test_the_login_flow_works_behind_djangos_login_required_middleware(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    """With LoginRequiredMiddleware (Django >= 5.1, "every view needs a login unless marked"), the login,
    callback (and logout) views are not marked @login_not_required: /oidc/login/ redirects to LOGIN_URL,
    which is /oidc/login/ itself: nobody can log in."""
    _with_login_required_middleware(settings)
    response = client.get("/oidc/login/?provider=duo&next=/me/")
    assert response.status_code == 302
    assert response["Location"].startswith(fake_op.issuer), response["Location"]


def test_bearer_views_answer_tokens_behind_djangos_login_required_middleware(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    """The same for the resource server: a @bearer_auth view (and the RFC 9728 document) is judged by
    its token, but LoginRequiredMiddleware, seeing no session user, redirects the API client to the
    browser login page: the API is unusable."""
    _with_login_required_middleware(settings)
    assert get(client, "/t/bearer/any/", issue(fake_op)).status_code == 200
    assert get(client, "/t/bearer/any/").status_code == 401  # a challenge, not a redirect to a login page


def test_a_revoked_session_does_not_pass_login_required_middleware_placed_before_ours(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    """Freshness is decided in DuoOIDCMiddleware.process_view. LoginRequiredMiddleware (its docs: "after
    AuthenticationMiddleware") decides in its own process_view, which runs first: a grant revoked at Duo
    passes it, our process_view then ends the session, and the login-required view runs for an anonymous
    request (or a view that assumes a user crashes). The system check only orders us after
    AuthenticationMiddleware; nothing says we must come before middleware that judges request.user."""
    from .test_policy import age_session

    _with_login_required_middleware(settings)
    login(client, fake_op, scope=CRM)
    assert client.get("/t/unguarded/").status_code == 200
    fake_op.revoke(client.session["duo_oidc"]["sub"])
    age_session(client)
    response = client.get("/t/unguarded/")
    assert response.status_code == 302, response.content  # to the login page, as for any anonymous request


def test_a_new_issuer_does_not_inherit_a_secret_read_from_the_environment(provider: Provider) -> None:
    """Item 16's rule "the stored secret is not sent to another issuer or client" covers only a secret
    stored encrypted (_check_secret_follows_connection returns at once without one). The README's
    Quick start reads it from the environment (DUO_CLIENT_SECRET; here DUO_FAKE_OP_SECRET): changing
    only the issuer is accepted, and the next token request sends the real secret to the new issuer."""
    from tests.integration.test_admin_checks_command import provider_form
    from tests.integration.test_hardening_admin import CONNECTION, change_url, staff_client

    assert provider.client_secret_env and not provider.client_secret_encrypted
    client = staff_client("change_provider", "view_provider", CONNECTION)
    data = provider_form(provider, issuer="https://attacker.example.test/oidc/x")
    client.post(change_url(provider), data)
    provider.refresh_from_db()
    assert provider.issuer == FakeOP().issuer, "the environment's secret now goes to another issuer"


def test_a_new_issuer_with_an_environment_secret_needs_an_explicit_confirmation(provider: Provider) -> None:
    """The way through for an administrator who means it: tick the confirmation in the admin, or name the
    variable on the command line next to the new issuer (configuration as code)."""
    import io

    from django.core.management import call_command

    from tests.integration.test_admin_checks_command import provider_form
    from tests.integration.test_hardening_admin import CONNECTION, change_url, staff_client

    new_issuer = "https://sso-other.sso.duosecurity.test/oidc/DIOTHER"
    client = staff_client("change_provider", "view_provider", CONNECTION)
    page = client.post(change_url(provider), provider_form(provider, issuer=new_issuer))
    assert page.status_code == 200 and "confirm that the secret in DUO_FAKE_OP_SECRET" in page.content.decode()
    client.post(change_url(provider), provider_form(provider, issuer=new_issuer, send_secret_to_new_connection="on"))
    provider.refresh_from_db()
    assert provider.issuer == new_issuer
    call_command(
        "duo_oidc_provider", "duo", "--issuer", FakeOP().issuer, "--client-secret-env", "DUO_FAKE_OP_SECRET",
        stdout=io.StringIO(),
    )  # fmt: skip
    provider.refresh_from_db()
    assert provider.issuer == FakeOP().issuer
