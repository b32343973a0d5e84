""":class:`DuoTestMixin`: the test kit for Django's ``TestCase`` (and ``TransactionTestCase``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from django.test import Client

from .kit import FakeDuo, Scopes, When

if TYPE_CHECKING:
    # django-stubs' name for the site's user model (AUTH_USER_MODEL); its mypy plugin resolves it.
    from django.contrib.auth.models import _User as SiteUser
    from django.test import SimpleTestCase as _TestCase  # what the mixin is combined with
else:
    _TestCase = object

__all__ = ["DuoTestMixin"]


class DuoTestMixin(_TestCase):
    """Give each test a running :class:`~django_duo_oidc.testing.FakeDuo` as ``self.duo``.

    Put it before the test case class: ``class MyTests(DuoTestMixin, TestCase)``. ``duo_slug`` and
    ``duo_provider_fields`` (class attributes) shape the provider row. The ``duo_*`` methods are the
    kit's, with ``self.client`` as the default client.
    """

    duo_slug: ClassVar[str] = "duo"
    duo_provider_fields: ClassVar[dict[str, Any]] = {}
    duo: FakeDuo
    client: Client

    def setUp(self) -> None:
        super().setUp()
        self.duo = FakeDuo(self.duo_slug, **self.duo_provider_fields).start()
        self.addCleanup(self.duo.stop)

    def duo_login(
        self,
        sub: str = "alice",
        *,
        client: Client | None = None,
        scopes: Scopes | None = None,
        groups: Iterable[str] | None = None,
        auth_time: When | None = None,
        claims: dict[str, Any] | None = None,
        next: str = "/",
    ) -> SiteUser:
        """Log ``client`` (default ``self.client``) in as ``sub``: :meth:`FakeDuo.login`."""
        return self.duo.login(
            client or self.client, sub, scopes=scopes, groups=groups, auth_time=auth_time, claims=claims, next=next
        )

    def duo_token(self, user: SiteUser | str = "alice", scopes: Scopes = "", **options: Any) -> str:
        """A bearer token for a user: :meth:`FakeDuo.token`."""
        return self.duo.token(user, scopes, **options)

    def duo_client_token(self, scopes: Scopes = "", **options: Any) -> str:
        """A client-credentials token: :meth:`FakeDuo.client_token`."""
        return self.duo.client_token(scopes, **options)

    def duo_revoke(self, user: SiteUser | str) -> None:
        """Revoke ``user``'s grants at the fake: :meth:`FakeDuo.revoke`."""
        self.duo.revoke(user)

    def duo_narrow(self, user: SiteUser | str, scopes: Scopes) -> None:
        """Narrow ``user``'s live tokens to ``scopes``: :meth:`FakeDuo.narrow`."""
        self.duo.narrow(user, scopes)

    def duo_make_due(self, client: Client | None = None) -> None:
        """Let the freshness window pass for ``client`` (default ``self.client``) and every bearer
        token: :meth:`FakeDuo.make_due`."""
        self.duo.make_due(client or self.client)
