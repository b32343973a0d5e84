"""Configuration as code (issue 15): duo_oidc_export and duo_oidc_import.

The import is attacked as a file from anywhere would be: a secret value in it, an http:// issuer, group
values naming nothing, huge or malformed files, slugs with path characters, one bad row among good ones.
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_duo_oidc.management.config_file import (
    DIRECTORY_CONNECTIONS,
    GROUP_RULES,
    MAX_FILE_BYTES,
    PROVIDERS,
    SCOPE_RULES,
    SECOND_FACTOR,
    Section,
)
from django_duo_oidc.mfa.who import active_config
from django_duo_oidc.models import DirectoryConnection, GroupRule, MFAConfiguration, Provider, ScopeRule
from django_duo_oidc.policy.rules import policy_rules
from django_duo_oidc.providers.forms import ProviderForm
from tests.integration.test_config_shell import BOOKKEEPING, ISSUER, _fields, _secrets, new_provider, run

pytestmark = pytest.mark.django_db
__all__ = ["_secrets"]  # imported for its effect: the environment variables the rows name (autouse)


# Every field has a place in the file ---------------------------------------------------------------------

# Not in the file, but set and cleared from the shell: secret values (--*-stdin, --clear-*).
SECRET_VALUES = {"client_secret_encrypted", "secret_key_encrypted"}
# In the file, but not as a field of the row: what names the row.
NAMES = {"slug"}


@pytest.mark.parametrize(
    ("section", "names"),
    [
        (PROVIDERS, NAMES),
        (GROUP_RULES, {"provider"}),
        (SCOPE_RULES, set()),
        (DIRECTORY_CONNECTIONS, NAMES),
        (SECOND_FACTOR, set()),
    ],
    ids=lambda v: v.key if isinstance(v, Section) else "",
)
def test_every_field_is_in_the_file(section: Section, names: set[str]) -> None:
    # A group rule's provider is the provider it is listed under.
    expected = _fields(section.model) - BOOKKEEPING - SECRET_VALUES - names
    assert set(section.fields) == expected


# duo_oidc_export and duo_oidc_import ----------------------------------------------------------------------


def build_configuration() -> None:
    """A configuration using every kind of row: two providers (one introspecting for the other), group
    rules, scope rules by path and by URL name, a directory connection, the second factor with groups."""
    new_provider("a", "--client-secret-env", "DUO_A_SECRET", "--default", "--max-age", "600",
                 "--group-rule", "groups=crm-*:CRM", "--staff-rule", "groups=admins")  # fmt: skip
    new_provider("b", "--client-secret-env", "DUO_B_SECRET", "--no-browser-login", "--introspect-with", "a",
                 "--token-endpoint", "https://op.example.test/oidc/token")  # fmt: skip
    run("duo_oidc_scope_rule", "--path", "/reports/", "--scopes", "reports.read", "--max-age", "300")
    run("duo_oidc_scope_rule", "--url-name", "admin:index", "--scopes", "admin.access staff", "--any-of")
    run("duo_oidc_directory", "corp", "--api-host", "api-1.duosecurity.com", "--ikey", "DI1", "--skey-env",
        "DUO_ADMIN_SKEY", "--provider", "a", "--no-deprovision")  # fmt: skip
    run("duo_oidc_mfa", "--client-id", "DIXXXXXXXXXXXXXXXXXX", "--api-host", "api-1.duosecurity.com",
        "--client-secret-env", "DUO_MFA_SECRET", "--who", "groups", "--group", "Finance", "--disable")  # fmt: skip


def export() -> str:
    return run("duo_oidc_export")[0]


def wipe() -> None:
    for model in (DirectoryConnection, GroupRule, ScopeRule, MFAConfiguration, Provider, Group):
        model.objects.all().delete()


def write(tmp_path: Path, document: Any, name: str = "config.json") -> str:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def writes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}]


def test_round_trip_export_wipe_import_export_is_identical(tmp_path: Path) -> None:
    build_configuration()
    first = export()
    document = json.loads(first)
    assert document["format"] == "django-duo-oidc-config" and document["version"] == 1
    assert document["providers"]["b"]["introspect_with"] == "a"
    assert document["providers"]["a"]["client_secret_env"] == "DUO_A_SECRET"
    assert document["directory_connections"]["corp"]["provider"] == "a"
    assert document["second_factor"]["groups"] == ["Finance"]
    assert '"id":' not in first and '"pk":' not in first
    wipe()
    out, _ = run("duo_oidc_import", write(tmp_path, first))
    assert "created provider 'a'" in out and "created provider 'b'" in out and "created second factor" in out
    assert export() == first


def test_a_second_import_says_no_changes_and_writes_nothing(tmp_path: Path) -> None:
    build_configuration()
    path = write(tmp_path, export())
    wipe()
    run("duo_oidc_import", path)
    stamps = list(Provider.objects.values_list("updated_at", flat=True))
    with CaptureQueriesContext(connection) as queries:
        out, _ = run("duo_oidc_import", path)
    assert out == "No changes.\n"
    assert writes(queries) == []
    assert list(Provider.objects.values_list("updated_at", flat=True)) == stamps


def test_the_diff_names_each_change_and_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    build_configuration()
    document = json.loads(export())
    document["providers"]["a"]["max_age"] = None
    document["providers"]["a"]["group_rules"] = [{"claim": "groups", "value": "crm-*", "group": "CRM", "staff": True}]
    document["providers"]["c"] = {"issuer": ISSUER, "client_id": "client-c", "name": "C"}
    del document["directory_connections"]["corp"]
    document["scope_rules"][1]["scopes"] = "reports.read reports.write"
    path = write(tmp_path, document)
    before = export()
    out, err = run("duo_oidc_import", path, "--dry-run", "--prune")
    assert export() == before  # rolled back: nothing written
    assert out.splitlines() == [
        "would: changed provider 'a': group_rules: removed 'groups = admins -> - + staff'; "
        "removed 'groups = crm-* -> CRM'; added 'groups = crm-* -> CRM + staff'",
        "would: changed provider 'a': max_age: 600 -> None",
        "would: created provider 'c'",
        "would: deleted directory connection 'corp'",
        "would: changed scope rule for 'path /reports/': scopes: 'reports.read' -> 'reports.read reports.write'",
        "Dry run: 5 change(s) shown, nothing written.",
    ]
    assert "provider 'c' has no client secret" in err
    out, _ = run("duo_oidc_import", path, "--prune")
    assert out.splitlines()[-1] == "Imported: 5 change(s)."
    assert not DirectoryConnection.objects.exists() and Provider.objects.get(slug="a").max_age is None
    # Without --prune a provider the file leaves out stays; with it, it goes.
    del document["providers"]["c"]
    path = write(tmp_path, document)
    assert "deleted" not in run("duo_oidc_import", path)[0]
    assert "deleted provider 'c'" in run("duo_oidc_import", path, "--prune")[0]
    assert not Provider.objects.filter(slug="c").exists()


def test_a_stored_encrypted_secret_is_never_exported_and_kept_by_an_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("typed-secret\n"))
    provider = new_provider("a", "--client-secret-stdin")
    stored = provider.client_secret_encrypted
    out, err = run("duo_oidc_export")
    assert json.loads(out)["providers"]["a"]["client_secret_env"] is None
    assert err == "Warning: provider a keeps its client secret encrypted in the database; it is not exported.\n"
    assert "typed-secret" not in out + err and stored not in out + err
    assert run("duo_oidc_import", write(tmp_path, out))[0] == "No changes.\n"
    provider.refresh_from_db()
    assert provider.client_secret_encrypted == stored and provider.get_client_secret() == "typed-secret"
    # Naming a variable replaces the stored secret, as --client-secret-env does.
    document = json.loads(out)
    document["providers"]["a"]["client_secret_env"] = "DUO_A_SECRET"
    run("duo_oidc_import", write(tmp_path, document))
    provider.refresh_from_db()
    assert provider.client_secret_encrypted == "" and provider.client_secret_env == "DUO_A_SECRET"


@pytest.mark.parametrize(
    ("where", "key"),
    [
        ("providers.a", "client_secret"),
        ("providers.a", "client_secret_encrypted"),
        ("directory_connections.corp", "skey"),
        ("directory_connections.corp", "secret_key"),
        ("second_factor", "password"),
        ("", "duo_api_token"),
    ],
)
def test_a_file_carrying_a_secret_value_is_refused(tmp_path: Path, where: str, key: str) -> None:
    build_configuration()
    document = json.loads(export())
    wipe()
    row = document
    for part in where.split(".") if where else []:
        row = row[part]
    row[key] = "sup3r-s3cret-value"
    with pytest.raises(CommandError, match="looks like a secret value") as refused:
        run("duo_oidc_import", write(tmp_path, document))
    assert "sup3r-s3cret-value" not in str(refused.value)
    assert not Provider.objects.exists()


@pytest.mark.parametrize(
    "issuer",
    [
        "http://op.example.test/oidc",  # accepted by the admin (development), with the deploy warning
        "https://op.example.test/oidc/",
        "http://user:pw@op.example.test/oidc",
        "https://op.example.test/oidc?x=1",
        "ftp://op.example.test/oidc",
        "https://api-1234.duosecurity.com",
    ],
)
def test_an_issuer_is_judged_as_the_admin_judges_it(tmp_path: Path, issuer: str) -> None:
    admin_form = ProviderForm(data={"slug": "a", "name": "A", "issuer": issuer, "client_id": "c", "scopes": "openid",
                                    "token_auth_method": "client_secret_basic", "access_token_validation": "auto",
                                    "allowed_algorithms": "RS256", "username_claims": "email"})  # fmt: skip
    document = {
        "format": "django-duo-oidc-config",
        "version": 1,
        "providers": {"a": {"name": "A", "issuer": issuer, "client_id": "c"}},
    }
    path = write(tmp_path, document)
    if admin_form.is_valid():
        _, err = run("duo_oidc_import", path)
        assert Provider.objects.get().issuer == issuer
        assert "plain http issuer while DEBUG is off (duo_oidc.W001)" in err
    else:
        with pytest.raises(CommandError, match="issuer"):
            run("duo_oidc_import", path)
        assert not Provider.objects.exists()


@pytest.mark.parametrize("value", ["*", "/*", "*/*", "?*"])
def test_group_values_naming_every_group_are_refused(tmp_path: Path, value: str) -> None:
    rule = {"claim": "groups", "value": value, "group": "Everyone", "staff": True}
    row = {"name": "A", "issuer": ISSUER, "client_id": "c", "group_rules": [rule]}
    document = {"format": "django-duo-oidc-config", "version": 1, "providers": {"a": row}}
    with pytest.raises(CommandError, match="matches any group"):
        run("duo_oidc_import", write(tmp_path, document))
    assert not Provider.objects.exists() and not Group.objects.exists() and not GroupRule.objects.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON (line 1, column 2"),
        ("[]", "not a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ('{"format": "django-duo-oidc-config", "version": NaN}', "not valid JSON"),
        ('{"format": "something-else", "version": 1}', 'no "format": "django-duo-oidc-config"'),
        (
            '{"format": "django-duo-oidc-config", "version": 2}',
            "version 2; this version of django-duo-oidc reads version 1",
        ),
        ('{"format": "django-duo-oidc-config", "version": true}', "version True"),
        ('{"format": "django-duo-oidc-config", "version": 1, "provider": {}}', "unknown key 'provider'"),
        (
            '{"format": "django-duo-oidc-config", "version": 1, "providers": {"a": {"issuer": "x", "colour": 1}}}',
            "providers.'a': unknown key 'colour'",
        ),
        (
            '{"format": "django-duo-oidc-config", "version": 1, "providers": {"a": {"enabled": "yes"}}}',
            "providers.'a'.enabled: must be true or false",
        ),
        (
            '{"format": "django-duo-oidc-config", "version": 1, "providers": {"a": {"max_age": -1}}}',
            "must be a whole number of 0 or more or null",
        ),
        (
            '{"format": "django-duo-oidc-config", "version": 1, "second_factor": {"groups": ["' + "g" * 151 + '"]}}',
            "second_factor.groups: must be a list of group names (1 to 150 characters each)",
        ),
        (
            '{"format": "django-duo-oidc-config", "version": 1, "providers": {"a": {"group_rules": [{"group": ""}]}}}',
            "providers.'a'.group_rules[0].group: must be a group name (1 to 150 characters) or null",
        ),
        (
            '{"format": "django-duo-oidc-config", "version": 1, "scope_rules": {"path_prefix": "/x/"}}',
            "scope_rules: must be a list",
        ),
    ],
)
def test_malformed_files_are_refused_with_a_clear_message(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CommandError, match="Nothing was imported") as refused:
        run("duo_oidc_import", write(tmp_path, text))
    assert message in str(refused.value)
    assert not Provider.objects.exists()


def test_a_huge_or_binary_file_is_refused_unread(tmp_path: Path) -> None:
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (MAX_FILE_BYTES + 1))
    with pytest.raises(CommandError, match="larger than 1000000 bytes"):
        run("duo_oidc_import", str(huge))
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{}")
    with pytest.raises(CommandError, match="not UTF-8"):
        run("duo_oidc_import", str(binary))
    with pytest.raises(CommandError, match=r"Cannot read .*No such file"):
        run("duo_oidc_import", str(tmp_path / "missing.json"))


@pytest.mark.parametrize("slug", ["../etc", "a/b", "a b", "a\x1b[31m", ""])
def test_a_slug_with_path_or_control_characters_is_refused(tmp_path: Path, slug: str) -> None:
    document = {
        "format": "django-duo-oidc-config",
        "version": 1,
        "providers": {slug: {"name": "A", "issuer": ISSUER, "client_id": "c"}},
    }
    with pytest.raises(CommandError, match="slug") as refused:
        run("duo_oidc_import", write(tmp_path, document))
    assert "\x1b" not in str(refused.value)
    assert not Provider.objects.exists()


def test_one_bad_row_and_nothing_is_written(tmp_path: Path) -> None:
    build_configuration()
    document = json.loads(export())
    wipe()
    # Everything valid but the last section's row: the providers, groups and rules before it are not kept.
    document["second_factor"]["client_secret_env"] = "DATABASE_PASSWORD"
    document["directory_connections"]["corp"]["api_host"] = "https://api-1.duosecurity.com/"
    with pytest.raises(CommandError) as refused:
        run("duo_oidc_import", write(tmp_path, document))
    text = str(refused.value)
    assert "directory connection 'corp': api_host: The port after the API hostname" in text
    assert "second factor: client_secret_env: Only environment variables named" in text
    for model in (Provider, GroupRule, ScopeRule, DirectoryConnection, MFAConfiguration, Group):
        assert not model.objects.exists(), model


def test_references_are_checked(tmp_path: Path) -> None:
    document = {"format": "django-duo-oidc-config", "version": 1,
                "providers": {"a": {"name": "A", "issuer": ISSUER, "client_id": "c", "introspect_with": "nobody"}},
                "directory_connections": {"corp": {"api_host": "api-1.duosecurity.com", "integration_key": "DI1",
                                                   "provider": "ghost"}}}  # fmt: skip
    with pytest.raises(CommandError) as refused:
        run("duo_oidc_import", write(tmp_path, document))
    assert "introspect_with: there is no provider 'nobody'" in str(refused.value)
    assert "provider: there is no provider 'ghost'" in str(refused.value)
    document["providers"]["a"]["introspect_with"] = "a"
    del document["directory_connections"]
    with pytest.raises(CommandError, match="cannot introspect its own tokens"):
        run("duo_oidc_import", write(tmp_path, document))


def test_a_new_issuer_does_not_take_the_secret_along_unless_confirmed(tmp_path: Path) -> None:
    new_provider("a", "--client-secret-env", "DUO_A_SECRET")
    document = json.loads(export())
    document["providers"]["a"]["issuer"] = "https://attacker.example.test/oidc"
    path = write(tmp_path, document)
    with pytest.raises(CommandError, match="confirm that the secret in DUO_A_SECRET may be sent"):
        run("duo_oidc_import", path)
    assert Provider.objects.get().issuer == ISSUER
    out, _ = run("duo_oidc_import", path, "--send-secret-to-new-connection")
    assert "issuer: 'https://op.example.test/oidc' -> 'https://attacker.example.test/oidc'" in out


def test_duplicate_scope_rules_cannot_be_exported_or_imported(tmp_path: Path) -> None:
    ScopeRule.objects.create(path_prefix="/x/", scopes="a")
    ScopeRule.objects.create(path_prefix="/x/", scopes="b")
    with pytest.raises(CommandError, match="Several scope rules guard 'path /x/'"):
        run("duo_oidc_export")
    ScopeRule.objects.all().delete()
    rule = {"path_prefix": "/x/", "scopes": "a"}
    document = {"format": "django-duo-oidc-config", "version": 1, "scope_rules": [rule, rule]}
    with pytest.raises(CommandError, match="listed twice"):
        run("duo_oidc_import", write(tmp_path, document))


def test_an_import_takes_effect_as_an_admin_edit_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    from django_duo_oidc.resource import registry

    build_configuration()
    provider = Provider.objects.get(slug="a")
    assert active_config(fresh=False) is None  # the second factor is off (memorised for this process)
    trusted = registry._registry.current().by_pk[provider.pk]
    document = json.loads(export())
    document["providers"]["a"]["access_token_audiences"] = "urn:crm"
    document["scope_rules"][0]["scopes"] = "admin.access admin.all"
    document["second_factor"]["enabled"] = True
    # The change lines are logged when the import commits (the test's transaction never does: run them).
    with caplog.at_level(logging.WARNING, logger="django_duo_oidc"), django_capture_on_commit_callbacks(execute=True):
        run("duo_oidc_import", write(tmp_path, document))
    provider.refresh_from_db()
    # Saved through the model, as the admin saves: updated_at moves, so the bearer registry's version of the
    # row changes and grants proven under the old row are dropped at its next read.
    registry._registry.expires = 0.0
    assert registry._registry.current().by_pk[provider.pk].version != trusted.version
    assert registry._registry.current().by_pk[provider.pk].audiences == {"urn:crm"}
    # Scope rules and the second factor: this process's memories are reset by the save signals, at once.
    assert [r.scopes for _, name, r in policy_rules() if name == "admin:index"] == [{"admin.access", "admin.all"}]
    config = active_config(fresh=False)
    assert config is not None and config.enabled
    # Logged as the admin logs a change: the field names, never a value.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "provider a changed by manage.py duo_oidc_import: access_token_audiences" in logged
    assert "urn:crm" not in logged


def test_export_to_a_file_is_not_world_readable(tmp_path: Path) -> None:
    build_configuration()
    target = tmp_path / "out.json"
    _, err = run("duo_oidc_export", "-o", str(target))
    assert err == f"Wrote {target}.\n"
    assert target.read_text() == export()
    assert os.stat(target).st_mode & 0o007 == 0


def test_the_database_failing_mid_import_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import OperationalError

    build_configuration()
    document = json.loads(export())
    wipe()

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("disk I/O error")

    monkeypatch.setattr(DirectoryConnection, "save", fail)  # after the providers, groups and rules are written
    with pytest.raises(CommandError, match=r"Nothing was imported: the database refused \(OperationalError\)"):
        run("duo_oidc_import", write(tmp_path, document))
    for model in (Provider, GroupRule, ScopeRule, MFAConfiguration, Group):
        assert not model.objects.exists(), model


def test_import_reads_standard_input_and_prune_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    build_configuration()
    text = export()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    assert run("duo_oidc_import", "-", "--prune")[0] == "No changes.\n"


def test_a_refused_file_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = write(
        tmp_path, '{"format": "django-duo-oidc-config", "version": 1, "providers": {"a": {"client_secret": "s"}}}'
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run(
        [sys.executable, "manage.py", "duo_oidc_import", path], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "looks like a secret value" in done.stderr


def test_a_secret_written_where_its_variable_belongs_is_refused_unshown(tmp_path: Path) -> None:
    document = {"format": "django-duo-oidc-config", "version": 1,
                "providers": {"a": {"name": "A", "issuer": ISSUER, "client_id": "c",
                                    "client_secret_env": "q8/Zt+Kd0pWm3xYvB7nR2sLcF9hJ4uEaTgQ1oI6V"}}}  # fmt: skip
    with pytest.raises(CommandError, match="client_secret_env: An environment variable name has letters") as refused:
        run("duo_oidc_import", write(tmp_path, document), "--dry-run")
    assert "q8/Zt" not in str(refused.value)


def test_the_commands_work_on_a_site_without_the_admin(tmp_path: Path) -> None:
    # The commands validate with the admin's forms, not through the admin module (which needs the admin app).
    import subprocess
    import sys

    code = """
