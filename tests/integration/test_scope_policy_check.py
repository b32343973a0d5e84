"""A malformed ``DUO_OIDC["SCOPE_POLICY"]`` failed every request with a 500 and nothing said why before
(noted by the issue-15 review): ``manage.py check`` now names what is wrong (``duo_oidc.E009``)."""

from __future__ import annotations

from typing import Any

import pytest

from django_duo_oidc.checks import check_settings
from django_duo_oidc.policy.rules import policy_problems


def e009(settings: Any, policy: Any) -> list[str]:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "SCOPE_POLICY": policy}
    return [m.msg for m in check_settings() if m.id == "duo_oidc.E009"]


def test_a_good_policy_passes(settings: Any) -> None:
    good = [
        {"path": "/admin/", "scopes": ["admin.access"]},
        {"url_name": "app:view", "scopes": "a b", "any_of": True, "max_age": 300},
    ]
    assert e009(settings, good) == []
    assert e009(settings, []) == []


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ({"path": "/admin/", "scopes": ["admin.access"]}, "not a list"),  # a dict instead of a list
        (["/admin/"], "not a dict"),
        ([{"scopes": ["a"]}], "exactly one of"),
        ([{"path": "/a/", "url_name": "x", "scopes": ["a"]}], "exactly one of"),
        ([{"path": "admin/", "scopes": ["a"]}], "start with /"),
        ([{"path": "/a/"}], "scopes"),
        ([{"path": "/a/", "scopes": []}], "scopes"),
        ([{"path": "/a/", "scopes": [1]}], "scopes"),
        ([{"path": "/a/", "scopes": "a", "max_age": "300"}], "max_age"),
        ([{"path": "/a/", "scopes": "a", "max_age": -1}], "max_age"),
        ([{"path": "/a/", "scopes": "a", "any_of": "yes"}], "any_of"),
        ([{"path": "/a/", "scopes": "a", "scope": "b"}], "unknown keys"),
    ],
)
def test_a_malformed_policy_is_named(settings: Any, policy: Any, words: str) -> None:
    messages = e009(settings, policy)
    assert messages and words in " ".join(messages)
    assert policy_problems(policy)
