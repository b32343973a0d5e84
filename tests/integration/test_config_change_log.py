"""The log line of a change made from the shell or by an import ("provider duo changed by manage.py
duo_oidc_import: end_session") is an audit record: it is written only for a change the database kept.

Found while documenting configuration as code (issue 15): ``duo_oidc_import --dry-run`` logged
"changed by manage.py duo_oidc_import" for every change it showed and then rolled back, and so did an
import refused for another row, and ``duo_oidc_provider`` when a ``--group-rule`` refused after the
provider's own save undid it. Someone reading the log would believe a change that never happened.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

from django_duo_oidc.models import Provider
from tests.integration.test_config_shell import ISSUER, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def changes(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    """The change lines the django_duo_oidc logger wrote so far."""
    with caplog.at_level(logging.INFO, logger="django_duo_oidc"):
        yield lambda: [r.getMessage() for r in caplog.records if " by manage.py " in r.getMessage()]


@dataclass
class Site:
    """A provider ``a`` made from the shell, its exported file's object, where to write the file, and
    Django's context manager that runs the commit callbacks (the test's own transaction never commits)."""

    document: dict[str, Any]
    path: Path
    commits: Callable[..., AbstractContextManager[Any]]

    def write(self) -> str:
        self.path.write_text(json.dumps(self.document))
        return str(self.path)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any) -> Site:
    monkeypatch.setenv("DUO_A_SECRET", "s" * 40)
    with django_capture_on_commit_callbacks(execute=True):
        run("duo_oidc_provider", "a", "--issuer", ISSUER, "--client-id", "client-a", "--client-secret-env",
            "DUO_A_SECRET")  # fmt: skip
    document = json.loads(run("duo_oidc_export")[0])
    return Site(document, tmp_path / "config.json", django_capture_on_commit_callbacks)


def test_a_dry_run_logs_no_change(site: Site, changes: Callable[[], list[str]]) -> None:
    site.document["providers"]["a"]["end_session"] = True
    path = site.write()
    before = changes()
    with site.commits(execute=True):
        out, _ = run("duo_oidc_import", path, "--dry-run")
    assert "would: changed provider 'a': end_session: False -> True" in out
    assert changes() == before
    assert Provider.objects.get(slug="a").end_session is False
    # The same import for real: logged once, with the field's name.
    with site.commits(execute=True):
        run("duo_oidc_import", path)
    assert changes()[len(before) :] == ["provider a changed by manage.py duo_oidc_import: end_session"]


def test_a_refused_import_logs_no_change_of_its_valid_rows(site: Site, changes: Callable[[], list[str]]) -> None:
    site.document["providers"]["a"]["end_session"] = True  # a valid change, saved before the bad row is reached
    site.document["providers"]["b"] = {"name": "B", "issuer": "https://op.example.test/oidc?x=1", "client_id": "b"}
    path = site.write()
    before = changes()
    with site.commits(execute=True), pytest.raises(CommandError, match="Nothing was imported"):
        run("duo_oidc_import", path)
    assert changes() == before
    assert Provider.objects.get(slug="a").end_session is False


def test_a_provider_change_undone_by_a_refused_group_rule_is_not_logged(
    site: Site, changes: Callable[[], list[str]]
) -> None:
    before = changes()
    with site.commits(execute=True), pytest.raises(CommandError):
        run("duo_oidc_provider", "a", "--end-session", "--group-rule", "groups=*:Everyone")
    assert changes() == before
    assert Provider.objects.get(slug="a").end_session is False


def test_deletions_are_logged_like_changes(site: Site, changes: Callable[[], list[str]]) -> None:
    """A provider deleted by ``--prune``, or a rule removed from the shell, is an audit event too (only
    creations and changes were logged, so a pruned provider left no trace in the log)."""
    with site.commits(execute=True):
        run("duo_oidc_scope_rule", "--path", "/reports/", "--scopes", "reports.read")
        run("duo_oidc_group_rule", "a", "--value", "crm-users", "--group", "CRM")
    before = changes()
    with site.commits(execute=True):
        run("duo_oidc_scope_rule", "--path", "/reports/", "--remove")
        run("duo_oidc_group_rule", "a", "--value", "crm-users", "--group", "CRM", "--remove")
    site.document["providers"] = {}
    path = site.write()
    with site.commits(execute=True):
        run("duo_oidc_import", path, "--prune", "--dry-run")  # shows, keeps, logs nothing
        assert Provider.objects.filter(slug="a").exists()
        run("duo_oidc_import", path, "--prune")
    assert not Provider.objects.filter(slug="a").exists()
    assert changes()[len(before) :] == [
        "scope rule /reports/ deleted by manage.py duo_oidc_scope_rule",
        "group rule groups=crm-users:CRM of provider a deleted by manage.py duo_oidc_group_rule",
        "provider a deleted by manage.py duo_oidc_import",
    ]


def test_group_rules_replaced_by_an_import_are_logged(site: Site, changes: Callable[[], list[str]]) -> None:
    with site.commits(execute=True):
        run("duo_oidc_group_rule", "a", "--value", "crm-users", "--group", "CRM")
    before = changes()
    site.document["providers"]["a"]["group_rules"] = [{"claim": "groups", "value": "sales", "group": "Sales"}]
    path = site.write()
    with site.commits(execute=True):
        run("duo_oidc_import", path)
    assert changes()[len(before) :] == [
        "group rule groups=crm-users:CRM of provider a deleted by manage.py duo_oidc_import",
        "group rule groups=sales:Sales of provider a created by manage.py duo_oidc_import",
    ]
