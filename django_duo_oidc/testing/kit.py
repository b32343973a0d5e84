""":class:`FakeDuo`: the fake provider, its ``Provider`` row, and what a test does with them.

A test logs a test client in through the real login and callback views (:meth:`FakeDuo.login`), mints
bearer tokens (:meth:`FakeDuo.token`, :meth:`FakeDuo.client_token`), changes policy at the fake
(:meth:`FakeDuo.revoke`, :meth:`FakeDuo.narrow`) and lets the freshness window pass
(:meth:`FakeDuo.make_due`) to see the site notice. The pytest fixtures
(:mod:`django_duo_oidc.testing.pytest_plugin`) and :class:`~django_duo_oidc.testing.testcase.DuoTestMixin`
are thin wrappers around it.

Over 300 lines on purpose: one class whose documented methods are the kit's whole surface.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse

from ..conf import conf
from ..core.jwks import JWKSStore
from ..core.scopes import format_scopes, parse_scopes
from ..login import session as login_session
from ..models import Identity, Provider, secret_env_refusal
from . import fakeop
from .fakeop import FakeOP

if TYPE_CHECKING:
    # django-stubs' name for the site's user model (AUTH_USER_MODEL); its mypy plugin resolves it.
    from django.contrib.auth.models import _User as SiteUser

__all__ = ["FACTORY", "SECRET_ENV", "FakeDuo", "LoginFailed"]

#: The value of ``DUO_OIDC["HTTP_SESSION_FACTORY"]`` that mounts the fake.
FACTORY = "django_duo_oidc.testing.fakeop.session_factory"
#: The environment variable holding the fake's client secret while a FakeDuo runs, when
#: ``DUO_OIDC["ENCRYPTION_KEYS"]`` is empty (with keys, the secret is stored encrypted instead).
SECRET_ENV = "DUO_OIDC_TESTKIT_CLIENT_SECRET"

Scopes = str | Iterable[str]
When = float | datetime


class LoginFailed(AssertionError):
    """A :meth:`FakeDuo.login` did not end logged in: the message says where it stopped and why."""


def _scopes(value: Scopes) -> frozenset[str]:
    return parse_scopes(value) if isinstance(value, str) else frozenset(value)


def _epoch(value: When) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


class FakeDuo:
    """A fake Duo provider (:class:`~django_duo_oidc.testing.fakeop.FakeOP`) and its ``Provider`` row.

    ``FakeDuo(slug="duo", **provider_fields).start()`` makes the fake the one that answers, mounts it
    (``DUO_OIDC["HTTP_SESSION_FACTORY"]``, overridden until :meth:`stop` unless ``mount=False`` or your
    test settings already name :data:`FACTORY`), clears the app's cache (``DUO_OIDC["CACHE_ALIAS"]``) and
    what this process remembers of providers and tokens, and creates the row (default provider,
    scopes ``openid profile email groups``; ``provider_fields`` set any other field). It needs the
    database: call it inside a test. :meth:`stop` undoes all but the row (the test's transaction does).

    Attributes: ``op`` (the fake: set its knobs, read what it was asked), ``provider`` (the row).
    """

    def __init__(self, slug: str = "duo", *, mount: bool = True, **provider_fields: Any) -> None:
        self.slug = slug
        self.mount = mount
        self.provider_fields = provider_fields
        self.op = FakeOP()
        self._provider: Provider | None = None
        self._previous: FakeOP | None = None
        self._override: override_settings | None = None
        self._env_before: str | None = None
        self._env_set = False
        self._started = False

    @property
    def provider(self) -> Provider:
        """The ``Provider`` row of the fake (created by :meth:`start`)."""
        if self._provider is None:
            raise RuntimeError("The FakeDuo has no provider row yet: call start() (or use it as a context manager).")
        return self._provider

    # Lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FakeDuo:
        """Install the fake, mount it, and create its provider row; return self.

        If the row cannot be created, everything is undone and the error raised; a row with this slug
        already there is ``ImproperlyConfigured`` (nothing is changed).
        """
        if self._started:
            return self
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> FakeDuo:
        if Provider.objects.filter(slug=self.slug).exists():
            # A data migration or fixture of the site made its real provider under this slug: say so,
            # rather than an IntegrityError that also breaks the test's transaction.
            raise ImproperlyConfigured(
                f"The test database already has a Provider with slug {self.slug!r} (a data migration or a "
                "fixture?). Give the fake another slug: FakeDuo(slug='duo-test'), DuoTestMixin.duo_slug, "
                "or FakeDuo directly in your own pytest fixture."
            )
        self._started = True  # from here on, stop() undoes whatever was done
        if self.mount and conf.http_session_factory != FACTORY:
            from django.conf import settings

            self._override = override_settings(
                DUO_OIDC={**getattr(settings, "DUO_OIDC", {}), "HTTP_SESSION_FACTORY": FACTORY}
            )
            self._override.enable()
        self._previous = fakeop.install(self.op)
        self._forget()
        fields: dict[str, Any] = {
            "name": "Duo (test)",
            "issuer": self.op.issuer,
            "client_id": self.op.client_id,
            "scopes": "openid profile email groups",
            "is_default": True,
            **self.provider_fields,
        }
        provider = Provider(slug=self.slug, **fields)
        self._set_secret(provider)
        provider.save()
        self._provider = provider
        return self

    def stop(self) -> None:
        """Stop the fake answering and undo :meth:`start` (the row goes with the test's transaction)."""
        if not self._started:
            return
        self._started = False
        fakeop.uninstall(self._previous)
        try:
            self._forget()
        finally:
            self._restore()

    def _restore(self) -> None:
        if self._env_set:
            self._env_set = False
            if self._env_before is None:
                os.environ.pop(SECRET_ENV, None)
            else:
                os.environ[SECRET_ENV] = self._env_before
        if self._override is not None:
            self._override.disable()
            self._override = None

    def __enter__(self) -> FakeDuo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _set_secret(self, provider: Provider) -> None:
        if conf.encryption_keys:
            provider.set_client_secret(self.op.client_secret)
            return
        refusal = secret_env_refusal(SECRET_ENV)
        if refusal:
            raise ImproperlyConfigured(
                f"FakeDuo keeps the fake's client secret in {SECRET_ENV}, which your settings refuse: {refusal} "
                'Set DUO_OIDC["ENCRYPTION_KEYS"] in your test settings (the secret is then stored encrypted), '
                "or allow the DUO_ prefix."
            )
        self._env_before = os.environ.get(SECRET_ENV)
        self._env_set = True
        os.environ[SECRET_ENV] = self.op.client_secret
        provider.client_secret_env = SECRET_ENV

    def _forget(self) -> None:
        """What the process and the cache remember of providers and tokens: gone, like a new worker's."""
        from ..resource import reset

        caches[conf.cache_alias].clear()
        JWKSStore.forget_all()
        reset()

    def update_provider(self, **fields: Any) -> Provider:
        """Change fields of the provider row, effective from the next request (e.g.
        ``access_token_validation="introspection"`` for opaque tokens)."""
        from ..resource import reset

        for name, value in fields.items():
            setattr(self.provider, name, value)
        self.provider.save()
        reset()  # the bearer registry would otherwise keep the old row for up to 5 seconds
        return self.provider

    # Browser logins ----------------------------------------------------------------------------

    def login(
        self,
        client: Client,
        sub: str = "alice",
        *,
        scopes: Scopes | None = None,
        groups: Iterable[str] | None = None,
        auth_time: When | None = None,
        claims: dict[str, Any] | None = None,
        next: str = "/",  # the login URL's own parameter name
    ) -> SiteUser:
        """Log ``client`` in as the Duo user ``sub``, through the site's login and callback views.

        The session is what a real login leaves (tokens sealed, grant, ``auth_time``, the session
        index). ``scopes``: granted (``openid`` always added; default: the row's scopes);
        ``groups``: the ``groups`` claim (default ``["crm-users"]``); ``auth_time``: when the user
        authenticated at Duo (epoch seconds or an aware datetime; default 5 seconds ago);
        ``claims``: more ID token and userinfo claims (``email`` defaults to ``<sub>@example.test``).
        Returns the Django user the login was linked to. For an ``AsyncClient``, log a ``Client`` in
        and copy its cookies (``async_client.cookies = client.cookies``).

        :raises LoginFailed: the site refused the login (the message has the status and reason).
        """
        extra = dict(claims or {})
        if groups is not None:
            extra["groups"] = list(groups)
        login_url = reverse("duo_oidc:login") + "?" + urlencode({"provider": self.slug, "next": next})
        start = client.get(login_url)
        location = start.get("Location", "")
        if start.status_code != 302 or not location.startswith(self.op.issuer + "/authorize"):
            raise LoginFailed(f"The login view did not send the browser to the fake: {_describe(start)}")
        granted = None if scopes is None else format_scopes(_scopes(scopes) | {"openid"})
        answer = self.op.authorize(
            location,
            sub=sub,
            scope=granted,
            claims=extra,
            auth_time=None if auth_time is None else _epoch(auth_time),
        )
        redirect_uri = parse_qs(urlsplit(location).query)["redirect_uri"][0]
        before = _stored_login(client)
        callback = client.get(urlsplit(redirect_uri).path + "?" + answer)
        # A new login of this sub, not one the client had before (a refused step-up leaves the old one).
        after = _stored_login(client)
        identity = Identity.objects.select_related("user").filter(provider=self.provider, sub=sub).first()
        if (
            callback.status_code != 302
            or after is None
            or after == before
            or after.get("sub") != sub
            or after.get("provider") != self.slug
            or identity is None
            or client.session.get("_auth_user_id") != str(identity.user.pk)
        ):
            raise LoginFailed(f"The callback did not log the user in: {_describe(callback)}")
        return identity.user

    def make_due(self, client: Client | None = None) -> None:
        """Let the freshness window (``REVALIDATE_SECONDS``) pass: the next request of ``client``'s
        session, and of every bearer token, is checked with the fake again (so a :meth:`revoke` or
        :meth:`narrow` shows). ``client`` None: bearer tokens only.

        :raises LoginFailed: ``client`` has no Duo login.
        """
        from ..resource import reset

        if client is not None:
            store = client.session
            data = store.get(login_session.LOGIN_KEY)
            if not isinstance(data, dict):
                raise LoginFailed("This client has no Duo login to check again (log it in first).")
            store[login_session.LOGIN_KEY] = {**data, "checked_at": time.time() - conf.revalidate_seconds - 1}
            store.save()
            from django.conf import settings

            # Cookie-based session engines change the key on every save.
            key = store.session_key
            assert key is not None  # save() gave the session one
            client.cookies[settings.SESSION_COOKIE_NAME] = key
        reset()
        # The answers introspection gave, shared by all workers for one window (sessions and bearer
        # tokens keep theirs apart): forgotten, so the next check asks the fake.
        keys = []
        for token in [*self.op.tokens, *self.op.refresh_tokens]:
            digest = hashlib.sha256(token.encode()).hexdigest()
            keys += [f"duo_oidc:introspection:{digest}:result", f"duo_oidc:bearer:introspection:{digest}:result"]
        caches[conf.cache_alias].delete_many(keys)

    # Bearer tokens -----------------------------------------------------------------------------

    def token(
        self,
        user: SiteUser | str = "alice",
        scopes: Scopes = "",
        *,
        opaque: bool = False,
        ttl: int = 3600,
        auth_time: When | None = None,
        audience: str | None = None,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """Mint an access token the fake issued to a user, registered at its introspection endpoint.

        ``user``: a Duo subject (``sub``), or a Django user (linked to this provider first if it is
        not: the identity's ``sub`` is its username); ``scopes``: the token's ``scope``. A JWT signed
        with the fake's key (``aud`` the client id, or ``audience``; ``auth_time`` for ``max_age``
        checks; ``claims`` added), or with ``opaque`` a random string only introspection knows (the
        row must then validate by introspection: :meth:`update_provider`).
        """
        sub = user if isinstance(user, str) else self.link(user)
        return self._mint(sub, _scopes(scopes), opaque, ttl, auth_time, audience, claims)

    def client_token(self, scopes: Scopes = "", *, opaque: bool = False, ttl: int = 600) -> str:
        """Mint a client-credentials token of the row's own client, Duo-shaped (``sub`` the client id):
        a client calling for itself, never a user."""
        return self._mint(self.op.client_id, _scopes(scopes), opaque, ttl, None, None, None)

    def _mint(
        self,
        sub: str,
        scopes: frozenset[str],
        opaque: bool,
        ttl: int,
        auth_time: When | None,
        audience: str | None,
        claims: dict[str, Any] | None,
    ) -> str:
        scope = format_scopes(scopes)
        extra: dict[str, Any] = {"jti": secrets.token_hex(8), **(claims or {})}
        if auth_time is not None:
            extra["auth_time"] = int(_epoch(auth_time))
        if opaque:
            token = secrets.token_urlsafe(32)
        else:
            token = self.op.access_token(sub, scope, aud=audience, ttl=ttl, **extra)
        state: dict[str, Any] = {"sub": sub, "scope": scope, "active": True}
        if opaque:
            state["introspection"] = {"exp": int(time.time()) + ttl, **({"aud": audience} if audience else {})}
        self.op.tokens[token] = state
        return token

    def link(self, user: SiteUser) -> str:
        """Link ``user`` to this provider (if it is not) and return the ``sub`` its tokens carry."""
        identity = Identity.objects.filter(provider=self.provider, user=user).first()
        if identity is None:
            identity = Identity.objects.create(provider=self.provider, sub=user.get_username(), user=user)
        return identity.sub

    # Policy at the provider --------------------------------------------------------------------

    def revoke(self, user: SiteUser | str) -> None:
        """Revoke every grant of ``user`` (a ``sub`` or a linked Django user) at the fake: its tokens
        and refresh tokens introspect as inactive, its refresh is refused. Seen at the next check
        (:meth:`make_due`)."""
        self.op.revoke(self._sub(user))

    def narrow(self, user: SiteUser | str, scopes: Scopes) -> None:
        """Cut ``user``'s live tokens down to ``scopes`` at the fake (introspection answers them).
        Seen at the next check (:meth:`make_due`)."""
        self.op.narrow(self._sub(user), format_scopes(_scopes(scopes)))

    def _sub(self, user: SiteUser | str) -> str:
        if isinstance(user, str):
            return user
        identity = Identity.objects.filter(provider=self.provider, user=user).first()
        if identity is None:
            raise ValueError(f"{user.get_username()!r} is not linked to provider {self.slug!r}")
        return identity.sub


def _stored_login(client: Client) -> dict[str, Any] | None:
    data = client.session.get(login_session.LOGIN_KEY)
    return data if isinstance(data, dict) else None


def _describe(response: Any) -> str:
    text = response.content[:300].decode("utf-8", "replace") if response.content else ""
    where = response.get("Location", "")
    return f"{response.status_code} {where} {text}".strip()
