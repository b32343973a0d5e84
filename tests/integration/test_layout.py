"""The layout's promises: a stable public surface, a package import that loads no model, one context
protocol for both kinds of request, modules of a readable size, and an ARCHITECTURE.md that is true."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from django.test import RequestFactory

import django_duo_oidc
from django_duo_oidc.core.context import RequestContext
from django_duo_oidc.login.context import OIDCContext
from django_duo_oidc.resource.context import BearerContext

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "django_duo_oidc"


def test_the_public_surface_is_pinned() -> None:
    assert django_duo_oidc.__all__ == [
        "BearerAuthMixin",
        "ClientCredentialsAuth",
        "RequestContext",
        "Requirement",
        "ScopesRequiredMixin",
        "__version__",
        "bearer_auth",
        "client_token",
        "scopes_required",
    ]
    for name in django_duo_oidc.__all__:
        assert getattr(django_duo_oidc, name) is not None
    from django_duo_oidc.contrib import drf

    assert drf.__all__ == [
        "DuoBearerAuthentication",
        "HasScopes",
        "IsAuthenticatedCaller",
        "ProviderUnavailableError",
        "StepUpRequired",
    ]
    from django_duo_oidc.contrib import ninja

    assert ninja.__all__ == ["BearerRefused", "DuoBearer", "install_error_handlers"]


def test_importing_the_package_loads_no_model() -> None:
    # INSTALLED_APPS imports the package before the app registry is ready: it must not touch models.
    code = (
        "import sys, django_duo_oidc; "
        "loaded = sorted(m for m in sys.modules if m.startswith('django_duo_oidc.') or m == 'django.db.models'); "
        "print(loaded)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_both_contexts_are_request_contexts() -> None:
    request = RequestFactory().get("/")
    request.session = {}  # type: ignore[attr-defined]
    assert isinstance(OIDCContext(request), RequestContext)
    assert isinstance(BearerContext(), RequestContext)
    assert OIDCContext.mode == "session" and BearerContext.mode == "bearer"


def _modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts]


def test_a_module_over_300_lines_says_why_at_its_top() -> None:
    for path in _modules():
        lines = path.read_text().count("\n")
        if lines > 320:
            docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert "on purpose" in docstring, f"{path.relative_to(ROOT)} has {lines} lines and does not say why"


def test_every_package_says_what_it_owns_and_may_import() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        if {"migrations", "management", "commands", "templates"} & set(init.parts) or init.parent == PACKAGE:
            continue
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert docstring, f"{init.relative_to(ROOT)} has no docstring"
        if init.parent.name not in ("core", "contrib"):
            assert "May import" in docstring, f"{init.relative_to(ROOT)} does not say what it may import"


def test_architecture_md_names_only_modules_that_exist() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`(django_duo_oidc(?:\.\w+)+)(?:\.\w+\(\))?`", text))
    assert named, "ARCHITECTURE.md names no module"
    for dotted in named:
        parts = dotted.split(".")
        # A dotted name is a module or package, or a name inside one.
        for cut in range(len(parts), 0, -1):
            base = ROOT.joinpath(*parts[:cut])
            if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
                break
        else:
            raise AssertionError(f"ARCHITECTURE.md names {dotted}, which does not exist")
        if cut < len(parts):
            module = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
            assert re.search(rf"\b(def|class)\s+{parts[cut]}\b|^{parts[cut]}\s*[:=]", module.read_text(), re.M), (
                f"ARCHITECTURE.md names {dotted}, but {module.relative_to(ROOT)} defines no {parts[cut]}"
            )
