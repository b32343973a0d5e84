"""List, create or update, and remove a provider's group rules (the admin's inline on the provider page).

    python manage.py duo_oidc_group_rule duo --list
    python manage.py duo_oidc_group_rule duo --claim groups --value "crm-*" --group CRM [--staff]
    python manage.py duo_oidc_group_rule duo --value admins --staff              # staff only, no group
    python manage.py duo_oidc_group_rule duo --value admins --group Admins --no-staff
    python manage.py duo_oidc_group_rule duo --value admins --group Admins --remove

A rule is named by its claim (default ``groups``), value and group (none: a staff-only rule); ``--staff``
/ ``--no-staff`` sets its staff flag. Validated by the admin's own form: a value that names nothing
(``*``, ``/*``) is refused.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from ...logsafe import sanitise
from ...models import GroupRule, Provider
from ..validation import add_group_rule, log_deleted, refusals_as_command_errors

#: Every field of a rule and its option (the provider is the command's first argument).
FLAGS = {"provider": "provider", "claim": "--claim", "value": "--value", "group": "--group", "staff": "--staff"}


class Command(BaseCommand):
    help = "List, create or update, or remove a group rule of a provider."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("provider", help="The provider's slug.")
        parser.add_argument("--list", action="store_true", help="List the provider's group rules.")
        parser.add_argument("--claim", default="groups", help='The claim holding the value (default "groups").')
        parser.add_argument("--value", help='The value, or a pattern such as "crm-*".')
        parser.add_argument("--group", default="", help="The Django group (created if missing); none: staff only.")
        parser.add_argument(
            "--staff", action=argparse.BooleanOptionalAction, help="Also make matching users staff (--no-staff: not)."
        )
        parser.add_argument("--remove", action="store_true", help="Delete the rule.")

    def handle(self, *args: Any, **options: Any) -> None:
        provider = Provider.objects.filter(slug=options["provider"]).first()
        if provider is None:
            raise CommandError(f"There is no provider {options['provider']!r} (see duo_oidc_provider).")
        if options["list"] or options["value"] is None:
            rules = GroupRule.objects.filter(provider=provider).select_related("group")
            for rule in rules:
                self.stdout.write(sanitise(str(rule), limit=None))  # may hold terminal control sequences
            if not rules:
                self.stdout.write(f"Provider {provider.slug!r} has no group rules.")
            return
        # Stripped as the admin's form strips them (add_group_rule too): the rule saved is found again.
        claim, value, group_name = options["claim"].strip(), options["value"].strip(), (options["group"] or "").strip()
        if options["remove"]:
            rules = GroupRule.objects.filter(provider=provider, claim=claim, value=value)
            rules = rules.filter(group__name=group_name) if group_name else rules.filter(group=None)
            with transaction.atomic():  # the lines are logged only for a deletion the database kept
                for rule in rules.select_related("group", "provider"):
                    log_deleted(rule, by="duo_oidc_group_rule")
                deleted, _ = rules.delete()
            if not deleted:
                raise CommandError("There is no such group rule.")
            self.stdout.write(f"Removed {deleted} group rule(s) of provider {provider.slug!r}.")
            return
        existing = GroupRule.objects.filter(provider=provider, claim=claim, value=value)
        existing = existing.filter(group__name=group_name) if group_name else existing.filter(group=None)
        staff = options["staff"]
        if staff is None:
            current = existing.first()
            staff = current.staff if current is not None else not group_name
        with refusals_as_command_errors(), transaction.atomic():  # a group made for a rule refused is not kept
            rule = add_group_rule(
                provider, claim=claim, value=value, group_name=group_name, staff=staff, by="duo_oidc_group_rule"
            )
        self.stdout.write(f"Group rule of provider {provider.slug!r}: {sanitise(str(rule), limit=None)}.")
