"""Issue 13: "A system check catches the mistakes (credentials of the wrong Duo application type give
``unauthorized_request``; see DUO.md section 3)". E101-E107 read only the configuration, and an Admin
API or Auth API key pair has the same lengths as a Web SDK one; so ``check --deploy --database default``
asks Duo's health check with the configured credentials (a network call: deploy checks only)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_duo_oidc.checks import check_mfa_deploy
from django_duo_oidc.models import MFAConfiguration

from .test_mfa_login import config, duo, update  # noqa: F401

pytestmark = pytest.mark.django_db


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


def test_good_credentials_pass(duo: Any, config: MFAConfiguration) -> None:  # noqa: F811
    assert check_mfa_deploy(databases=["default"]) == []


def test_credentials_of_another_application_type_are_an_error(
    duo: Any,  # noqa: F811
    config: MFAConfiguration,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DUO_TEST_OTHER_APP_SECRET", duo.other_app_client_secret)
    update(config, client_id=duo.other_app_client_id, client_secret_env="DUO_TEST_OTHER_APP_SECRET")
    messages = check_mfa_deploy(databases=["default"])
    assert ids(messages) == ["duo_oidc.E108"]
    assert "unauthorized_request" in messages[0].msg
    assert "Web SDK" in messages[0].hint


def test_a_wrong_secret_is_an_error(duo: Any, config: MFAConfiguration, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("DUO_TEST_OTHER_APP_SECRET", "x" * 40)
    update(config, client_secret_env="DUO_TEST_OTHER_APP_SECRET")
    assert ids(check_mfa_deploy(databases=["default"])) == ["duo_oidc.E108"]


def test_duo_unreachable_is_a_warning(duo: Any, config: MFAConfiguration) -> None:  # noqa: F811
    duo.faults(down=True)
    assert ids(check_mfa_deploy(databases=["default"])) == ["duo_oidc.W105"]


def test_a_disabled_configuration_and_no_database_ask_nothing(duo: Any, config: MFAConfiguration) -> None:  # noqa: F811
    update(config, enabled=False)
    assert check_mfa_deploy(databases=["default"]) == []
    update(config, enabled=True)
    assert check_mfa_deploy() == []
    assert duo.stats()["health_checks"] == 0


def test_the_deploy_check_command_fails_on_wrong_credentials(
    duo: Any,  # noqa: F811
    config: MFAConfiguration,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DUO_TEST_OTHER_APP_SECRET", duo.other_app_client_secret)
    update(config, client_id=duo.other_app_client_id, client_secret_env="DUO_TEST_OTHER_APP_SECRET")
    with pytest.raises(SystemCheckError, match=r"duo_oidc\.E108"):
        call_command("check", "--deploy", "--database", "default", stdout=io.StringIO(), stderr=io.StringIO())
