"""Reference pages generated from the code, so that they cannot drift from it.

Directives (each renders what the code holds when the site is built):

- ``duo-settings``: every key of ``django_duo_oidc.conf.DEFAULTS``, with its type (the return type of its
  ``conf`` property), its default and its meaning (the comment above it in ``conf.py``);
- ``duo-checks``: every system check id found in the package (``Error``/``Warning`` calls with
  ``id="duo_oidc.…"``), with its summary (the id lists in the docstrings of ``checks.py`` and
  ``mfa/checks.py``), when it runs, its message and its hint;
- ``duo-commands``: every management command of the app, with its ``--help`` from its own parser;
- ``duo-signals``: every signal of ``django_duo_oidc.signals``, with its doc comment (autodoc);
- ``duo-models``: every model of the app, with its fields (type, help text, choices);
- ``duo-urls``: the URL patterns of ``django_duo_oidc.urls`` and ``django_duo_oidc.well_known_urls``.

The same functions (:func:`setting_rows`, :func:`check_rows`, :func:`command_helps`) are what
``tests/integration/test_docs_site.py`` checks against the package. Roles for the other pages:
``{duo-setting}`LEEWAY```, ``{duo-check}`duo_oidc.E004```, ``{duo-command}`duo_oidc_provider```.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import io
import os
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.roles import XRefRole
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

PACKAGE = Path(importlib.util.find_spec("django_duo_oidc").origin).parent  # type: ignore[union-attr, arg-type]


def md_escape(text: str) -> str:
    """Text taken from the code, shown as written: no Markdown markup in it is interpreted."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", re.sub(r"\s+", " ", text))


def md_text(text: str) -> str:
    """A docstring's plain text: its ``literals`` become code, nothing else is interpreted."""
    parts = re.split(r"``(.+?)``", text)
    return "".join(md_code(part) if i % 2 else md_escape(part) for i, part in enumerate(parts))


