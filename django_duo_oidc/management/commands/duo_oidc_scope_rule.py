"""List, create or update, and remove scope rules (the admin's "Scope rules") from the shell.

    python manage.py duo_oidc_scope_rule --list
    python manage.py duo_oidc_scope_rule --path /admin/ --scopes "admin.access" [--any-of] [--max-age 300]
    python manage.py duo_oidc_scope_rule --url-name reports:export --scopes "reports.export" --disable
    python manage.py duo_oidc_scope_rule --path /admin/ --remove

A rule is named by what it guards (its path prefix or its URL name): a second rule for the same one is
not made, the rule there is is changed. Validated by the admin's own form; this process's rules are
re-read at once, other processes' within ``policy.rules.RULES_TTL`` seconds (as after an admin edit).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from ...logsafe import sanitise
from ...models import ScopeRule
from ..options import add_field_options, apply_field_options
from ..validation import log_deleted, refusals_as_command_errors, save_as_admin, set_enabled

#: Fields set by an option of their own name; the target (path_prefix, url_name) names the rule.
SIMPLE_FIELDS = ("scopes", "any_of", "max_age")
FLAGS = {"path_prefix": "--path", "url_name": "--url-name", "enabled": "--enable"}  # and --disable


class Command(BaseCommand):
    help = "List, create or update, or remove a scope rule, named by its path prefix or URL name."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--path", dest="path_prefix", help="The path prefix the rule guards, e.g. /admin/.")
        target.add_argument("--url-name", dest="url_name", help="The URL name the rule guards, e.g. app:view.")
        target.add_argument("--list", action="store_true", help="List the scope rules.")
        add_field_options(
            parser,
            ScopeRule,
            SIMPLE_FIELDS,
            helps={
                "scopes": "Space-separated scopes the rule requires.",
                "any_of": "One of the scopes is enough (--no-any-of: all are needed, the default).",
            },
        )
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--enable", action="store_true")
        state.add_argument("--disable", action="store_true")
        state.add_argument("--remove", action="store_true", help="Delete the rule.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"] or not (options["path_prefix"] or options["url_name"]):
            self.list_rules()
            return
        # Stripped as the admin's form strips it: the rule saved by an earlier run is found again.
        target = {
            "path_prefix": (options["path_prefix"] or "").strip(),
            "url_name": (options["url_name"] or "").strip(),
        }
        shown = target["path_prefix"] or target["url_name"]
        rules = list(ScopeRule.objects.filter(**target).order_by("pk"))
        if len(rules) > 1:
            raise CommandError(f"{len(rules)} scope rules guard {shown!r}: merge them in the admin first.")
        rule = rules[0] if rules else None
        if options["remove"]:
            if rule is None:
                raise CommandError(f"There is no scope rule for {shown!r}.")
            with transaction.atomic():  # the line is logged only for a deletion the database kept
                log_deleted(rule, by="duo_oidc_scope_rule")
                rule.delete()  # the delete signal re-reads this process's rules, as the admin's delete does
            self.stdout.write(f"Removed the scope rule for {shown!r}.")
            return
        created = rule is None
        if rule is None:
            if not options["scopes"]:
                raise CommandError("A new scope rule needs --scopes.")
            rule = ScopeRule(**target)
        apply_field_options(rule, options, SIMPLE_FIELDS)
        set_enabled(rule, options)
        with refusals_as_command_errors():
            save_as_admin(rule, by="duo_oidc_scope_rule")
        self.stdout.write(f"{'Created' if created else 'Updated'} the scope rule {describe(rule)}.")

    def list_rules(self) -> None:
        rules = ScopeRule.objects.order_by("path_prefix", "url_name", "pk")
        for rule in rules:
            self.stdout.write(describe(rule))
        if not rules:
            self.stdout.write("No scope rules.")


def describe(rule: ScopeRule) -> str:
    """One line: what the rule guards, what it requires, and whether it is on."""
    target = f"path {rule.path_prefix}" if rule.path_prefix else f"URL name {rule.url_name}"
    need = ("any of " if rule.any_of else "") + rule.scopes
    age = f", max age {rule.max_age} s" if rule.max_age is not None else ""
    # Escaped: a rule written by an import or the admin may hold terminal control sequences.
    return sanitise(f"{target}: {need}{age}{'' if rule.enabled else ' (disabled)'}", limit=None)
