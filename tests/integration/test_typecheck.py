"""The type check in CI (scripts/dev.py test runs mypy after lint-imports on the first leg) and the typed
usage file it checks (tests/typecheck/usage.py), which must also be valid, importable code."""

from __future__ import annotations

import importlib.util
import inspect
import stat
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _dev(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, django: str = "", mypy_exit: int = 0) -> ModuleType:
    """scripts/dev.py loaded as a module, with a virtualenv in tmp_path whose mypy exits ``mypy_exit``
    (and writes a line to tmp_path/mypy-ran) and the matrix leg's DUO_OIDC_DJANGO set to ``django``."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    mypy = venv / "bin" / "mypy"
    mypy.write_text(f"#!/bin/sh\necho ran >> {tmp_path / 'mypy-ran'}\nexit {mypy_exit}\n")
    mypy.chmod(mypy.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("DUO_OIDC_VENV", str(venv))
    if django:
        monkeypatch.setenv("DUO_OIDC_DJANGO", django)
    else:
        monkeypatch.delenv("DUO_OIDC_DJANGO", raising=False)
    spec = importlib.util.spec_from_file_location("dev_under_test", ROOT / "scripts" / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_test_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dev: ModuleType) -> int:
    """dev.test(["--fast"]) with set-up, lint-imports, the docs build and the pytest leg replaced (they pass)."""
    monkeypatch.setattr(dev, "ROOT", tmp_path)
    monkeypatch.setattr(dev, "PY", Path(sys.executable))
    monkeypatch.setattr(dev, "ensure_python_env", lambda: None)
    monkeypatch.setattr(dev, "lint_imports", lambda: 0)
    monkeypatch.setattr(dev, "build_docs", lambda: 0)
    (tmp_path / "test-artifacts").mkdir()
    leg: dict[str, Any] = {"name": "fast", "code": 0, "seconds": 1.0, "tiers": {"unit": 1}}
    leg.update(tests=1, failures=0, errors=0, skipped=0)
    monkeypatch.setattr(dev, "pytest_leg", lambda *args: leg)
    result: int = dev.test(["--fast"])
    return result


def test_mypy_errors_fail_the_test_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = _dev(monkeypatch, tmp_path, mypy_exit=1)
    assert _run_test_command(monkeypatch, tmp_path, dev) == 1
    assert (tmp_path / "mypy-ran").read_text() == "ran\n"
    assert "mypy: the type check failed" in capsys.readouterr().out


def test_a_clean_type_check_passes_the_test_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = _dev(monkeypatch, tmp_path, mypy_exit=0)
    assert _run_test_command(monkeypatch, tmp_path, dev) == 0
    assert (tmp_path / "mypy-ran").exists()
    assert "the type check failed" not in capsys.readouterr().out


def test_a_first_leg_without_mypy_fails_and_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = _dev(monkeypatch, tmp_path)
    (tmp_path / "venv" / "bin" / "mypy").unlink()
    assert _run_test_command(monkeypatch, tmp_path, dev) == 1
    out = capsys.readouterr().out
    assert "mypy is not installed" in out and "the typing extra is missing" in out


def test_the_leg_that_picks_another_django_skips_mypy_and_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = _dev(monkeypatch, tmp_path, django="django>=6.1,<7", mypy_exit=1)
    assert _run_test_command(monkeypatch, tmp_path, dev) == 0
    assert not (tmp_path / "mypy-ran").exists()
    assert "mypy skipped on this leg (DUO_OIDC_DJANGO=django>=6.1,<7)" in capsys.readouterr().out


def test_the_first_leg_installs_the_typing_extra_and_the_other_does_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    commands: list[list[str]] = []
    for leg, django, typing in (("first", "", True), ("django6", "django>=6.1,<7", False)):
        (tmp_path / leg).mkdir()
        dev = _dev(monkeypatch, tmp_path / leg, django=django)
        monkeypatch.setattr(dev, "run", lambda *args, **kwargs: commands.append([str(a) for a in args]))
        dev.ensure_python_env()
        install = [c for c in commands if "install" in c][-1]
        package = next(a for a in install if a.startswith(f"{dev.ROOT}["))
        extras = set(package.removeprefix(f"{dev.ROOT}[").removesuffix("]").split(","))
        assert "test" in extras and ("typing" in extras) == typing, install


def test_the_usage_file_is_valid_code_and_its_views_keep_their_names_and_marks() -> None:
    from tests.typecheck import usage

    assert usage.contacts.__name__ == "contacts"
    assert usage.contacts.required_scopes == frozenset({"crm.contacts.read"})
    assert usage.api_contacts.duo_oidc_bearer is True
    assert usage.payroll.duo_required_max_age == 300
    assert usage.settings_page.duo_required_max_age is None
    assert inspect.iscoroutinefunction(usage.export)
    assert list(inspect.signature(usage.payroll).parameters) == ["request", "year"]


def test_a_provider_row_with_an_unknown_token_auth_method_is_refused_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Provider.credentials() narrows the column to the core's two methods (typed as a Literal since the
    # type check): a value written past the field's choices is a ConfigurationError, as apply() said.
    from django_duo_oidc.core.errors import ConfigurationError
    from django_duo_oidc.models import Provider

    monkeypatch.setenv("DUO_TYPECHECK_TEST_SECRET", "s3cret")
    provider = Provider(slug="p", client_id="c", client_secret_env="DUO_TYPECHECK_TEST_SECRET")
    for method in ("client_secret_basic", "client_secret_post"):
        provider.token_auth_method = method
        assert provider.credentials().method == method
    provider.token_auth_method = "private_key_jwt"
    with pytest.raises(ConfigurationError, match="Unknown token endpoint authentication method 'private_key_jwt'"):
        provider.credentials()
