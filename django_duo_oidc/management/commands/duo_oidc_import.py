"""Make the configuration what a file of ``duo_oidc_export`` says (configuration as code).

    python manage.py duo_oidc_import FILE [--dry-run] [--prune] [--send-secret-to-new-connection]

Everything is validated first, by the admin's own rules; one invalid row and nothing is written. The
changes are printed (created, ``changed <row>: <field>: old -> new``, deleted); ``--dry-run`` prints them
and writes nothing; a second import of the same file says "No changes." and writes nothing. A file that
carries a secret value is refused: a file names environment variables only. ``-`` reads standard input.
See :mod:`django_duo_oidc.management.config_import` for what each part of the file means.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import Error as DBError

from ..config_file import ConfigFileError, read_document
from ..config_import import import_document


class Command(BaseCommand):
    help = "Create, change (and with --prune delete) configuration rows to match a duo_oidc_export file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE", help="The JSON file ('-': standard input).")
        parser.add_argument("--dry-run", action="store_true", help="Show what would change; write nothing.")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Also delete the providers, directory connections and scope rules the file does not list "
            '(and the second factor when it says "second_factor": null). A section left out is left alone.',
        )
        parser.add_argument(
            "--send-secret-to-new-connection",
            action="store_true",
            help="Allow a provider whose issuer, client id or a secret-receiving endpoint changes to keep the "
            "variable of its client secret (the admin's box of the same name).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["file"] == "-":
                document = read_document(sys.stdin.buffer)
            else:
                with open(options["file"], "rb") as stream:
                    document = read_document(stream)
            report = import_document(
                document,
                prune=options["prune"],
                dry_run=options["dry_run"],
                send_secret_to_new_connection=options["send_secret_to_new_connection"],
            )
        except OSError as exc:
            raise CommandError(f"Cannot read {options['file']}: {exc.strerror}.") from None
        except ConfigFileError as exc:
            raise CommandError(f"Nothing was imported:\n{exc}") from None
        except DBError as exc:
            raise CommandError(f"Nothing was imported: the database refused ({type(exc).__name__}).") from None
        for warning in report.warnings:
            self.stderr.write(f"Warning: {warning}.")
        if not report.changes:
            self.stdout.write("No changes.")
            return
        for line in report.changes:
            self.stdout.write(("would: " if options["dry_run"] else "") + line)
        if options["dry_run"]:
            self.stdout.write(f"Dry run: {len(report.changes)} change(s) shown, nothing written.")
        else:
            self.stdout.write(f"Imported: {len(report.changes)} change(s).")
