"""Create or update a Duo Admin API directory connection (configuration as code).

    python manage.py duo_oidc_directory corp --api-host api-xxxxxxxx.duosecurity.com --ikey DI... \\
        --skey-env DUO_ADMIN_SKEY --provider duo [--match email|username] [--ca-certs PATH] [--check]

The secret key is never a command-line value (it would sit in shell history and ``ps``): name an
environment variable (``--skey-env``), or pipe it in with ``--skey-stdin`` to store it encrypted.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...directory.client import check_connection
from ...models import DirectoryConnection, Provider
from .. import store_secret_from_stdin
from ..validation import refusals_as_command_errors, save_as_admin, set_enabled

#: The options not named after their field (see :func:`..options.flag_for`); the other fields' options are.
FLAGS = {
    "slug": "slug",
    "integration_key": "--ikey",
    "secret_key_env": "--skey-env",
    "secret_key_encrypted": "--skey-stdin",  # and --clear-skey
    "manage_groups": "--groups",  # and --no-groups
    "enabled": "--enable",  # and --disable
}


class Command(BaseCommand):
    help = "Create or update a Duo Admin API directory connection by slug."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--api-host", help="Admin API hostname, e.g. api-xxxxxxxx.duosecurity.com (host:port).")
        parser.add_argument("--ikey", help="Integration key (DI...).")
        secret = parser.add_mutually_exclusive_group()
        secret.add_argument("--skey-env", help="Name of the environment variable holding the secret key ('' for none).")
        secret.add_argument(
            "--skey-stdin",
            action="store_true",
            help="Read the secret key from standard input and store it encrypted (needs ENCRYPTION_KEYS).",
        )
        secret.add_argument("--clear-skey", action="store_true", help="Remove the stored encrypted secret key.")
        parser.add_argument("--provider", help="Slug of the OIDC provider whose users this directory governs.")
        parser.add_argument("--match", choices=[c for c, _ in DirectoryConnection.Match.choices])
        parser.add_argument("--ca-certs", help="Path of a CA bundle to trust instead of Duo's pinned CAs (tests).")
        parser.add_argument("--name", help="Display name.")
        groups = parser.add_mutually_exclusive_group()
        groups.add_argument("--groups", action="store_true", help="Mirror Duo groups onto Django groups (default).")
        groups.add_argument("--no-groups", action="store_true", help="Do not mirror Duo groups.")
        parser.add_argument("--group-prefix", help='Prefix of the mirrored Django groups (default "duo:").')
        deprovision = parser.add_mutually_exclusive_group()
        deprovision.add_argument("--deprovision", action="store_true", help="Deactivate users Duo disables (default).")
        deprovision.add_argument("--no-deprovision", action="store_true", help="Only record Duo's state.")
        parser.add_argument(
            "--max-deprovision-percent",
            type=int,
            help="A run deactivating more than this share of the linked users changes nothing (default 10).",
        )
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--enable", action="store_true")
        state.add_argument("--disable", action="store_true")
        parser.add_argument("--check", action="store_true", help="Read one user from the Admin API afterwards.")

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["slug"]
        connection = DirectoryConnection.objects.filter(slug=slug).first()
        created = connection is None
        if created:
            missing = [f"--{n}" for n in ("api-host", "ikey", "provider") if not options[n.replace("-", "_")]]
            if not options["skey_env"] and not options["skey_stdin"]:
                missing.append("--skey-env")
            if missing:
                raise CommandError(f"A new directory connection needs {', '.join(missing)}.")
            connection = DirectoryConnection(slug=slug)
        assert connection is not None
        if options["provider"] is not None:
            provider = Provider.objects.filter(slug=options["provider"]).first()
            if provider is None:
                raise CommandError(f"There is no provider {options['provider']!r} (see duo_oidc_provider).")
            connection.provider = provider
        for option, attr in (
            ("api_host", "api_host"),
            ("ikey", "integration_key"),
            ("match", "match"),
            ("ca_certs", "ca_certs"),
            ("name", "name"),
            ("group_prefix", "group_prefix"),
            ("max_deprovision_percent", "max_deprovision_percent"),
        ):
            if options[option] is not None:
                setattr(connection, attr, options[option])
        if options["skey_env"] is not None:
            connection.secret_key_env = options["skey_env"]
            connection.secret_key_encrypted = ""
        if options["skey_stdin"]:
            store_secret_from_stdin(connection.set_secret_key, what="secret key")
            connection.secret_key_env = ""
        if options["clear_skey"]:
            connection.secret_key_encrypted = ""
        for on, off, attr in (
            ("groups", "no_groups", "manage_groups"),
            ("deprovision", "no_deprovision", "deprovision"),
        ):
            if options[on]:
                setattr(connection, attr, True)
            if options[off]:
                setattr(connection, attr, False)
        set_enabled(connection, options)
        with refusals_as_command_errors():
            save_as_admin(connection, by="duo_oidc_directory")
        self.stdout.write(
            f"{'Created' if created else 'Updated'} directory connection {slug!r} for provider "
            f"{connection.provider.slug!r} (secret key: {connection.secret_status})."
        )
        if options["check"]:
            report = check_connection(connection)
            for line in report.lines:
                self.stdout.write(f"  {line}")
            if not report.ok:
                raise CommandError(f"Directory connection {slug!r} saved, but the connection check failed.")
