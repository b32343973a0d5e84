"""Create or update a provider from the command line (deployments configured from the environment).

    python manage.py duo_oidc_provider duo --issuer https://sso-xxx.sso.duosecurity.com/oidc/DI… \\
        --client-id DI… --client-secret-env DUO_CLIENT_SECRET [--scopes "openid profile email"] [--check]

``--check`` then reports what "Check connection" in the admin does (discovery, keys, the client
credentials tried at the token endpoint) and the system checks' findings about the other providers.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS
from django.urls import NoReverseMatch, reverse

from ...checks import check_providers
from ...models import ENDPOINT_FIELDS, GroupRule, Provider
from ...providers.connection import check_connection
from .. import store_secret_from_stdin


class Command(BaseCommand):
    help = "Create or update an OpenID provider (a Duo SSO application) by slug."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--issuer", help="Issuer URL from the Duo application's Metadata tab.")
        parser.add_argument("--client-id")
        secret = parser.add_mutually_exclusive_group()
        secret.add_argument("--client-secret-env", help="Name of the environment variable holding the secret.")
        secret.add_argument(
            "--client-secret-stdin",
            action="store_true",
            help="Read the secret from standard input and store it encrypted (needs ENCRYPTION_KEYS).",
        )
        parser.add_argument("--name", help="Display name (default: the slug).")
        parser.add_argument("--scopes", help='Space-separated scopes, e.g. "openid profile email".')
        parser.add_argument("--token-auth-method", choices=[c for c, _ in Provider.AuthMethod.choices])
        parser.add_argument(
            "--default",
            action=argparse.BooleanOptionalAction,
            help="Make this the default provider (--no-default: no longer).",
        )
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--enable", action="store_true")
        state.add_argument("--disable", action="store_true")
        parser.add_argument("--no-userinfo", action="store_true", help="Do not call the userinfo endpoint.")
        parser.add_argument(
            "--end-session",
            action=argparse.BooleanOptionalAction,
            help="Also log out at the provider (--no-end-session: only end the Django session).",
        )
        parser.add_argument(
            "--logout-id-token-hint",
            action=argparse.BooleanOptionalAction,
            help="Send id_token_hint with the provider logout (Glewlwyd and Keycloak need it; see the README).",
        )
        for name in ENDPOINT_FIELDS:
            parser.add_argument(
                "--" + name.replace("_", "-"),
                metavar="URL",
                help=f"Set the {name} by hand ('' to read it from the provider's metadata again).",
            )
        parser.add_argument(
            "--backchannel-logout",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Accept OpenID Connect Back-Channel Logout from this provider (default on).",
        )
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
            "--access-token-validation",
            choices=[c for c, _ in Provider.AccessTokenValidation.choices],
            help="How bearer access tokens sent to this site's APIs are validated (default auto).",
        )
        parser.add_argument(
            "--audience",
            dest="audiences",
            help='Space-separated audiences accepted in access tokens (default: the client id), e.g. "urn:crm".',
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
            "--revoke-at-logout",
            action=argparse.BooleanOptionalAction,
            help="Revoke the refresh and access tokens at the provider at logout (RFC 7009; default on).",
        )
        parser.add_argument(
            "--browser-login",
            action=argparse.BooleanOptionalAction,
            help="Offer this provider for browser logins (--no-browser-login: it only issues or validates tokens).",
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
        for option, attr in (
            ("issuer", "issuer"),
            ("client_id", "client_id"),
            ("name", "name"),
            ("scopes", "scopes"),
            ("token_auth_method", "token_auth_method"),
            ("access_token_validation", "access_token_validation"),
            ("audiences", "access_token_audiences"),
        ):
            if options[option] is not None:
                setattr(provider, attr, options[option])
        if options["client_secret_env"]:
            provider.client_secret_env = options["client_secret_env"]
            # Naming the variable on the command line, next to the new issuer, is the confirmation.
            provider.confirm_secret_for_connection()
            provider.client_secret_encrypted = ""
        if options["client_secret_stdin"]:
            store_secret_from_stdin(provider.set_client_secret)
            provider.client_secret_env = ""
        if options["default"] is not None:
            provider.is_default = options["default"]
        if options["enable"]:
            provider.enabled = True
        if options["disable"]:
            provider.enabled = False
        if options["no_userinfo"]:
            provider.use_userinfo = False
        if options["end_session"] is not None:
            provider.end_session = options["end_session"]
        if options["logout_id_token_hint"] is not None:
            provider.logout_id_token_hint = options["logout_id_token_hint"]
        for name in ENDPOINT_FIELDS:
            if options[name] is not None:
                setattr(provider, name, options[name])
        if options["backchannel_logout"] is not None:
            provider.backchannel_logout = options["backchannel_logout"]
        if options["resources"] is not None:
            provider.resource_indicators = " ".join(" ".join(options["resources"]).split())
        if options["revoke_at_logout"] is not None:
            provider.revoke_at_logout = options["revoke_at_logout"]
        if options["browser_login"] is not None:
            provider.browser_login = options["browser_login"]
        if options["introspect_with"] is not None:
            other = Provider.objects.filter(slug=options["introspect_with"]).first()
            if options["introspect_with"] and other is None:
                raise CommandError(f"No provider {options['introspect_with']!r} to introspect with.")
            provider.introspect_with = other
        try:
            provider.full_clean()
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        rules = [self.parse_rule(r, group=True) for r in options["group_rule"]]
        rules += [self.parse_rule(r, group=False) for r in options["staff_rule"]]
        provider.save()
        for claim, value, group_name in rules:
            group = Group.objects.get_or_create(name=group_name)[0] if group_name else None
            GroupRule.objects.get_or_create(
                provider=provider, claim=claim, value=value, group=group, staff=group is None
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
            # What `manage.py check` says only with --database (W003: another provider's variable unset...);
            # not what the report above already said about this provider.
            for message in check_providers(databases=[DEFAULT_DB_ALIAS]):
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
