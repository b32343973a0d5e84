"""Scope rules for views you don't own: ``DUO_OIDC["SCOPE_POLICY"]`` and the admin's ``ScopeRule`` rows,
matched by path prefix (on ``path_info``) or URL name; the middleware judges them with :func:`.check.check`.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import Error as DBError

from ..conf import conf
from ..core.errors import database_outage
from ..core.scopes import Requirement, parse_scopes

__all__ = ["policy_problems", "policy_rules", "reset_policy_cache"]


# Admin-managed scope rules are read at most this often per process.
RULES_TTL = 5.0
_rules_memo: tuple[float, list[tuple[str, str, Requirement]]] = (0.0, [])


def policy_rules() -> list[tuple[str, str, Requirement]]:
    """Return ``(path_prefix, url_name, requirement)`` from settings and from the admin's ScopeRule rows.

    :raises ProviderUnavailable: the rows are due and the database failed (the next call reads again);
        the rules cannot be judged, so the request is answered as during an outage (503).
    """
    global _rules_memo
    expires, rules = _rules_memo
    now = time.monotonic()
    if now < expires:
        return rules
    from ..models import ScopeRule

    rules = [
        (
            str(rule.get("path", "")),
            str(rule.get("url_name", "")),
            Requirement.of(rule["scopes"], any_of=bool(rule.get("any_of")), max_age=rule.get("max_age")),
        )
        for rule in conf.scope_policy
    ]
    try:
        rules += [
            (r.path_prefix, r.url_name, Requirement.of(r.scopes, any_of=r.any_of, max_age=r.max_age))
            for r in ScopeRule.objects.filter(enabled=True)
        ]
    except DBError as exc:
        raise database_outage(
            "Could not read the scope rules", exc, "This site cannot read its access rules right now."
        ) from exc
    _rules_memo = (now + RULES_TTL, rules)
    return rules


_RULE_KEYS = frozenset({"path", "url_name", "scopes", "any_of", "max_age"})


def policy_problems(policy: Any) -> list[str]:
    """What is wrong with a ``SCOPE_POLICY`` value, in words (empty when nothing): a list of rules, each a
    dict with ``scopes`` and exactly one of ``path`` (starting with ``/``) or ``url_name``, and optionally
    ``any_of`` (bool) and ``max_age`` (seconds). A malformed policy would fail every request."""
    if not isinstance(policy, list | tuple):
        return [f"DUO_OIDC['SCOPE_POLICY'] is a {type(policy).__name__}, not a list of rules."]
    problems = []
    for i, rule in enumerate(policy):
        where = f"DUO_OIDC['SCOPE_POLICY'][{i}]"
        if not isinstance(rule, dict):
            problems.append(f"{where} is not a dict.")
            continue
        unknown = sorted(set(rule) - _RULE_KEYS)
        if unknown:
            problems.append(f"{where} has unknown keys: {', '.join(map(str, unknown))}.")
        if bool(rule.get("path")) == bool(rule.get("url_name")):
            problems.append(f"{where} needs exactly one of 'path' or 'url_name'.")
        elif rule.get("path") and not str(rule["path"]).startswith("/"):
            problems.append(f"{where}['path'] does not start with /.")
        elif rule.get("url_name") and not isinstance(rule["url_name"], str):
            # policy_rules takes str() of it, which never equals a view name: the rule would guard nothing.
            problems.append(f"{where}['url_name'] is not a string.")
        scopes = rule.get("scopes")
        if not (isinstance(scopes, str) and scopes.split()) and not (
            isinstance(scopes, list | tuple) and scopes and all(isinstance(v, str) and v for v in scopes)
        ):
            problems.append(f"{where}['scopes'] is not a non-empty string or list of scope names.")
        else:
            # Judged as policy_rules builds it (Requirement.of): names that are only blanks make an empty
            # requirement, which any signed-in user meets, so the rule would guard nothing.
            names = Requirement.of(scopes).scopes
            if not names:
                problems.append(f"{where}['scopes'] names no scope (only blanks).")
            elif parse_scopes(names) != names:
                # RFC 6749 section 3.3 scope-token: granted scopes are parsed so (core.scopes.parse_scopes),
                # so a name outside it can never be granted and the rule would refuse everyone.
                problems.append(f"{where}['scopes'] holds a name that is not a valid scope (RFC 6749 3.3).")
        max_age = rule.get("max_age")
        if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0):
            problems.append(f"{where}['max_age'] is not a number of seconds.")
        if "any_of" in rule and not isinstance(rule["any_of"], bool):
            problems.append(f"{where}['any_of'] is not True or False.")
    return problems


def reset_policy_cache() -> None:
    global _rules_memo
    _rules_memo = (0.0, [])
