"""Write the configuration (providers and their group rules, scope rules, directory connections, the
second factor) as a JSON file, to keep it in version control and load it with ``duo_oidc_import``.

    python manage.py duo_oidc_export [-o FILE]

A secret is never written: only the names of the environment variables that hold them. A secret stored
encrypted in the database is left out, with a warning on standard error.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ..config_file import ConfigFileError, dumps, export_document


class Command(BaseCommand):
    help = "Write the providers, scope rules, directory connections and second factor as JSON (no secrets)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-o", "--output", metavar="FILE", help="Write to FILE (default: standard output).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            document, warnings = export_document()
        except ConfigFileError as exc:
            raise CommandError(str(exc)) from None
        for warning in warnings:
            self.stderr.write(f"Warning: {warning}.")
        text = dumps(document)
        if not options["output"]:
            self.stdout.write(text, ending="")
            return
        try:
            # Names only, no secret: but the file says which variables hold them; not for everyone to read.
            descriptor = os.open(options["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                out.write(text)
        except OSError as exc:
            raise CommandError(f"Cannot write {options['output']}: {exc.strerror}.") from None
        self.stderr.write(f"Wrote {options['output']}.")
