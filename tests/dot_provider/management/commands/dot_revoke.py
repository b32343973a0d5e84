"""Revoke a user's refresh tokens of one client, as an administrator of the provider would:
``manage dot_revoke alice --client duo-site``. DOT's ``RefreshToken.revoke()`` also deletes the
access token it was issued with."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from oauth2_provider.models import get_refresh_token_model


class Command(BaseCommand):
    help = "Revoke a user's refresh tokens of one client."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--client", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        tokens = get_refresh_token_model().objects.filter(
            user__username=options["username"], application__client_id=options["client"], revoked__isnull=True
        )
        count = 0
        for token in tokens:
            token.revoke()
            count += 1
        self.stdout.write(f"revoked {count}")
