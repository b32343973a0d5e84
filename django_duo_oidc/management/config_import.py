"""``duo_oidc_import``: make the database's configuration what a file says, in one transaction.

Every row is validated by the admin's own form (:mod:`.validation`) and saved through the model's
``save()``, as an admin edit is: a provider's ``updated_at`` moves (so the bearer registry and the
provider runtime drop what they proved under the old row), the signals of scope rules and of the second
factor reset this process's memories, other processes follow within their usual few seconds. A row
the file leaves as it is is not written at all, so a second import of the same file writes nothing.
Each row created, changed or deleted is logged (a WARNING naming the fields, never a value, as the
admin's changes are) once the transaction has committed: a dry run or a refused file logs none.

What the file says, row by row (a field left out takes the model's default; a section left out is left
alone, even with ``prune``):

* a provider's ``group_rules`` are all its rules: rules not listed are removed;
* ``client_secret_env`` / ``secret_key_env``: a variable's name replaces a secret stored encrypted;
  ``null`` keeps a stored one (a secret is never in the file);
* ``prune`` deletes the providers, directory connections and scope rules the file does not list, and the
  second factor's configuration when the file says ``"second_factor": null``; a provider that a row it
  keeps still names (another provider's ``introspect_with``, a directory connection's provider, also in a
  section the file leaves out) is not deleted: the file is refused, saying which row names it.

Over 300 lines on purpose: one transaction's steps (each section, references between rows, pruning) and the
diff it prints are one piece.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Count

from ..models import DirectoryConnection, GroupRule, MFAConfiguration, Provider, ScopeRule
from .config_file import (
    DIRECTORY_CONNECTIONS,
    GROUP_RULES,
    PROVIDERS,
    SCOPE_RULES,
    SECOND_FACTOR,
    SECRET_ENV_FIELDS,
    ConfigFileError,
    Section,
    check_document,
    export_document,
    scope_rule_target,
    show,
)
from .validation import errors_text, log_created, log_deleted, save_as_admin, validate_as_admin

__all__ = ["ImportReport", "import_document"]

BY = "duo_oidc_import"


@dataclass
class ImportReport:
    """What an import changed (or, in a dry run, would change), one line each, and its warnings."""

    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Refused(Exception):
    """Raised inside the transaction to roll it back when a row is invalid."""


def import_document(
    document: Mapping[str, Any],
    *,
    prune: bool = False,
    dry_run: bool = False,
    send_secret_to_new_connection: bool = False,
) -> ImportReport:
    """Make the configuration what ``document`` (a checked file, see :func:`.config_file.read_document`)
    says, in one transaction; with ``dry_run`` roll it back. ``send_secret_to_new_connection``: a provider
    whose issuer, client id or a secret-receiving endpoint changes may keep its secret's variable (the
    admin's "send the secret to the new connection" box).

    :raises ConfigFileError: every invalid row (nothing is written), or a malformed document.
    """
    check_document(document)
    job = _Import(document, prune=prune, confirm=send_secret_to_new_connection)
    try:
        with transaction.atomic():
            before, _ = export_document()
            job.run()
            if job.problems:
                raise _Refused
            after, warnings = export_document()
            job.report.changes = diff(before, after)
            job.report.warnings += warnings
            if dry_run:
                transaction.set_rollback(True)
    except _Refused:
        raise ConfigFileError("\n".join(job.problems)) from None
    return job.report


class _Import:
    def __init__(self, document: Mapping[str, Any], *, prune: bool, confirm: bool) -> None:
        self.document = document
        self.prune = prune
        self.confirm = confirm
        self.problems: list[str] = []
        self.report = ImportReport()
        self.providers: dict[str, Provider] = {}
        self.scope_rules_kept: list[int] = []

    def run(self) -> None:
        if PROVIDERS.key in self.document:
            self.import_providers(self.document[PROVIDERS.key])
        if SCOPE_RULES.key in self.document:
            self.import_scope_rules(self.document[SCOPE_RULES.key])
        if DIRECTORY_CONNECTIONS.key in self.document:
            self.import_directories(self.document[DIRECTORY_CONNECTIONS.key])
        if SECOND_FACTOR.key in self.document:
            self.import_second_factor(self.document[SECOND_FACTOR.key])
        if self.prune:
            self.delete_unlisted()

    def delete_unlisted(self) -> None:
        """``prune``: delete the rows of the file's sections that it does not list (after every row is
        written, so that a row may still name a provider the file leaves out until the end)."""
        if PROVIDERS.key in self.document and not self.keeps_what_is_named():
            return
        if DIRECTORY_CONNECTIONS.key in self.document:
            unlisted_connections = DirectoryConnection.objects.exclude(
                slug__in=list(self.document[DIRECTORY_CONNECTIONS.key])
            )
            for connection in unlisted_connections:
                log_deleted(connection, by=BY)
            unlisted_connections.delete()
        if PROVIDERS.key in self.document:
            unlisted = Provider.objects.exclude(slug__in=list(self.document[PROVIDERS.key]))
            for provider in unlisted.annotate(linked=Count("identities")):
                log_deleted(provider, by=BY)
                if provider.linked:
                    self.report.warnings.append(
                        f"deleting provider {show(provider.slug, 60)} also deletes its {provider.linked} linked "
                        "identities (their users can no longer log in through it)"
                    )
            unlisted.delete()
        if SCOPE_RULES.key in self.document:
            for rule in ScopeRule.objects.exclude(pk__in=self.scope_rules_kept):
                log_deleted(rule, by=BY)
                rule.delete()  # one by one: each delete sends the signal that resets the rules' memory
        if self.document.get(SECOND_FACTOR.key, False) is None:
            for config in MFAConfiguration.objects.all():
                log_deleted(config, by=BY)
                config.delete()  # one by one: the delete signal resets the configuration's memory

    def keeps_what_is_named(self) -> bool:
        """False (with a problem each) when a row the import keeps names a provider ``prune`` would delete:
        the deletion would reach it (a directory connection deleted with its provider, ``introspect_with``
        set to none), so the result would not be what the file says, nor could the file be imported again."""
        listed = set(self.document[PROVIDERS.key])
        gone = set(Provider.objects.exclude(slug__in=list(listed)).values_list("slug", flat=True))
        problems = [
            f"provider {show(slug, 60)}: introspect_with names provider {show(row['introspect_with'], 60)}, which "
            "--prune deletes (the file does not list it)"
            for slug, row in self.document[PROVIDERS.key].items()
            if row.get("introspect_with") in gone
        ]
        if DIRECTORY_CONNECTIONS.key in self.document:
            named = {slug: row.get("provider") for slug, row in self.document[DIRECTORY_CONNECTIONS.key].items()}
        else:  # the section is left alone: its rows in the database must survive too
            named = dict(DirectoryConnection.objects.values_list("slug", "provider__slug"))
        problems += [
            f"directory connection {show(slug, 60)}: its provider {show(provider, 60)} is deleted by --prune (the "
            "file does not list it)"
            for slug, provider in named.items()
            if provider in gone
        ]
        self.problems += problems
        return not problems

    # One row ---------------------------------------------------------------------------------------

    def save(self, instance: models.Model, where: str, **kwargs: Any) -> bool:
        """Validate and save ``instance`` when it differs from the database; False when it was refused."""
        try:
            save_as_admin(instance, by=BY, only_if_changed=True, **kwargs)
        except ValidationError as exc:
            self.problems.append(f"{where}: {errors_text(exc)}")
            return False
        return True

    def set_fields(
        self, instance: models.Model, row: Mapping[str, Any], section: Section, skip: tuple[str, ...]
    ) -> None:
        """Set every plain field from the row (left out: the model's default); secrets' variables by the
        file's rule (a name replaces a stored secret, null keeps it)."""
        for name in section.fields:
            if name in skip:
                continue
            model_field = instance._meta.get_field(name)
            if name in SECRET_ENV_FIELDS:
                variable = row.get(name) or ""
                setattr(instance, name, variable)
                if variable:
                    setattr(instance, SECRET_ENV_FIELDS[name], "")
            elif not model_field.is_relation:
                assert isinstance(model_field, models.Field)
                setattr(instance, name, row[name] if name in row else model_field.get_default())

    def provider_named(self, slug: Any, where: str) -> Provider | None:
        if slug in self.providers:
            return self.providers[slug]
        provider = Provider.objects.filter(slug=slug).first() if isinstance(slug, str) else None
        if provider is None:
            self.problems.append(f"{where}: there is no provider {show(slug, 60)} (in the file or the database).")
        return provider

    # Sections --------------------------------------------------------------------------------------

    def import_providers(self, rows: Mapping[str, Mapping[str, Any]]) -> None:
        pending: list[tuple[Provider, str]] = []
        defaults = sorted(slug for slug, row in rows.items() if row.get("is_default"))
        if len(defaults) > 1:
            # Saving one default clears the others: the import would never settle.
            self.problems.append(f"providers {show(', '.join(defaults))}: only one provider can be the default.")
        for slug, row in rows.items():
            where = f"provider {show(slug, 60)}"
            provider = Provider.objects.filter(slug=slug).first() or Provider(slug=slug)
            self.set_fields(provider, row, PROVIDERS, skip=("introspect_with",))
            if self.confirm:
                provider.confirm_secret_for_connection()
            if not self.save(provider, where):
                continue
            self.providers[slug] = provider
            self.import_group_rules(provider, row.get(GROUP_RULES.key, []), where)
            if not provider.client_secret_env and not provider.client_secret_encrypted:
                self.report.warnings.append(
                    f"{where} has no client secret: name its variable in client_secret_env, or store it with "
                    f"manage.py duo_oidc_provider {slug} --client-secret-stdin"
                )
            if provider.issuer.startswith("http://") and not settings.DEBUG:
                self.report.warnings.append(f"{where} has a plain http issuer while DEBUG is off (duo_oidc.W001)")
            pending.append((provider, row.get("introspect_with") or ""))
        # Global Token Introspection names other rows, perhaps new ones: set once every row exists, all of
        # them before any is validated, so that a circle is judged on the file's whole picture.
        changed = []
        for provider, slug in pending:
            other = self.provider_named(slug, f"provider {show(provider.slug, 60)}: introspect_with") if slug else None
            if (slug and other is None) or provider.introspect_with_id == (other.pk if other else None):
                continue
            provider.introspect_with = other
            changed.append(provider)
        for provider in changed:
            self.save(provider, f"provider {show(provider.slug, 60)}")

    def import_group_rules(self, provider: Provider, rows: list[Mapping[str, Any]], where: str) -> None:
        # Stripped as the admin's form strips them: compared with the rows saved through it.
        wanted = sorted(
            (
                str(r.get("claim", "groups")).strip(),
                str(r.get("value", "")).strip(),
                str(r.get("group") or "").strip(),
                bool(r.get("staff")),
            )
            for r in rows
        )
        current = sorted(
            (r.claim, r.value, r.group.name if r.group else "", r.staff)
            for r in GroupRule.objects.filter(provider=provider).select_related("group")
        )
        if wanted == current:
            return
        rules = []
        for i, (claim, value, group_name, staff) in enumerate(wanted):
            group = Group.objects.get_or_create(name=group_name)[0] if group_name else None
            rule = GroupRule(provider=provider, claim=claim, value=value, group=group, staff=staff)
            try:
                rules.append(validate_as_admin(rule))
            except ValidationError as exc:
                self.problems.append(f"{where}: group rule {i + 1} ({show(value, 60)}): {errors_text(exc)}")
        if len(rules) == len(wanted):
            old_rules = GroupRule.objects.filter(provider=provider).select_related("group", "provider")
            for rule in old_rules:
                log_deleted(rule, by=BY)
            old_rules.delete()
            for form in rules:
                log_created(form.save(), by=BY)

    def import_scope_rules(self, rows: list[Mapping[str, Any]]) -> None:
        seen: set[str] = set()
        for row in rows:
            # What the rule guards, stripped as the admin's form strips it: the rule saved is found again.
            key = {name: str(row.get(name, "")).strip() for name in ("path_prefix", "url_name")}
            target = scope_rule_target(key)
            where = f"scope rule for {show(target, 80)}"
            if target in seen:
                self.problems.append(f"{where}: listed twice (one rule per path prefix or URL name).")
                continue
            seen.add(target)
            existing = list(ScopeRule.objects.filter(**key)[:2])
            if len(existing) > 1:
                self.problems.append(f"{where}: several rules in the database guard it; merge them first.")
                continue
            rule = existing[0] if existing else ScopeRule()
            self.set_fields(rule, row, SCOPE_RULES, skip=())
            if self.save(rule, where):
                self.scope_rules_kept.append(rule.pk)

    def import_directories(self, rows: Mapping[str, Mapping[str, Any]]) -> None:
        for slug, row in rows.items():
            where = f"directory connection {show(slug, 60)}"
            connection = DirectoryConnection.objects.filter(slug=slug).first() or DirectoryConnection(slug=slug)
            self.set_fields(connection, row, DIRECTORY_CONNECTIONS, skip=())
            provider = self.provider_named(row.get("provider"), f"{where}: provider")
            if provider is None:
                continue
            connection.provider = provider
            self.save(connection, where)

    def import_second_factor(self, row: Mapping[str, Any] | None) -> None:
        if row is None:
            return  # deleted only with prune (delete_unlisted)
        config = MFAConfiguration.objects.order_by("pk").first() or MFAConfiguration()
        self.set_fields(config, row, SECOND_FACTOR, skip=())
        names = dict.fromkeys(name.strip() for name in row.get("groups", []))  # stripped, as the admin's are
        groups = [Group.objects.get_or_create(name=name)[0] for name in names if name]
        self.save(config, "second factor", m2m={"groups": groups})


# The diff ------------------------------------------------------------------------------------------


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """What changed between two exports, one line per row created or deleted and per field changed."""
    lines: list[str] = []
    for section, what in ((PROVIDERS.key, "provider"), (DIRECTORY_CONNECTIONS.key, "directory connection")):
        lines += _diff_rows(what, before[section], after[section])
    old_rules = {scope_rule_target(r): r for r in before[SCOPE_RULES.key]}
    new_rules = {scope_rule_target(r): r for r in after[SCOPE_RULES.key]}
    lines += _diff_rows("scope rule for", old_rules, new_rules)
    lines += _diff_rows("", {"second factor": before[SECOND_FACTOR.key]}, {"second factor": after[SECOND_FACTOR.key]})
    return lines


def _diff_rows(what: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    lines = []
    for key in sorted(set(old) | set(new)):
        name = f"{what} {show(key, 80)}".strip() if what else key
        was, now = old.get(key), new.get(key)
        if was == now:
            continue
        if was is None:
            lines.append(f"created {name}")
        elif now is None:
            lines.append(f"deleted {name}")
        else:
            for field_name in sorted(set(was) | set(now)):
                if was.get(field_name) != now.get(field_name):
                    change = _describe(field_name, was.get(field_name), now.get(field_name))
                    lines.append(f"changed {name}: {field_name}: {change}")
    return lines


def _describe(field_name: str, was: Any, now: Any) -> str:
    if field_name == GROUP_RULES.key:
        gone = [r for r in was if r not in now]
        added = [r for r in now if r not in was]
        return "; ".join([*(f"removed {_rule_text(r)}" for r in gone), *(f"added {_rule_text(r)}" for r in added)])
    return f"{show(was)} -> {show(now)}"


def _rule_text(rule: Mapping[str, Any]) -> str:
    target = rule["group"] or "-"
    return show(f"{rule['claim']} = {rule['value']} -> {target}{' + staff' if rule['staff'] else ''}", 160)
