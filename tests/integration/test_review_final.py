"""The final adversarial read of the lead's late commits: what it found broken.

- ``duo_oidc.E009`` accepted a ``SCOPE_POLICY`` rule whose scopes are all blank in list form
  (``["  "]``): ``Requirement.of`` makes it an empty requirement, which any signed-in user meets, so
  the rule guarded nothing and ``manage.py check`` said it was fine. It also accepted scope names that
  are no RFC 6749 scope-token (never grantable: the rule locks everyone out) and a ``url_name`` that is
  not a string (``str()`` of it never equals a view name: the rule guarded nothing).
- A group rule whose value is only wildcards (``*``, ``?*``, ``/*``) matches whatever the claim holds:
  with the staff flag, every user whose token carries any group became staff. The admin refuses it.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from django_duo_oidc.checks import check_settings
from django_duo_oidc.core.claims import GroupRuleSpec, matching_rules
from django_duo_oidc.core.scopes import Requirement
from django_duo_oidc.models import GroupRule
from django_duo_oidc.policy.rules import policy_problems


def e009(settings: Any, policy: Any) -> list[str]:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "SCOPE_POLICY": policy}
    return [m.msg for m in check_settings() if m.id == "duo_oidc.E009"]


@pytest.mark.parametrize("scopes", [[" "], ["\t", "  "], (" ",)])
def test_blank_scope_names_are_refused(settings: Any, scopes: Any) -> None:
    # What the runtime builds from it: a requirement with no scope, met by any signed-in user.
    assert Requirement.of(scopes).scopes == frozenset()
    messages = e009(settings, [{"path": "/admin/", "scopes": scopes}])
    assert messages and "scopes" in " ".join(messages)


@pytest.mark.parametrize("scopes", [["ädmin"], 'admin "x"', ["admin", "a\\b"]])
def test_scope_names_that_can_never_be_granted_are_refused(settings: Any, scopes: Any) -> None:
    messages = e009(settings, [{"path": "/admin/", "scopes": scopes}])
    assert messages and "scope" in " ".join(messages)


def test_a_url_name_that_is_not_a_string_is_refused(settings: Any) -> None:
    messages = e009(settings, [{"url_name": ["app:view"], "scopes": "a"}])
    assert messages and "url_name" in " ".join(messages)


def test_good_rules_still_pass() -> None:
    assert policy_problems([{"path": "/a/", "scopes": ["admin.access", "x:y"]}]) == []
    assert policy_problems([{"url_name": "app:view", "scopes": "a  b", "any_of": True}]) == []


@pytest.mark.parametrize(
    ("value", "sent"), [("*", "anything"), ("**", "x"), ("?*", "y"), ("/*", "/any/group"), ("*/*", "/x")]
)
def test_a_group_rule_matching_any_value_is_refused(value: str, sent: str) -> None:
    # The danger was that such a rule matched whatever group a user had (every path-shaped one for "/*"):
    # the admin refuses it, and a row that holds one anyway matches only its own literal value.
    assert matching_rules({"groups": [sent]}, [GroupRuleSpec("groups", value, staff=True)]) == []
    with pytest.raises(ValidationError):
        GroupRule(claim="groups", value=value, staff=True).clean()


@pytest.mark.parametrize("value", ["crm-*", "/org/*", "*/crm-users", "crm-users", "[Admin] Finance", "?", "??"])
def test_a_group_rule_naming_something_is_kept(value: str) -> None:
    GroupRule(claim="groups", value=value, staff=True).clean()
