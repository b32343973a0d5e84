"""Scope rules for views you don't own: ``DUO_OIDC["SCOPE_POLICY"]`` and the admin's ``ScopeRule`` rows,
matched by path prefix (on ``path_info``) or URL name; the middleware judges them with :func:`.check.check`.
"""

from __future__ import annotations

import time

from ..conf import conf
from ..core.scopes import Requirement

__all__ = ["policy_rules", "reset_policy_cache"]

# Admin-managed scope rules are read at most this often per process.
RULES_TTL = 5.0
_rules_memo: tuple[float, list[tuple[str, str, Requirement]]] = (0.0, [])


def policy_rules() -> list[tuple[str, str, Requirement]]:
    """Return ``(path_prefix, url_name, requirement)`` from settings and from the admin's ScopeRule rows."""
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
    rules += [
        (r.path_prefix, r.url_name, Requirement.of(r.scopes, any_of=r.any_of, max_age=r.max_age))
        for r in ScopeRule.objects.filter(enabled=True)
    ]
    _rules_memo = (now + RULES_TTL, rules)
    return rules


def reset_policy_cache() -> None:
    global _rules_memo
    _rules_memo = (0.0, [])
