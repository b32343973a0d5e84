"""The documentation site's reference is complete, and the package is ready to publish.

The reference pages are generated from the code by ``docs/_ext/duo_oidc_docs.py``; these tests find what
the package holds by other means (a grep of the sources, the imported modules, the files on disk) and fail
when the reference would miss it: a setting key, a Django setting read, a check id, a signal, a management
command, a public name without a docstring. The site's own build (``sphinx-build -W``) runs in
``scripts/dev.py test``.

The packaging tests build the sdist and the wheel exactly as ``python -m build`` publishes them (once for
the module) and read the files and the long description the index would show.
"""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email import message_from_bytes
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


def test_the_generated_reference_shows_no_value_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The site is built where secrets may be set (CI, a developer's shell): a command whose option took
    # its default from the environment would print it in its --help, and so on the published page.
    sentinel = "sentinel-secret-value-0123456789"
    for name in ("DUO_CLIENT_SECRET", "DUO_ADMIN_SKEY", "DUO_MFA_CLIENT_SECRET", "OIDC_CLIENT_SECRET"):
        monkeypatch.setenv(name, sentinel)
    generated = [
        *duo_oidc_docs.command_helps().values(),
        *(repr(row) for row in duo_oidc_docs.setting_rows()),
        *(repr(row) for row in duo_oidc_docs.check_rows()),
    ]
    assert [text for text in generated if sentinel in text] == []


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


def test_the_front_page_links_every_section() -> None:
    # The tutorial and the reference by glob; the guides and the explanations listed in reading order, each
    # page once (tests/integration/test_docs_config_as_code.py: the index lists every page of the folders).
    index = (DOCS / "index.md").read_text()
    toctrees = re.findall(r"```\{toctree\}\n(.*?)```", index, re.DOTALL)
    captions = re.findall(r"^:caption: (.*)$", index, re.MULTILINE)
    assert captions == ["Tutorial", "How-to guides", "Reference", "Explanation"]
    tutorial, howto, reference, explanation = (tree.strip().splitlines() for tree in toctrees)
    assert tutorial[-1] == "tutorial*" and ":glob:" in tutorial
    assert reference[-1] == "reference/*" and ":glob:" in reference
    assert howto[-1].startswith("howto/") and explanation[-1].startswith("explanation/")


# The package, as published ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # From a copy without build output: setuptools adds every file named in a leftover *.egg-info/SOURCES.txt
    # to the sdist, which would hide a file MANIFEST.in forgets.
    source = tmp_path_factory.mktemp("source") / "django-duo-oidc"
    skip = shutil.ignore_patterns(
        ".git", ".venv*", "node_modules", "*.egg-info", "build", "dist", "test-artifacts", "_build", "__pycache__"
    )
    shutil.copytree(ROOT, source, ignore=skip)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)], check=True, capture_output=True)
    return out


def wheel_names(dist: Path) -> list[str]:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_holds_the_templates_the_type_marker_and_the_licence_and_no_tests(dist: Path) -> None:
    names = wheel_names(dist)
    templates = {Path(n).name for n in names if n.startswith("django_duo_oidc/templates/duo_oidc/")}
    on_disk = {p.name for p in (PACKAGE / "templates" / "duo_oidc").glob("*.html")}
    assert templates == on_disk and on_disk
    assert "django_duo_oidc/py.typed" in names
    assert any(re.fullmatch(r"django_duo_oidc-[^/]+\.dist-info/licenses/LICENSE", n) for n in names)
    assert any(n.startswith("django_duo_oidc/migrations/0001_initial.py") for n in names)
    assert "django_duo_oidc/testing/pytest_plugin.py" in names  # the test kit ships
    assert [n for n in names if not re.match(r"django_duo_oidc(/|-[^/]+\.dist-info/)", n)] == []
    assert not [n for n in names if n.split("/")[0] in ("tests", "example_project", "docs", "scripts")]


def test_the_sdist_holds_the_docs_to_build_and_the_licence(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "docs/conf.py", "docs/index.md", "docs/_ext/duo_oidc_docs.py", "docs/pypi.md"} <= names
    pages = {str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md") if "_build" not in p.parts}
    assert sorted(pages - names) == []
    # Files outside docs/ that pages include ({include} ../../SECURITY.md) are in it too.
    included = {
        str((page.parent / target).resolve().relative_to(ROOT))
        for page in DOCS.rglob("*.md")
        for target in re.findall(r"^```\{(?:include|literalinclude)\}\s+(\S+)", page.read_text(), re.MULTILINE)
    }
    assert sorted(included - names) == []


def long_description(dist: Path) -> tuple[str, str]:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = message_from_bytes(archive.read(metadata))
    return str(message.get("Description-Content-Type")), str(message.get_payload())


def test_the_long_description_has_no_link_that_only_works_inside_the_repository(dist: Path) -> None:
    content_type, text = long_description(dist)
    assert content_type.startswith("text/markdown")
    assert "Cisco Duo" in text  # it is the description, not an empty payload
    targets = re.findall(r"\]\(\s*<?([^)\s>]+)", text)  # [text](target), ![alt](target)
    targets += re.findall(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?\s*$", text, re.MULTILINE)  # [label]: target
    targets += re.findall(r"(?:href|src)\s*=\s*[\"']([^\"']+)", text)  # HTML
    assert [t for t in targets if not t.startswith("https://")] == []


def test_the_long_description_is_not_the_readme() -> None:
    # README.md links to files of the repository (docs/..., SECURITY.md); the index shows docs/pypi.md.
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["readme"] == {"file": "docs/pypi.md", "content-type": "text/markdown"}


def test_twine_check_passes(dist: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_build_requirement_admits_no_setuptools_that_refuses_the_licence_field() -> None:
    # license = "MIT" (an SPDX expression, PEP 639) and license-files need setuptools 77: with 69 to 76,
    # which ">=69" allowed, the build stops with "project.license must be valid exactly by one definition".
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(config["project"]["license"], str)
    (setuptools,) = [r for r in config["build-system"]["requires"] if r.startswith("setuptools")]
    floor = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", setuptools.replace(" ", ""))
    assert floor is not None and int(floor.group(1)) >= 77, setuptools