def md_code(value: str) -> str:
    """``value`` as inline code, whatever backticks it holds."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    return f"{fence} {value} {fence}" if "`" in value else f"`{value}`"


# Settings -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingRow:
    key: str
    type: str
    default: str
    meaning: str


def setting_rows() -> list[SettingRow]:
    """Every key of ``DEFAULTS`` in ``conf.py`` order; a key with no comment of its own shares the comment
    of the key above it (``DISCOVERY_TTL`` and ``JWKS_TTL``)."""
    from django_duo_oidc import conf

    source = inspect.getsource(conf)
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and token.line.strip().startswith("#"):
            comments[token.start[0]] = token.string.lstrip("#").strip()
    tree = ast.parse(source)
    node = next(
        n.value
        for n in tree.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id == "DEFAULTS"
    )
    assert isinstance(node, ast.Dict)
    hints = {
        name: inspect.signature(prop.fget).return_annotation
        for name, prop in vars(conf.Settings).items()
        if isinstance(prop, property) and prop.fget is not None
    }
    rows: list[SettingRow] = []
    meaning = ""
    for key_node in node.keys:
        assert isinstance(key_node, ast.Constant)
        key = str(key_node.value)
        line = key_node.lineno - 1
        block: list[str] = []
        while line in comments:
            block.insert(0, comments[line])
            line -= 1
        if block:
            meaning = " ".join(block)
        hint = hints.get(key.lower(), "")
        rows.append(SettingRow(key, str(hint), repr(conf.DEFAULTS[key]), meaning if block or rows else ""))
    return rows


# System checks ------------------------------------------------------------------------------------------

# The function a check message is built in -> when Django runs it (apps.py registers them).
RUNS_WHEN = {
    "check_settings": "every ``manage.py check`` (and ``runserver``, ``migrate``, ...)",
    "check_api_auth_order": "every ``manage.py check`` (it reads the root URLconf)",
    "check_providers": "``manage.py check --database default`` and ``migrate`` (it reads the providers)",
    "_check_authorization_servers": "``manage.py check --database default`` and ``migrate`` (it reads the providers)",
    "check_deploy": "``manage.py check --deploy``",
    "check_secret_variables": (
        "``manage.py check --deploy`` (with or without ``--database``) and ``duo_oidc_provider --check``"
        " (it reads the providers)"
    ),
    "check_configuration": "``manage.py check --database default`` and ``migrate`` (the second-factor configuration)",
    "check_credentials_at_duo": "``manage.py check --deploy --database default`` (it calls Duo's health check)",
}
CHECK_DOCSTRING_MODULES = ("django_duo_oidc.checks", "django_duo_oidc.mfa.checks")
ID_LINE = re.compile(r"^duo_oidc\.([EW]\d{3})\s+(.*)$")


@dataclass(frozen=True)
class CheckRow:
    id: str
    level: str
    summary: str
    when: str
    message: str
    hint: str
    module: str


def _template(node: ast.expr | None, constants: dict[str, str]) -> str:
    """A message as its reader meets it: the module's string constants filled in, the parts computed
    at run time shown as <name>."""
    if node is None:
        return ""
    if isinstance(node, ast.Constant):
        return str(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(_template(v, constants) for v in node.values)
    if isinstance(node, ast.FormattedValue):
        return _template(node.value, constants)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _template(node.left, constants) + _template(node.right, constants)
    if isinstance(node, ast.Attribute):
        return f"<{node.attr}>"
    if isinstance(node, ast.Name):
        return constants.get(node.id, f"<{node.id}>")
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return f"<{node.slice.value}>"
    return "<…>"


def check_summaries() -> dict[str, str]:
    """The id lists at the top of ``checks.py`` and ``mfa/checks.py``: id -> one-line summary."""
    found: dict[str, str] = {}
    for name in CHECK_DOCSTRING_MODULES:
        last = ""
        for line in (importlib.import_module(name).__doc__ or "").splitlines():
            match = ID_LINE.match(line.strip())
            if match:
                last = f"duo_oidc.{match.group(1)}"
                found[last] = match.group(2).strip().removeprefix("(deploy) ")
            elif last and line.startswith(" " * 8) and line.strip():
                found[last] += " " + line.strip()
            else:
                last = ""
    return found


def check_rows() -> list[CheckRow]:
    """Every ``Error(...)``/``Warning(...)`` of the package with an ``id="duo_oidc.…"``, by id."""
    summaries = check_summaries()
    rows: dict[str, CheckRow] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            for call in ast.walk(function):
                if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
                    continue
                keywords = {k.arg: k.value for k in call.keywords}
                ident = keywords.get("id")
                if call.func.id not in ("Error", "Warning", "Critical", "Info") or not isinstance(ident, ast.Constant):
                    continue
                check_id = str(ident.value)
                if check_id in rows:  # the same id raised in two places: the first message tells it
                    continue
                rows[check_id] = CheckRow(
                    id=check_id,
                    level=call.func.id,
                    summary=summaries.get(check_id, ""),
                    when=RUNS_WHEN.get(function.name, ""),
                    message=_template(call.args[0] if call.args else keywords.get("msg"), constants),
                    hint=_template(keywords.get("hint"), constants),
                    module=".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts),
                )
    return sorted(rows.values(), key=lambda r: (r.id[len("duo_oidc.") :][0], int(r.id[-3:])))


# Management commands ------------------------------------------------------------------------------------


def command_helps() -> dict[str, str]:
    """Each management command of the app -> its ``--help``, from its own parser (80 columns)."""
    from django.core.management import get_commands, load_command_class

    helps: dict[str, str] = {}
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"  # argparse wraps to the terminal's width; the page must not depend on it
    try:
        for name, app in sorted(get_commands().items()):
            if app == "django_duo_oidc":
                helps[name] = load_command_class(app, name).create_parser("manage.py", name).format_help()
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return helps


# Directives ---------------------------------------------------------------------------------------------


class GeneratedDirective(SphinxDirective):
    """Writes MyST Markdown (every page of the site is Markdown) and parses it in place."""

    has_content = False

    def lines(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        container = nodes.section()
        source = f"<generated by {self.name} in {self.env.docname}>"
        nested_parse_with_titles(self.state, StringList(self.lines(), source=source), container)
        return list(container.children)


def list_table(widths: str, header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["::::{list-table}", ":header-rows: 1", f":widths: {widths}", ""]
    for row in [header, *rows]:
        out += [f"* - {row[0]}", *(f"  - {cell}" for cell in row[1:])]
    return [*out, "::::", ""]


class SettingsDirective(GeneratedDirective):
    def lines(self) -> list[str]:
        out: list[str] = []
        for row in setting_rows():
            out += [
                f":::{{duo-setting}} {row.key}",
                f"**Type** {md_code(row.type)} · **default** {md_code(row.default)}",
            ]
            out += ["", md_escape(row.meaning), ":::", ""]
        return out


class ChecksDirective(GeneratedDirective):
    def lines(self) -> list[str]:
        out: list[str] = []
        for row in check_rows():
            out += [f":::{{duo-check}} {row.id}", f"**{row.level}**: {md_text(row.summary)}", ""]
            out += [f"- Runs with: {row.when}", f"- Message: {md_escape(row.message)}"]
            if row.hint:
                out.append(f"- Fix: {md_escape(row.hint)}")
            out += [f"- Defined in: {md_code(row.module)}", ":::", ""]
        return out


class CommandsDirective(GeneratedDirective):
    def lines(self) -> list[str]:
        out: list[str] = []
        for name, text in command_helps().items():
            out += [f"## {name}", "", f":::{{duo-command}} {name}", ":::", "", "```text", *text.splitlines(), "```", ""]
        return out


def signal_names() -> list[str]:
    """The module-level ``Signal`` instances of ``django_duo_oidc.signals``, in source order."""
    from django.dispatch import Signal

    from django_duo_oidc import signals

    return [name for name, value in vars(signals).items() if isinstance(value, Signal)]


class SignalsDirective(GeneratedDirective):
    def lines(self) -> list[str]:
        out = ["```{eval-rst}"]
        for name in signal_names():
            out += [f".. autodata:: django_duo_oidc.signals.{name}", "   :no-value:", ""]
        return [*out, "```", ""]


def _field_type(field: Any) -> str:
    related = getattr(field, "related_model", None)
    if related is not None and field.concrete:
        return f"{type(field).__name__} to {related._meta.label}"
    return type(field).__name__


class ModelsDirective(GeneratedDirective):
    def lines(self) -> list[str]:
        from django.apps import apps

        out: list[str] = []
        for model in apps.get_app_config("duo_oidc").get_models():
            meta = model._meta
            out += [f"## {model.__name__} ({meta.verbose_name})", ""]
            doc = inspect.getdoc(model) or ""
            if doc and not doc.startswith(f"{model.__name__}("):  # Django's generated "Model(field, ...)"
                out += [md_text(doc.split("\n\n", 1)[0]), ""]
            path = f"{model.__module__}.{model.__name__}"
            out += [f"Import path {md_code(path)}; table {md_code(meta.db_table)}.", ""]
            rows = []
            for field in meta.get_fields():
                if not field.concrete:
                    continue
                text = str(getattr(field, "help_text", "") or "")
                choices = getattr(field, "choices", None)
                if choices:
                    text += (" " if text else "") + "Choices: " + ", ".join(f"{v!r} ({label})" for v, label in choices)
                rows.append([md_code(field.name), md_escape(_field_type(field)), md_text(text) or "—"])
            out += list_table("20 20 60", ["field", "type", "help text"], rows)
        return out


class URLsDirective(GeneratedDirective):
    def lines(self) -> list[str]:
        from django.urls import URLPattern

        rows = []
        for module, prefix, namespace in (
            ("django_duo_oidc.urls", "<prefix>/", "duo_oidc:"),
            ("django_duo_oidc.well_known_urls", "/", ""),
        ):
            for pattern in importlib.import_module(module).urlpatterns:
                assert isinstance(pattern, URLPattern)
                view = getattr(pattern.callback, "view_class", pattern.callback)
                summary = (inspect.getdoc(view) or "").split("\n\n", 1)[0]
                where = md_code(f"{view.__module__}.{view.__qualname__}")
                rows.append([md_code(prefix + str(pattern.pattern)), md_code(namespace + str(pattern.name)),
                             f"{where}: {md_text(summary)}"])  # fmt: skip
        return list_table("25 25 50", ["path", "URL name", "view"], rows)


def protocol_without_signature(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, signature: str | None, return_annotation: str | None
) -> tuple[str, str | None] | None:
    """A Protocol (``RequestContext``) is never constructed: autodoc's ``(*args, **kwargs)`` would mislead."""
    if what == "class" and getattr(obj, "_is_protocol", False):
        return "", None
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("autodoc-process-signature", protocol_without_signature)
    app.add_object_type("duo-setting", "duo-setting", indextemplate="pair: %s; DUO_OIDC setting")
    app.add_object_type("duo-check", "duo-check", indextemplate="pair: %s; system check")
    # A target only: the command's section heading is what the reader sees.
    app.add_crossref_type("duo-command", "duo-command", indextemplate="pair: %s; management command")
    for role in ("duo-setting", "duo-check", "duo-command"):
        # A reference to a setting, check or command that does not exist is a warning (an error with -W).
        app.add_role_to_domain("std", role, XRefRole(warn_dangling=True), override=True)
    app.add_directive("duo-settings", SettingsDirective)
    app.add_directive("duo-checks", ChecksDirective)
    app.add_directive("duo-commands", CommandsDirective)
    app.add_directive("duo-models", ModelsDirective)
    app.add_directive("duo-signals", SignalsDirective)
    app.add_directive("duo-urls", URLsDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
