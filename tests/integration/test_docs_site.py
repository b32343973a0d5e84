"""The documentation site's reference is complete, and the package is ready to publish.

The reference pages are generated from the code by ``docs/_ext/duo_oidc_docs.py``; these tests find what
the package holds by other means (a grep of the sources, the imported modules, the files on disk) and fail
when the reference would miss it: a setting key, a Django setting read, a check id, a signal, a management
command, a public name without a docstring. The site's own build (``sphinx-build -W``) runs in
``scripts/dev.py test``.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "django_duo_oidc"
sys.path.insert(0, str(DOCS / "_ext"))

import duo_oidc_docs  # noqa: E402


def package_sources() -> dict[Path, str]:
    return {path: path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}


def page(name: str) -> str:
    return (DOCS / "reference" / name).read_text()


# The reference ------------------------------------------------------------------------------------------


def test_every_duo_oidc_setting_key_has_a_type_a_default_and_a_meaning() -> None:
    from django_duo_oidc.conf import DEFAULTS

    rows = duo_oidc_docs.setting_rows()
    assert [row.key for row in rows] == list(DEFAULTS)
    for row in rows:
        assert row.meaning, f"DUO_OIDC[{row.key!r}] has no comment in conf.py to say what it means"
        assert row.type and row.type != "<class 'inspect._empty'>", f"no typed conf property for {row.key}"
        assert row.default == repr(DEFAULTS[row.key])
    assert "```{duo-settings}" in page("settings.md")


def test_every_django_setting_the_package_reads_is_in_the_reference() -> None:
    read: set[str] = set()
    for source in package_sources().values():
        read |= set(re.findall(r"\bsettings\.([A-Z][A-Z0-9_]+)", source))
        read |= set(re.findall(r"getattr\(\s*settings,\s*\"([A-Z][A-Z0-9_]+)\"", source))
    read -= {"DUO_OIDC"}  # the page's first section
    assert read >= {"LOGIN_URL", "AUTHENTICATION_BACKENDS", "MIDDLEWARE", "LOGOUT_REDIRECT_URL"}  # the grep works
    section = page("settings.md").split("## Django settings the app reads", 1)[1]
    listed = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`(?:, `([A-Z][A-Z0-9_]+)`)?", section, re.MULTILINE))
    names = {name for pair in listed for name in pair if name}
    assert sorted(read - names) == []


def test_every_system_check_id_is_in_the_reference_with_its_meaning_and_when_it_runs() -> None:
    in_code = {m for source in package_sources().values() for m in re.findall(r"id=\"(duo_oidc\.\w+)\"", source)}
    assert len(in_code) > 30
    rows = {row.id: row for row in duo_oidc_docs.check_rows()}
    assert sorted(rows) == sorted(in_code)
    for row in rows.values():
        assert row.summary, f"{row.id} is missing from the id list in the docstring of {row.module}"
        assert row.when, f"{row.id}: add its check function to duo_oidc_docs.RUNS_WHEN"
        assert row.message and row.level in ("Error", "Warning")
    # No id is listed in the docstrings that no check raises any more.
    assert sorted(set(duo_oidc_docs.check_summaries()) - in_code) == []
    assert "```{duo-checks}" in page("checks.md")


def test_every_signal_is_documented_with_its_sender_and_every_argument_it_is_sent_with() -> None:
    from django.dispatch import Signal
    from sphinx.pycode import ModuleAnalyzer

    from django_duo_oidc import signals

    declared = [name for name, value in vars(signals).items() if isinstance(value, Signal)]
    assert declared == duo_oidc_docs.signal_names()
    docs = {
        name: " ".join(lines)
        for (_, name), lines in ModuleAnalyzer.for_module(signals.__name__).find_attr_docs().items()
    }
    sent: dict[str, set[str]] = {name: set() for name in declared}
    for path, source in package_sources().items():
        for node in ast.walk(ast.parse(source, str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("send", "send_robust")
                and isinstance(node.func.value, ast.Name | ast.Attribute)
            ):
                target = node.func.value
                name = target.attr if isinstance(target, ast.Attribute) else target.id
                if name in sent:
                    sent[name] |= {k.arg for k in node.keywords if k.arg and k.arg != "sender"}
    for name in declared:
        doc = docs.get(name, "")
        assert "Sender:" in doc and "Arguments:" in doc, f"signals.{name} needs a #: comment with Sender and Arguments"
        assert sent[name], f"signals.{name} is never sent"
        missing = sorted(arg for arg in sent[name] if f"``{arg}``" not in doc)
        assert missing == [], f"signals.{name} is sent with {missing}, which its documentation does not name"
    assert "```{duo-signals}" in page("signals.md")


def test_every_management_command_is_in_the_reference_with_its_help() -> None:
    files = sorted(p.stem for p in (PACKAGE / "management" / "commands").glob("*.py") if not p.stem.startswith("_"))
    helps = duo_oidc_docs.command_helps()
    assert sorted(helps) == files
    for name, text in helps.items():
        assert text.startswith(f"usage: manage.py {name}")
        command = importlib.import_module(f"django_duo_oidc.management.commands.{name}").Command
        assert command.help.strip(), f"{name} has no help text"
        assert " ".join(command.help.split())[:40] in " ".join(text.split())
    assert "```{duo-commands}" in page("commands.md")


# The modules whose public names the API pages document with automodule ``:members:``.
API_PAGES = {
    "django_duo_oidc": "api.md",
    "django_duo_oidc.sessions": "api.md",
    "django_duo_oidc.core.errors": "api.md",
    "django_duo_oidc.log_filters": "api.md",
    "django_duo_oidc.contrib.drf": "drf.md",
    "django_duo_oidc.contrib.ninja": "ninja.md",
    "django_duo_oidc.outbound": "outbound.md",
    "django_duo_oidc.mfa.decorators": "mfa.md",
    "django_duo_oidc.mfa.views": "mfa.md",
    "django_duo_oidc.testing": "testing.md",
    "django_duo_oidc.testing.pytest_plugin": "testing.md",
}


@pytest.mark.parametrize("module_name", sorted(API_PAGES))
def test_every_public_name_of_the_api_pages_has_a_docstring(module_name: str) -> None:
    assert f".. automodule:: {module_name}\n   :members:" in page(API_PAGES[module_name])
    module = importlib.import_module(module_name)
    assert (module.__doc__ or "").strip()
    names = getattr(module, "__all__", None) or [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module_name and callable(value)
    ]
    undocumented = []
    for name in names:
        value = getattr(module, name)
        if callable(value) and not (value.__doc__ or "").strip():
            undocumented.append(name)
    assert undocumented == []


def test_the_front_page_links_every_section_with_a_glob_toctree() -> None:
    index = (DOCS / "index.md").read_text()
    toctrees = re.findall(r"```\{toctree\}\n(.*?)```", index, re.DOTALL)
    entries = [tree.strip().splitlines()[-1] for tree in toctrees]
    assert entries == ["tutorial*", "howto/*", "reference/*", "explanation/*"]
    assert all(":glob:" in tree for tree in toctrees)
