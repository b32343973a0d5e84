"""Configure Duo's Universal Prompt as the second factor after password logins, from the shell.

    python manage.py duo_oidc_mfa --client-id ID --client-secret-env VAR --api-host HOST \\
        [--ca-certs PATH] [--fail-mode closed|open] [--check]

Also: ``--enable`` / ``--disable`` (the way back in when a broken configuration locks the admin out),
``--who all|staff|groups`` with ``--group NAME`` (repeatable), ``--remember-days N``, ``--refuse-factor
"Bypass Code"`` (repeatable; ``--refuse-factor ""`` clears the list), ``--username-from username|email``,
``--client-secret-stdin`` (store the secret encrypted). The first configuration row is created or
updated; a new one is enabled unless ``--disable`` is given. ``--check`` runs Duo's health check with
the saved configuration and the system checks, and explains Duo's refusals.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from ...core.errors import ConfigurationError, DuoOIDCError
from ...mfa.checks import check_configuration
from ...mfa.duo import client_for, health_check
from ...models import MFAConfiguration
from .. import store_secret_from_stdin
from ..validation import refusals_as_command_errors, save_as_admin, set_enabled

# What Duo's refusals mean, for --check (DUO.md section 3).
EXPLAIN_UNAUTHORIZED = (
    "Duo answered unauthorized_request: these are the credentials of another kind of Duo application. "
    'In the Duo Admin Panel, protect an application of type "Web SDK" and copy its Client ID, Client '
    "secret and API hostname (an OIDC/SSO, Admin API or Auth API application's keys do not work here)."
)
EXPLAIN_40002 = (
    "Duo answered 40002 invalid_client: the client assertion was signed with a secret Duo does not know for "
    "this client id. Copy the Client secret of the same Web SDK application again (was it reset?), and "
    "check that the client id belongs to it."
)


#: The options not named after their field (see :func:`..options.flag_for`); the other fields' options are.
FLAGS = {
    "client_secret_encrypted": "--client-secret-stdin",  # and --clear-client-secret
    "enabled": "--enable",  # and --disable
    "groups": "--group",  # repeatable; --group "" empties the list
    "refused_factors": "--refuse-factor",  # repeatable; --refuse-factor "" empties the list
}


class Command(BaseCommand):
    help = "Create or update the second factor (Duo Universal Prompt after the password), and check it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--client-id", help="Client ID of the Duo Web SDK application (20 characters).")
        secret = parser.add_mutually_exclusive_group()
        secret.add_argument(
            "--client-secret-env", help="Name of the environment variable holding the secret ('' for none)."
        )
        secret.add_argument(
            "--client-secret-stdin",
            action="store_true",
            help="Read the secret from standard input and store it encrypted (needs ENCRYPTION_KEYS).",
        )
        secret.add_argument("--clear-client-secret", action="store_true", help="Remove the stored encrypted secret.")
        parser.add_argument("--name", help='Shown in messages (default "Duo").')
        parser.add_argument("--api-host", help="API hostname, e.g. api-xxxxxxxx.duosecurity.com.")
        parser.add_argument("--ca-certs", help='CA bundle to trust instead of the Duo CAs the SDK pins ("" clears).')
        parser.add_argument("--fail-mode", choices=[c for c, _ in MFAConfiguration.FailMode.choices])
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--enable", action="store_true")
        state.add_argument("--disable", action="store_true")
        parser.add_argument("--who", choices=[c for c, _ in MFAConfiguration.Who.choices])
        parser.add_argument("--group", action="append", default=None, help="With --who groups. Repeatable.")
        parser.add_argument("--remember-days", type=int, help="0: ask Duo at every login (default).")
        parser.add_argument(
            "--refuse-factor", action="append", default=None, help='e.g. "Bypass Code". Repeatable; "" clears.'
        )
        parser.add_argument("--username-from", choices=[c for c, _ in MFAConfiguration.UsernameFrom.choices])
        parser.add_argument("--check", action="store_true", help="Run Duo's health check and the system checks.")

    def handle(self, *args: Any, **options: Any) -> None:
        config = MFAConfiguration.objects.order_by("pk").first()
        created = config is None
        if config is None:
            if not options["client_id"] or not options["api_host"]:
                raise CommandError("A new configuration needs --client-id, --api-host and a secret.")
            if not options["client_secret_env"] and not options["client_secret_stdin"]:
                raise CommandError("A new configuration needs --client-secret-env VAR (or --client-secret-stdin).")
            config = MFAConfiguration()
        self.apply(config, options)
        # A group created for a configuration refused is not left behind.
        with refusals_as_command_errors(), transaction.atomic():
            m2m = {}
            if options["group"] is not None:
                names = dict.fromkeys(name.strip() for name in options["group"])  # stripped, as the admin's are
                m2m["groups"] = [Group.objects.get_or_create(name=name)[0] for name in names if name]
            save_as_admin(config, by="duo_oidc_mfa", m2m=m2m)
        self.stdout.write(
            f"{'Created' if created else 'Updated'} the second factor ({'on' if config.enabled else 'off'}, "
            f"api host {config.api_host}, secret: {config.secret_status}, fail mode {config.fail_mode}, "
            f"who: {config.who}, remember days: {config.remember_days})."
        )
        if options["check"]:
            self.check_config(config)

    def apply(self, config: MFAConfiguration, options: dict[str, Any]) -> None:
        for option in (
            "name",
            "client_id",
            "api_host",
            "ca_certs",
            "fail_mode",
            "who",
            "remember_days",
            "username_from",
        ):
            if options[option] is not None:
                setattr(config, option, options[option])
        if options["remember_days"] is not None and options["remember_days"] < 0:
            raise CommandError("--remember-days is 0 or more.")
        if options["client_secret_env"] is not None:
            config.client_secret_env = options["client_secret_env"]
            config.client_secret_encrypted = ""
        if options["client_secret_stdin"]:
            store_secret_from_stdin(config.set_client_secret)
            config.client_secret_env = ""
        if options["clear_client_secret"]:
            config.client_secret_encrypted = ""
        if options["refuse_factor"] is not None:
            config.refused_factors = ", ".join(f.strip() for f in options["refuse_factor"] if f.strip())
        set_enabled(config, options)

    def check_config(self, config: MFAConfiguration) -> None:
        problems = check_configuration(config)
        for message in problems:
            self.stdout.write(f"  {message.id}: {message.msg}" + (f" ({message.hint})" if message.hint else ""))
        try:
            # The health check does not use the redirect URI; the SDK only requires one.
            health_check(client_for(config, "https://localhost/oidc/mfa/callback/"))
        except ConfigurationError as exc:
            self.stdout.write(f"  Duo's health check failed: {exc.description}")
            if "unauthorized_request" in exc.description:
                self.stdout.write(f"  {EXPLAIN_UNAUTHORIZED}")
            elif "40002" in exc.description:
                self.stdout.write(f"  {EXPLAIN_40002}")
            raise CommandError("The second factor is saved, but Duo refuses its credentials.") from None
        except DuoOIDCError as exc:
            self.stdout.write(f"  Duo's health check failed: {exc.description}")
            raise CommandError(
                f"The second factor is saved, but Duo cannot be reached at {config.api_host} "
                "(the host name, the network, a proxy, or the CA bundle)."
            ) from None
        errors = [m for m in problems if m.is_serious()]
        self.stdout.write(f"  Duo's health check at {config.api_host}: OK.")
        if errors:
            raise CommandError("Duo answers, but the configuration has errors (above).")
