"""docs/howto/config-as-code.md, run as written: its marked blocks (tests/docblocks.py), in page order.

``<!-- howto: run LABEL -->`` blocks are typed in a terminal: each line is a ``python manage.py`` command
(anything else fails the test, so the page cannot show a command this test does not run), run here with
``call_command`` in a folder of its own, against the test database. ``<!-- howto: write FILE -->`` blocks
are files written as shown. ``<!-- howto: output LABEL -->`` blocks are what the run block before them
prints, compared in full: the commands' standard output and error, in the order written, with a refused
command shown as ``manage.py`` shows it (``CommandError: ...``, status 1). The secrets' variables are set,
as the page says.
"""

from __future__ import annotations

import ast
import io
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_duo_oidc.models import DirectoryConnection, GroupRule, Provider, ScopeRule
from tests.docblocks import Block, labelled_blocks

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "howto" / "config-as-code.md"
ENVIRONMENT = {"DUO_CLIENT_SECRET": "s" * 40, "DUO_ADMIN_SKEY": "k" * 40}


@dataclass
class Run:
    """What the page's blocks printed, by the label of their run block, and the folder they ran in."""

    folder: Path
    printed: dict[str, str] = field(default_factory=dict)
    compared: list[tuple[str, str]] = field(default_factory=list)  # (output label, run label)


def commands(block: Block, label: str) -> list[list[str]]:
    """The block's commands as ``call_command`` arguments; comments and blank lines skipped."""
    found = []
    for line in block.text.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assert words[:2] == ["python", "manage.py"] and len(words) > 2, f"{label}: not a manage.py command: {line}"
        found.append(words[2:])
    assert found, f"{label}: a run block without a command"
    return found


def run_block(block: Block, label: str) -> str:
    """Run the block's commands, as a terminal would; a refused command stops the block."""
    terminal = io.StringIO()
    for args in commands(block, label):
        try:
            call_command(*args, stdout=terminal, stderr=terminal)
        except CommandError as exc:
            terminal.write(f"CommandError: {exc}\n")
            break
    return terminal.getvalue()


@pytest.fixture
def page_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: None) -> Run:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    result = Run(tmp_path)
    last = ""
    for label, block in labelled_blocks(PAGE, "howto").items():
        if block.action == "run":
            result.printed[label] = run_block(block, label)
            last = label
        elif block.action == "write":
            (tmp_path / label).write_text(block.text)
        else:
            assert block.action == "output", f"{label}: unknown action {block.action!r}"
            result.compared.append((label, last))
    return result


def test_every_command_of_the_page_is_run_and_nothing_is_left_to_check() -> None:
    text = PAGE.read_text()
    assert "(to check)" not in text
    blocks = labelled_blocks(PAGE, "howto")
    # Every shell block of the page is a marked block that this test runs.
    assert text.count("```sh\n") == sum(block.action == "run" for block in blocks.values())
    for command in ("duo_oidc_export", "duo_oidc_import", "duo_oidc_scope_rule", "duo_oidc_group_rule"):
        assert any(command in block.text for block in blocks.values() if block.action == "run"), command


def test_each_output_is_what_its_commands_print(page_run: Run) -> None:
    blocks = labelled_blocks(PAGE, "howto")
    shown = [(label, run) for label, run in page_run.compared if blocks[label].language == "text"]
    assert len(shown) >= 8
    for label, run in shown:
        assert page_run.printed[run].rstrip("\n") == blocks[label].text.rstrip("\n"), label
    # A run block that shows no output still must not have been refused.
    for run, printed in page_run.printed.items():
        if run not in {r for _, r in shown}:
            assert "CommandError" not in printed, (run, printed)


