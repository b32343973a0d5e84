"""pytest fixtures of the test kit, registered by the ``pytest11`` entry point (needs pytest-django).

- ``duo_provider``: a started :class:`~django_duo_oidc.testing.FakeDuo` (the fake provider, mounted
  through the ``settings`` fixture, and its ``Provider`` row); uses the database.
- ``duo_login``: ``duo_login(client, "alice", scopes=[...], groups=[...], auth_time=...)`` logs a
  test client in through the real views and returns the user (:meth:`FakeDuo.login`).
- ``duo_token``: ``duo_token(user_or_sub, scopes, opaque=False, ttl=3600, auth_time=None)`` mints a
  bearer token (:meth:`FakeDuo.token`); ``duo_client_token(scopes)``: a client-credentials token.

Policy changes and the freshness window: ``duo_provider.revoke(user)``, ``duo_provider.narrow(user,
scopes)``, ``duo_provider.make_due(client)``. Disable the plugin with
``-p no:django_duo_oidc.testing.pytest_plugin``.

Nothing of Django or of the app is imported before a fixture runs (plugins load before settings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    # django-stubs' name for the site's user model (AUTH_USER_MODEL); its mypy plugin resolves it.
    from django.contrib.auth.models import _User as SiteUser

    from .kit import FakeDuo


@pytest.fixture
def duo_provider(request: pytest.FixtureRequest, settings: Any) -> Iterator[FakeDuo]:
    """The fake Duo provider, mounted and installed, with its default ``Provider`` row (slug ``duo``)."""
    from .kit import FACTORY, FakeDuo

    transactional = "transactional_db" in request.fixturenames or any(
        mark.kwargs.get("transaction") for mark in request.node.iter_markers("django_db")
    )
    request.getfixturevalue("transactional_db" if transactional else "db")
    duo_oidc = dict(getattr(settings, "DUO_OIDC", {}))
    if duo_oidc.get("HTTP_SESSION_FACTORY") != FACTORY:
        # Through pytest-django's settings fixture, so it is undone in order with the test's own changes.
        settings.DUO_OIDC = {**duo_oidc, "HTTP_SESSION_FACTORY": FACTORY}
    duo = FakeDuo(mount=False).start()
    yield duo
    duo.stop()


@pytest.fixture
def duo_login(duo_provider: FakeDuo) -> Callable[..., SiteUser]:
    """``duo_login(client, sub="alice", *, scopes=None, groups=None, auth_time=None, claims=None, next="/")``."""
    return duo_provider.login


@pytest.fixture
def duo_token(duo_provider: FakeDuo) -> Callable[..., str]:
    """``duo_token(user_or_sub="alice", scopes="", *, opaque=False, ttl=3600, auth_time=None, audience=None)``."""
    return duo_provider.token


@pytest.fixture
def duo_client_token(duo_provider: FakeDuo) -> Callable[..., str]:
    """``duo_client_token(scopes="", *, opaque=False, ttl=600)``: the row's own client, for itself."""
    return duo_provider.client_token