import django, io, json, sys
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions", "django_duo_oidc"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}, USE_TZ=True,
    ROOT_URLCONF="django_duo_oidc.urls",
)
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("duo_oidc_provider", "a", "--name", "A", "--issuer", "https://op.example.test/oidc", "--client-id", "c")
call_command("duo_oidc_scope_rule", "--path", "/x/", "--scopes", "x")
out = io.StringIO()
call_command("duo_oidc_export", stdout=out)
open(sys.argv[1], "w").write(out.getvalue())
call_command("duo_oidc_import", sys.argv[1])
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "c.json")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "No changes." in done.stdout
    assert json.loads((tmp_path / "c.json").read_text())["providers"]["a"]["issuer"] == ISSUER


def test_two_defaults_are_refused_and_pruning_a_provider_in_use_is_announced(tmp_path: Path) -> None:
    from django.contrib.auth import get_user_model

    from django_duo_oidc.models import Identity

    build_configuration()
    document = json.loads(export())
    document["providers"]["b"]["is_default"] = True  # "a" is the default too
    with pytest.raises(CommandError, match=r"providers 'a, b': only one provider can be the default"):
        run("duo_oidc_import", write(tmp_path, document))
    document["providers"]["b"]["is_default"] = False
    user = get_user_model().objects.create_user(username="carol")
    Identity.objects.create(provider=Provider.objects.get(slug="b"), sub="carol", user=user)
    del document["providers"]["b"]
    _, err = run("duo_oidc_import", write(tmp_path, document), "--prune", "--dry-run")
    assert "deleting provider 'b' also deletes its 1 linked identities" in err
    assert Identity.objects.exists()
