"""Issue 14, interop defect 6: group claims sent as paths (Keycloak's default ``/crm-users``) match a
rule naming the group; a rule may also be a glob (``*``, ``?``). Nothing else widens: a value never
matches a substring, a prefix or a nested path (``/org/crm-users``: anyone able to make a subgroup
somewhere would get the rule, staff rules too — the issue-14 review), and a path rule matches only that
exact path; ``[`` is no wildcard, so existing rules like ``[Admin] Finance`` keep their meaning."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from django_duo_oidc.core.claims import group_value_matches, matching_rules


@dataclass(frozen=True)
class Rule:
    claim: str
    value: str


@pytest.mark.parametrize(
    ("rule", "sent", "matches"),
    [
        ("crm-users", "crm-users", True),
        ("crm-users", "/crm-users", True),  # Keycloak's full path
        ("crm-users", "/org/crm-users", False),  # a nested path: only by its exact path or a glob
        ("*/crm-users", "/org/crm-users", True),
        ("*/crm-users", "/crm-users", True),
        ("[Admin] Finance", "[Admin] Finance", True),
        ("[Admin] Finance", "A Finance", False),  # [ is no wildcard
        ("[Admin] *", "[Admin] Finance", True),
        ("[Admin] *", "A Finance", False),
        ("crm-users", "/crm-users/", False),  # a trailing slash is not a group name
        ("crm-users", "/crm-users/admins", False),  # a subgroup is not the group
        ("crm-users", "crm-users-old", False),
        ("crm-users", "xcrm-users", False),
        ("crm-users", "org/crm-users", False),  # not a path (no leading slash): compared whole
        ("/org/crm-users", "/org/crm-users", True),  # a path rule: that exact path
        ("/org/crm-users", "/other/org/crm-users", False),
        ("/org/crm-users", "crm-users", False),
        ("crm-*", "crm-users", True),  # a glob: the whole value
        ("crm-*", "/crm-users", False),  # a glob is matched against the whole value
        ("/org/*", "/org/crm-users", True),
        ("/org/*", "/org/a/b", True),
        ("crm-?", "crm-x", True),
        ("CRM-users", "crm-users", False),  # case matters, as in the claim
    ],
)
def test_group_value_matches(rule: str, sent: str, matches: bool) -> None:
    assert group_value_matches(rule, sent) is matches


def test_matching_rules_reads_paths_in_list_claims() -> None:
    rules = [Rule("groups", "crm-users"), Rule("groups", "admins"), Rule("roles", "crm-users")]
    claims = {"groups": ["/crm-users", "/org/admins", "/staff"], "roles": "other"}
    assert matching_rules(claims, rules) == [rules[0]]


@pytest.mark.parametrize("rule", ["*", "**", "?*", "/*", "*/*"])
def test_a_rule_that_would_match_any_group_matches_only_itself(rule: str) -> None:
    # The admin refuses such a value; a row that holds one (written before globs existed, when "*" was
    # literal, or around the admin) must not come to match every user, staff rules included.
    assert group_value_matches(rule, "crm-users") is False
    assert group_value_matches(rule, "/org/admins") is False
    assert group_value_matches(rule, rule) is True
