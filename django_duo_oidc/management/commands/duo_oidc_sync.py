"""Sync Duo Admin API directories into Django (for cron, a Kubernetes CronJob, or by hand).

    python manage.py duo_oidc_sync [<slug>] [--dry-run] [--force]

Prints every change (or, with ``--dry-run``, every change it would make, writing nothing) and exits
non-zero when a sync failed: a partial listing, the deprovisioning guard, another run holding the lock.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...directory.sync import sync_all
from ...logsafe import sanitise
from ...models import DirectoryConnection


class Command(BaseCommand):
    help = "Sync one Duo Admin API directory connection, or every enabled one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", nargs="?", help="The connection to sync (default: every enabled one).")
        parser.add_argument("--dry-run", action="store_true", help="Show what would change; write nothing.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Apply even if the run deactivates more than the connection's max-deprovision-percent.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["slug"]
        if slug is not None and not DirectoryConnection.objects.filter(slug=slug).exists():
            raise CommandError(f"There is no directory connection {slug!r}.")
        results = sync_all(slug=slug, dry_run=options["dry_run"], force=options["force"])
        if not results:
            self.stdout.write("No enabled directory connection.")
            return
        failed = []
        for result in results:
            self.line(f"{result.connection}:{' (dry run)' if result.dry_run else ''}")
            for change in result.changes:
                self.line(f"  {'would: ' if result.dry_run else ''}{change}")
            for warning in result.warnings:
                self.line(f"  warning: {warning}")
            self.line(f"  {result.summary()}")
            if not result.ok:
                failed.append(result.connection)
        if failed:
            raise CommandError(f"Sync failed for {', '.join(failed)}.")

    def line(self, text: str) -> None:
        """Write a line; Duo's usernames and group names in it reach a terminal without control characters."""
        self.stdout.write(sanitise(text, limit=None))
