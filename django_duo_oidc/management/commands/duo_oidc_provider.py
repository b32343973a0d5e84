"""Create or update a provider from the command line (deployments configured from the environment).

    python manage.py duo_oidc_provider duo --issuer https://sso-xxx.sso.duosecurity.com/oidc/DI… \\
        --client-id DI… --client-secret-env DUO_CLIENT_SECRET [--scopes "openid profile email"] [--check]

``--check`` then reports what "Check connection" in the admin does (discovery, keys, the client
credentials tried at the token endpoint) and the system checks' findings about the other providers.

Every field of the row has an option, named after the field (``--email-claim``, ``--max-age``, ...):
booleans are ``--x`` / ``--no-x``, ``''`` empties a field that may be empty. The row is validated by the
admin's own form (:mod:`django_duo_oidc.management.validation`). Group rules: ``--group-rule`` and
``--staff-rule`` add them; ``duo_oidc_group_rule`` lists, changes and removes them.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, transaction
from django.urls import NoReverseMatch, reverse

from ...checks import check_providers, check_secret_variables
from ...models import ENDPOINT_FIELDS, Provider
from ...providers.connection import check_connection
from .. import store_secret_from_stdin
from ..options import add_field_options, apply_field_options
from ..validation import add_group_rule, refusals_as_command_errors, save_as_admin, set_enabled

#: The fields set by an option of their own name (see :func:`..options.flag_for`), or by ``FLAGS``.
SIMPLE_FIELDS = (
    "issuer",
    "client_id",
    "name",
    "scopes",
    "token_auth_method",
    "allowed_algorithms",
    "is_default",
    "introspect",
    "use_userinfo",
    "prompt",
    "max_age",
    "username_claims",
    "email_claim",
    "first_name_claim",
    "last_name_claim",
    "create_users",
    "link_existing_by_email",
    "access_token_validation",
    "access_token_audiences",
    "access_token_require_audience",
    "machine_clients",
    "end_session",
    "logout_id_token_hint",
    *ENDPOINT_FIELDS,
    "revoke_at_logout",
    "browser_login",
    "backchannel_logout",
)

#: Options not named after their field (kept as they were first published), and the fields set otherwise.
FLAGS = {
    "slug": "slug",
    "is_default": "--default",
    "use_userinfo": "--userinfo",
    "access_token_audiences": "--audience",
    "resource_indicators": "--resource",
    "enabled": "--enable",  # and --disable
    "client_secret_env": "--client-secret-env",
    "client_secret_encrypted": "--client-secret-stdin",  # and --clear-client-secret
}

HELPS = {
    "issuer": "Issuer URL from the Duo application's Metadata tab.",
    "name": "Display name (default: the slug).",
    "scopes": 'Space-separated scopes, e.g. "openid profile email".',
    "is_default": "Make this the default provider (--no-default: no longer).",
    "use_userinfo": "Also read claims from the userinfo endpoint at login (--no-userinfo: do not call it).",
    "end_session": "Also log out at the provider (--no-end-session: only end the Django session).",
    "logout_id_token_hint": (
        "Send id_token_hint with the provider logout (Glewlwyd and Keycloak need it; the ID token then appears "
        "in the logout URL: see docs/howto/providers.md)."
    ),
    "backchannel_logout": "Accept OpenID Connect Back-Channel Logout from this provider (default on).",
    "access_token_validation": "How bearer access tokens sent to this site's APIs are validated (default auto).",
    "access_token_audiences": "Space-separated audiences accepted in access tokens (default: the client id).",
    "revoke_at_logout": "Revoke the refresh and access tokens at the provider at logout (RFC 7009; default on).",
    "browser_login": "Offer this provider for browser logins (--no-browser-login: it only issues or checks tokens).",
    **{name: f"Set the {name} by hand ('' to read it from the provider's metadata again)." for name in ENDPOINT_FIELDS},
}


class Command(BaseCommand):
    help = "Create or update an OpenID provider (a Duo SSO application) by slug."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
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
        add_field_options(parser, Provider, SIMPLE_FIELDS, flags=FLAGS, helps=HELPS)
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--enable", action="store_true")
        state.add_argument("--disable", action="store_true")
        parser.add_argument(
            "--group-rule",
            action="append",
            default=[],
            metavar="CLAIM=VALUE:GROUP",
            help="Put users whose CLAIM holds VALUE into GROUP (created if missing). Repeatable.",
        )
        parser.add_argument(
            "--staff-rule",
            action="append",
            default=[],
            metavar="CLAIM=VALUE",
            help="Make users whose CLAIM holds VALUE staff while it does. Repeatable.",
        )
        parser.add_argument(
            "--resource",
            dest="resources",
            action="append",
            metavar="URI",
            help="RFC 8707 resource indicator sent at login and on refresh (an absolute URI, e.g. urn:crm): "
            "repeatable or space-separated; replaces the stored list ('' clears it).",
        )
        parser.add_argument(
            "--introspect-with",
            metavar="SLUG",
            help="Another provider whose introspection endpoint and credentials introspect this one's tokens "
            "(Duo's Global Token Introspection; '' to stop).",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Afterwards fetch discovery and JWKS, try the client credentials at the token endpoint, and run "
            "the system checks that read the provider table.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["slug"]
        provider = Provider.objects.filter(slug=slug).first()
        created = provider is None
        if created:
            if not options["issuer"] or not options["client_id"]:
                raise CommandError("A new provider needs --issuer and --client-id.")
            provider = Provider(slug=slug, name=options["name"] or slug)
        assert provider is not None
        apply_field_options(provider, options, SIMPLE_FIELDS)
        if options["client_secret_env"] is not None:
            provider.client_secret_env = options["client_secret_env"]
            # Naming the variable on the command line, next to the new issuer, is the confirmation.
            provider.confirm_secret_for_connection()
            provider.client_secret_encrypted = ""
        if options["client_secret_stdin"]:
            store_secret_from_stdin(provider.set_client_secret)
            provider.client_secret_env = ""
        if options["clear_client_secret"]:
            provider.client_secret_encrypted = ""
        set_enabled(provider, options)
        if options["resources"] is not None:
            provider.resource_indicators = " ".join(" ".join(options["resources"]).split())
        if options["introspect_with"] is not None:
            other = Provider.objects.filter(slug=options["introspect_with"]).first()
            if options["introspect_with"] and other is None:
                raise CommandError(f"No provider {options['introspect_with']!r} to introspect with.")
            provider.introspect_with = other
        rules = [self.parse_rule(r, group=True) for r in options["group_rule"]]
        rules += [self.parse_rule(r, group=False) for r in options["staff_rule"]]
        with refusals_as_command_errors(), transaction.atomic():  # the provider and its new rules, or nothing
            save_as_admin(provider, by="duo_oidc_provider")
            for claim, value, group_name in rules:
                add_group_rule(
                    provider,
                    claim=claim,
                    value=value,
                    group_name=group_name,
                    staff=not group_name,
                    by="duo_oidc_provider",
                )
        self.stdout.write(
            f"{'Created' if created else 'Updated'} provider {slug!r} (secret: {provider.secret_status})."
        )
        if provider.backchannel_logout:
            try:
                path = reverse("duo_oidc:backchannel-logout", args=[slug])
            except NoReverseMatch:
                path = ""
            if path:
                self.stdout.write(f"Back-channel logout URL to give the provider: https://<this site>{path}")
        if options["check"]:
            report = check_connection(provider)
            for line in report.lines:
                self.stdout.write(f"  {line}")
            # What `manage.py check --database default` (E005, E140, E141) and `check --deploy` (W003, E008:
            # another provider's variable unset or not allowed) say; not what the report above already said
            # about this provider.
            others = [p for p in Provider.objects.all() if p.pk != provider.pk]
            for message in [*check_providers(databases=[DEFAULT_DB_ALIAS]), *check_secret_variables(others)]:
                if getattr(message.obj, "pk", None) != provider.pk:
                    hint = f" ({message.hint})" if message.hint else ""
                    self.stdout.write(f"  {message.id}: {message.msg}{hint}")
            if not report.ok:
                raise CommandError(f"Provider {slug!r} saved, but the connection check failed.")

    @staticmethod
    def parse_rule(text: str, *, group: bool) -> tuple[str, str, str | None]:
        claim, sep, rest = text.partition("=")
        value, _, group_name = rest.rpartition(":") if group else (rest, "", "")
        if not sep or not claim or not value or (group and not group_name):
            shape = "CLAIM=VALUE:GROUP" if group else "CLAIM=VALUE"
            raise CommandError(f"A rule looks like {shape}, not {text!r}.")
        return claim, value, group_name or None
