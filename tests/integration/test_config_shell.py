"""Configuration as code (issue 15), from the shell: every field of a provider (and its group rules), a
scope rule, a directory connection and the second factor can be set and unset, validated as the admin does.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import models

from django_duo_oidc.directory.forms import DirectoryConnectionForm
from django_duo_oidc.management.commands import (
    duo_oidc_directory,
    duo_oidc_group_rule,
    duo_oidc_mfa,
    duo_oidc_provider,
    duo_oidc_scope_rule,
)
from django_duo_oidc.management.options import flag_for
from django_duo_oidc.models import DirectoryConnection, GroupRule, MFAConfiguration, Provider, ScopeRule
from django_duo_oidc.policy.rules import policy_rules

pytestmark = pytest.mark.django_db

ISSUER = "https://op.example.test/oidc"


def run(*args: Any) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DUO_A_SECRET", "DUO_B_SECRET", "DUO_ADMIN_SKEY", "DUO_MFA_SECRET"):
        monkeypatch.setenv(name, "x" * 40)


# Every field has a shell option ---------------------------------------------

# Fields with no shell option and no place in the file, and why.
BOOKKEEPING = {
    "id",  # database ids are never configuration: rows are named by natural keys (slugs)
    "created_at",  # written by Django (auto_now_add)
    "updated_at",  # written by Django (auto_now)
    "last_sync_at",  # DirectoryConnection: written by each sync run
    "last_sync_ok",  # DirectoryConnection: written by each sync run
    "last_sync_summary",  # DirectoryConnection: written by each sync run
}


def _fields(model: type[models.Model]) -> set[str]:
    return {f.name for f in model._meta.get_fields() if f.concrete or (f.many_to_many and not f.auto_created)}


SHELL = [
    (Provider, duo_oidc_provider, "duo_oidc_provider"),
    (GroupRule, duo_oidc_group_rule, "duo_oidc_group_rule"),
    (ScopeRule, duo_oidc_scope_rule, "duo_oidc_scope_rule"),
    (DirectoryConnection, duo_oidc_directory, "duo_oidc_directory"),
    (MFAConfiguration, duo_oidc_mfa, "duo_oidc_mfa"),
]


@pytest.mark.parametrize(("model", "module", "name"), SHELL, ids=[s[2] for s in SHELL])
def test_every_field_has_a_shell_option(model: type[models.Model], module: Any, name: str) -> None:
    command: BaseCommand = module.Command()
    parser = command.create_parser("manage.py", name)
    flags = {s for action in parser._actions for s in action.option_strings}
    positionals = {a.dest for a in parser._actions if not a.option_strings}
    for field_name in sorted(_fields(model) - BOOKKEEPING):
        flag = flag_for(field_name, getattr(module, "FLAGS", {}))
        assert flag in flags or flag in positionals, f"{model.__name__}.{field_name} has no option in {name} ({flag})"


# Set and unset from the shell ---------------------------------------------------------------------------


def new_provider(slug: str = "a", *extra: str) -> Provider:
    run("duo_oidc_provider", slug, "--issuer", ISSUER, "--client-id", f"client-{slug}", *extra)
    return Provider.objects.get(slug=slug)


def test_provider_fields_are_set_and_unset_from_the_shell() -> None:
    provider = new_provider("a", "--client-secret-env", "DUO_A_SECRET")
    run(
        "duo_oidc_provider", "a", "--max-age", "300", "--prompt", "login", "--no-create-users",
        "--link-existing-by-email", "--machine-clients", "svc-1 svc-2", "--email-claim", "mail",
        "--no-access-token-require-audience", "--no-introspect", "--allowed-algorithms", "ES256",
        "--username-claims", "sub", "--first-name-claim", "", "--default", "--end-session", "--no-userinfo",
    )  # fmt: skip
    provider.refresh_from_db()
    assert (provider.max_age, provider.prompt, provider.create_users, provider.link_existing_by_email) == (
        300,
        "login",
        False,
        True,
    )
    assert provider.machine_clients == "svc-1 svc-2" and provider.email_claim == "mail"
    assert not provider.access_token_require_audience and not provider.introspect and not provider.use_userinfo
    assert provider.allowed_algorithms == "ES256" and provider.first_name_claim == ""
    assert provider.is_default and provider.end_session
    run(
        "duo_oidc_provider", "a", "--max-age", "", "--prompt", "", "--create-users", "--no-link-existing-by-email",
        "--machine-clients", "", "--no-default", "--no-end-session", "--userinfo", "--client-secret-env", "",
    )  # fmt: skip
    provider.refresh_from_db()
    assert (provider.max_age, provider.prompt, provider.create_users, provider.link_existing_by_email) == (
        None,
        "",
        True,
        False,
    )
    assert provider.machine_clients == "" and not provider.is_default and not provider.end_session
    assert provider.use_userinfo and provider.client_secret_env == ""


def test_a_stored_secret_is_cleared_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("typed-secret\n"))
    provider = new_provider("a", "--client-secret-stdin")
    assert provider.client_secret_encrypted
    out, _ = run("duo_oidc_provider", "a", "--clear-client-secret")
    provider.refresh_from_db()
    assert provider.client_secret_encrypted == "" and "secret: none" in out and "typed-secret" not in out


def test_the_shell_refuses_what_the_admin_refuses() -> None:
    with pytest.raises(CommandError, match="--max-age: a number of 0 or more"):
        new_provider("a", "--max-age", "-5")
    with pytest.raises(CommandError, match="issuer"):
        new_provider("a", "--issuer", "https://user@op.example.test/")
    with pytest.raises(CommandError, match="prompt"):
        new_provider("a", "--prompt", "none")
    with pytest.raises(CommandError, match="slug"):
        new_provider("../etc")
    assert not Provider.objects.exists()


def test_staff_rule_naming_every_group_is_refused_like_the_admin() -> None:
    # Fails before the fix: --group-rule and --staff-rule created rules without the admin's validation, so
    # "groups=*" (a staff rule matching whoever has any group) was stored.
    new_provider("a")
    for flags in (("--staff-rule", "groups=*"), ("--group-rule", "groups=/*:Everyone")):
        with pytest.raises(CommandError, match="matches any group"):
            run("duo_oidc_provider", "a", *flags)
    assert not GroupRule.objects.exists()
    assert not Group.objects.filter(name="Everyone").exists()


def test_group_rules_are_listed_changed_and_removed() -> None:
    provider = new_provider("a")
    run("duo_oidc_group_rule", "a", "--value", "crm-*", "--group", "CRM")
    run("duo_oidc_group_rule", "a", "--value", "admins", "--staff")
    run("duo_oidc_group_rule", "a", "--value", "crm-*", "--group", "CRM", "--staff")
    out, _ = run("duo_oidc_group_rule", "a", "--list")
    assert out.splitlines() == ["groups = admins -> - + staff", "groups = crm-* -> CRM + staff"]
    run("duo_oidc_group_rule", "a", "--value", "crm-*", "--group", "CRM", "--no-staff")
    assert GroupRule.objects.get(provider=provider, value="crm-*").staff is False
    with pytest.raises(CommandError, match="needs a group, the staff flag"):
        run("duo_oidc_group_rule", "a", "--value", "admins", "--no-staff")
    with pytest.raises(CommandError, match="matches any group"):
        run("duo_oidc_group_rule", "a", "--value", "*/*", "--staff")
    run("duo_oidc_group_rule", "a", "--value", "admins", "--remove")
    assert [str(r) for r in GroupRule.objects.all()] == ["groups = crm-* -> CRM"]
    with pytest.raises(CommandError, match="no such group rule"):
        run("duo_oidc_group_rule", "a", "--value", "admins", "--remove")
    with pytest.raises(CommandError, match="no provider 'b'"):
        run("duo_oidc_group_rule", "b", "--list")


def test_scope_rules_are_listed_changed_and_removed_and_apply_at_once() -> None:
    assert policy_rules() == []
    run("duo_oidc_scope_rule", "--path", "/reports/", "--scopes", "reports.read", "--max-age", "300")
    # This process re-reads the rules at once (the save signal), as after an admin edit.
    assert [(p, r.scopes, r.max_age) for p, _, r in policy_rules()] == [("/reports/", {"reports.read"}, 300)]
    run("duo_oidc_scope_rule", "--path", "/reports/", "--scopes", "reports.read reports.all", "--any-of")
    run("duo_oidc_scope_rule", "--path", "/reports/", "--max-age", "", "--disable")
    run("duo_oidc_scope_rule", "--url-name", "admin:index", "--scopes", "admin.access")
    out, _ = run("duo_oidc_scope_rule", "--list")
    assert out.splitlines() == [
        "URL name admin:index: admin.access",
        "path /reports/: any of reports.read reports.all (disabled)",
    ]
    assert ScopeRule.objects.count() == 2
    run("duo_oidc_scope_rule", "--url-name", "admin:index", "--remove")
    assert policy_rules() == []  # the other rule is disabled
    with pytest.raises(CommandError, match="starts with /"):
        run("duo_oidc_scope_rule", "--path", "reports/", "--scopes", "x")
    with pytest.raises(CommandError, match="needs --scopes"):
        run("duo_oidc_scope_rule", "--path", "/new/")
    with pytest.raises(CommandError, match="at least one scope"):
        run("duo_oidc_scope_rule", "--path", "/reports/", "--scopes", "  ")


def test_directory_and_second_factor_secrets_and_names_from_the_shell(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    new_provider("a")
    monkeypatch.setattr("sys.stdin", io.StringIO("k" * 40 + "\n"))
    run("duo_oidc_directory", "corp", "--api-host", "api-1.duosecurity.com", "--ikey", "DI1", "--skey-stdin",
        "--provider", "a")  # fmt: skip
    run("duo_oidc_directory", "corp", "--clear-skey")
    run("duo_oidc_directory", "corp", "--skey-env", "")
    directory = DirectoryConnection.objects.get()
    assert directory.secret_key_encrypted == "" and directory.secret_key_env == ""
    run("duo_oidc_mfa", "--client-id", "DIXXXXXXXXXXXXXXXXXX", "--api-host", "api-1.duosecurity.com",
        "--client-secret-env", "DUO_MFA_SECRET", "--name", "Corp Duo", "--disable")  # fmt: skip
    run("duo_oidc_mfa", "--client-secret-env", "")
    config = MFAConfiguration.objects.get()
    assert config.name == "Corp Duo" and config.client_secret_env == "" and config.client_secret_encrypted == ""


def test_the_admin_refuses_a_deprovisioning_share_over_100() -> None:
    # Fails before the fix: only duo_oidc_directory checked 0-100; the admin's form took 101, and a share over
    # 100 switches the guard off (a wrong join key would deactivate every linked user).
    provider = new_provider("a")
    data = {"slug": "corp", "api_host": "api-1.duosecurity.com", "integration_key": "DI1", "provider": provider.pk,
            "match": "email", "group_prefix": "duo:", "max_deprovision_percent": 101}  # fmt: skip
    form = DirectoryConnectionForm(data=data)
    assert not form.is_valid() and "max_deprovision_percent" in form.errors
    assert DirectoryConnectionForm(data={**data, "max_deprovision_percent": 100}).is_valid()