def test_export_then_import_says_no_changes_and_the_excerpt_is_the_file(page_run: Run) -> None:
    assert page_run.printed["import-unchanged"] == "No changes.\n"
    exported = json.loads((page_run.folder / "duo-oidc.json").read_text())
    excerpt = json.loads("{" + labelled_blocks(PAGE, "howto")["export-scope-rules"].text + "}")
    assert excerpt == {"scope_rules": exported["scope_rules"]}
    assert exported["providers"]["duo"]["client_secret_env"] == "DUO_CLIENT_SECRET"
    assert exported["providers"]["duo"]["group_rules"] == [
        {"claim": "groups", "group": "CRM", "staff": False, "value": "crm-*"}
    ]
    assert (page_run.folder / "duo-oidc.json").stat().st_mode & 0o777 == 0o640
    assert ENVIRONMENT["DUO_CLIENT_SECRET"] not in (page_run.folder / "duo-oidc.json").read_text()


def test_the_dry_runs_wrote_nothing_and_the_import_did(page_run: Run) -> None:
    assert page_run.printed["import-dry-run"].startswith("would: ")
    assert page_run.printed["import"].endswith("Imported: 2 change(s).\nNo changes.\n")
    # The pruning dry run left the rule it would delete; the page's later list shows it.
    assert ScopeRule.objects.filter(url_name="admin:index").exists()


def test_the_refused_secret_is_not_shown_and_nothing_was_written(page_run: Run) -> None:
    printed = page_run.printed["import-secret"]
    assert printed.startswith("CommandError: Nothing was imported:")
    secret = json.loads((page_run.folder / "pasted-secret.json").read_text())["providers"]["duo"]["client_secret"]
    assert secret not in printed
    # Nothing of the refused file was written: the provider is still the one the shell made.
    assert secret not in repr(list(Provider.objects.values()))
    assert Provider.objects.get(slug="duo").client_secret_env == "DUO_CLIENT_SECRET"


def test_the_shell_changes_took_effect(page_run: Run) -> None:
    provider = Provider.objects.get(slug="duo")
    assert (provider.is_default, provider.end_session, provider.max_age) == (False, False, None)
    assert not ScopeRule.objects.get(path_prefix="/reports/").enabled
    assert list(GroupRule.objects.values_list("value", "staff")) == [("admins", True)]
    assert DirectoryConnection.objects.get(slug="corp").deprovision is False
    assert "CommandError" in page_run.printed["refused-group-rule"]
    assert not GroupRule.objects.filter(value="*").exists()


# Pointers from the code to the docs ------------------------------------------------------------------------


def package_strings() -> list[tuple[Path, str]]:
    """Every string literal of the package (messages, hints, help texts), docstrings included."""
    found = []
    for path in sorted((ROOT / "django_duo_oidc").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append((path, node.value))
    return found


def test_no_message_points_at_the_readme_and_every_docs_path_named_exists() -> None:
    """The README is a front page now: a check's hint or a command's help that says "see the README"
    sends the reader to a page that no longer has the answer; a docs path must be a file of the repository."""
    strings = package_strings()
    assert [(p.name, s) for p, s in strings if "README" in s] == []
    named = {m for _, s in strings for m in re.findall(r"\bdocs/[\w/.-]+\.md\b", s)}
    assert "docs/howto/scope-rules.md" in named  # duo_oidc.E009's hint
    assert sorted(name for name in named if not (ROOT / name).is_file()) == []


def test_the_index_lists_every_guide_and_explanation_once() -> None:
    """docs/index.md lists the how-to and explanation pages by hand, in reading order (set up Duo first):
    a new page must be added there (the docs build with -W refuses a page in no toctree; this says so in
    the unit run too)."""
    listed = re.findall(r"^((?:howto|explanation)/[\w-]+)$", (ROOT / "docs" / "index.md").read_text(), re.MULTILINE)
    pages = [p.relative_to(ROOT / "docs").with_suffix("").as_posix() for p in (ROOT / "docs").glob("*/*.md")]
    assert sorted(listed) == sorted(p for p in pages if p.startswith(("howto/", "explanation/")))
    assert listed[:2] == ["howto/set-up-duo", "howto/local-provider"]
