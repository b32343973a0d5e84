"""PKCE, scopes, claim mapping, and the rule that the core never imports Django."""

from __future__ import annotations

import subprocess
import sys

import pytest

from django_duo_oidc.core.claims import ClaimMapping, GroupRuleSpec, claim_values, map_claims, matching_rules
from django_duo_oidc.core.flow import AuthRequest, authorization_params, authorization_url
from django_duo_oidc.core.pkce import new_verifier, s256_challenge
from django_duo_oidc.core.scopes import missing_scopes, parse_scopes


def test_s256_matches_rfc7636_appendix_b() -> None:
    assert (
        s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_verifier_length_and_alphabet() -> None:
    verifier = new_verifier()
    assert 43 <= len(verifier) <= 128
    assert set(verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    assert new_verifier() != verifier


def test_authorization_params_always_carry_pkce_state_and_nonce() -> None:
    request = AuthRequest.new()
    params = authorization_params(
        client_id="c",
        redirect_uri="https://rp/cb",
        scope="openid",
        auth_request=request,
        extra={"state": "x", "prompt": "login"},
    )
    assert params["code_challenge_method"] == "S256"
    assert params["code_challenge"] == s256_challenge(request.code_verifier)
    assert params["state"] == request.state  # extra params cannot override the protocol ones
    assert params["nonce"] == request.nonce
    assert params["prompt"] == "login"
    assert "code_verifier" not in params


def test_authorization_url_keeps_existing_query() -> None:
    url = authorization_url("https://op/authorize?tenant=1", {"a": "b c"})
    assert url == "https://op/authorize?tenant=1&a=b+c"


def test_parse_scopes_splits_and_drops_invalid_tokens() -> None:
    assert parse_scopes("email profile openid") == {"openid", "profile", "email"}
    assert parse_scopes("a  b") == {"a", "b"}
    assert parse_scopes('ok bad"quote back\\slash') == {"ok"}
    assert parse_scopes(None) == frozenset()
    assert parse_scopes(["crm.contacts.read", "agent:call"]) == {"crm.contacts.read", "agent:call"}


@pytest.mark.parametrize(
    ("required", "granted", "any_of", "missing"),
    [
        ({"a", "b"}, {"a", "b", "c"}, False, set()),
        ({"a", "b"}, {"a"}, False, {"b"}),
        ({"a", "b"}, {"b"}, True, set()),
        ({"a", "b"}, {"c"}, True, {"a", "b"}),
        (set(), set(), False, set()),
        (set(), set(), True, set()),
    ],
)
def test_missing_scopes(required: set[str], granted: set[str], any_of: bool, missing: set[str]) -> None:
    assert missing_scopes(required, granted, any_of=any_of) == missing


def test_duo_claims_map_onto_user_fields() -> None:
    duo = {"sub": "b1" * 32, "email": "ann@example.com", "name": "Ann Lee", "given_name": "Ann", "family_name": "Lee"}
    fields = map_claims(duo, ClaimMapping())
    assert (fields.username, fields.email, fields.first_name, fields.last_name) == (
        "ann@example.com",
        "ann@example.com",
        "Ann",
        "Lee",
    )


def test_username_prefers_preferred_username_and_ignores_non_strings() -> None:
    fields = map_claims({"preferred_username": "ann", "email": ["x"]}, ClaimMapping())
    assert fields.username == "ann"
    assert fields.email is None


def test_group_rules_match_strings_and_lists() -> None:
    rules = [GroupRuleSpec("groups", "crm-users", group="CRM"), GroupRuleSpec("department", "IT", staff=True)]
    assert matching_rules({"groups": ["crm-users", "x"], "department": "IT"}, rules) == rules
    assert matching_rules({"groups": "crm-users"}, rules) == rules[:1]
    assert matching_rules({"groups": [{"crm-users": 1}]}, rules) == []
    assert claim_values({"groups": None}, "groups") == frozenset()


def test_core_imports_no_django() -> None:
    code = (
        "import sys, django_duo_oidc.core;"
        "roots = ('django', 'mozilla_django_oidc', 'rest_framework');"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in roots);"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_log_filter_redacts_oauth_values() -> None:
    import logging

    from django_duo_oidc.log_filters import RedactOAuthParams

    record = logging.LogRecord(
        "django.server",
        logging.INFO,
        __file__,
        1,
        '"%s" %s',
        ("GET /cb/?code=abc&state=xyz&iss=http://op HTTP/1.1", 302),
        None,
    )
    RedactOAuthParams().filter(record)
    assert record.getMessage() == '"GET /cb/?code=[redacted]&state=[redacted]&iss=http://op HTTP/1.1" 302'
