"""Adversarial review of issue 15's merged work (second pass): each test fails on the code before its fix.

* A client secret that cannot be read (its variable unset after a deploy) ended every user's session at
  the next revalidation or renewal, as if the provider had refused the grant: it is this site's own
  configuration, so the session is kept and marked stale (503 on scope-protected views, as when the
  provider is down), and the log names the variable, never a value.
* The guard that keeps a client secret from following a changed issuer (``--send-secret-to-new-connection``,
  the admin's box) was bypassed by a new row: an import renaming a provider (``--prune``) or adding one,
  with an attacker's issuer and the variable of another row (a provider's, the directory's Admin API
  key, the second factor's), sent that secret to the attacker's token endpoint at the next login or
  Check connection. A row that starts using a variable another connection uses now needs the same
  confirmation.
* An https issuer's endpoint set by hand (or named by its metadata) over plain http:// took the client
  secret, the tokens or the signing keys over plain HTTP (see also tests/unit/test_review_15b_discovery.py).
* The log of configuration changes made from the shell lied: a dry run (or a refused file) logged
  "changed by manage.py duo_oidc_import" for changes rolled back, and deletions (``--prune``: providers,
  scope rules, the second factor; ``duo_oidc_scope_rule --remove``, ``duo_oidc_group_rule --remove``)
  and an import's new group rules were not logged at all.
* ``duo_oidc_scope_rule --list`` and ``duo_oidc_group_rule --list`` printed a rule's path, URL name,
  scopes, claim, value and group name as stored: a configuration file could put terminal escape
  sequences (or a right-to-left override) there, which ran in the terminal of whoever listed the rules.
* The pages that claim to be run word for word could change without a test noticing: a block of
  docs/tutorial.md left unmarked, or marked with a misspelt prefix, was skipped by the tutorial's test;
  the README's Quick start ``duo_oidc_provider`` command was a copy in test_stock_settings.py, not the
  README's own words.
* A rule named with surrounding spaces (``--path " /x/ "``, ``"value": " crm-* "`` in a file) was looked
  up with them but saved stripped (as the admin's form strips): each run of the command or the import
  added another rule, or deleted and re-created the group rules, and groups were created named " CRM ".
* ``--prune`` deleting a provider that a kept row names reached that row: a directory connection the
  file lists (or, with no directory section, one the file leaves alone) was deleted with its provider,
  another provider's ``introspect_with`` silently became none; the file then could not be imported again.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_duo_oidc.models import DirectoryConnection, GroupRule, MFAConfiguration, Provider, ScopeRule
from django_duo_oidc.providers.connection import check_connection
from django_duo_oidc.providers.forms import ProviderForm
from tests import docblocks
from tests.conftest import StillClock
from tests.fakeop import FakeOP

from . import test_act_for_user as act
from .test_config_as_code import build_configuration, export, write
from .test_config_shell import ISSUER, new_provider, run
from .test_config_shell import _secrets as _secrets  # autouse: the variables the rows name
from .test_login_views import login, me
from .test_policy import CRM, age_session

pytestmark = pytest.mark.django_db
SECRET_VAR = "DUO_FAKE_OP_SECRET"


# 1. A missing secret is an outage of this site, not a refusal of the user's grant --------------------


@pytest.mark.parametrize("expired", [False, True], ids=["revalidation", "refresh"])
def test_a_missing_secret_keeps_the_session_and_closes_scope_views(
    client: Client,
    fake_op: FakeOP,
    provider: Provider,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    expired: bool,
) -> None:
    login(client, fake_op, scope=CRM)
    monkeypatch.delenv(SECRET_VAR)
    age_session(client, **({"expires_at": time.time() - 1} if expired else {}))
    with caplog.at_level(logging.WARNING, logger="django_duo_oidc"):
        response = client.get("/contacts/")
    assert response.status_code == 503  # before the fix: 302 to the login, the session ended
    assert SECRET_VAR not in response.content.decode()
    assert me(client)["authenticated"] is True
    assert SECRET_VAR in caplog.text  # the administrators are told which variable
    monkeypatch.setenv(SECRET_VAR, fake_op.client_secret)
    cache.clear()  # the refusal shared with the other workers for a few seconds (single_flight) has expired
    assert client.get("/contacts/").status_code == 200  # back as soon as the variable is back, no new login


@pytest.mark.urls(act.__name__)
def test_a_missing_secret_during_renewal_for_an_api_call_keeps_the_session(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch, still_clock: StillClock
) -> None:
    fake_op.access_token_format = "opaque"
    act.HANDED_OUT.clear()
    login(client, fake_op, scope=CRM)
    first = act.stored_tokens(client)[0]
    act.due(client)  # due for renewal, 5 s still valid
    monkeypatch.delenv(SECRET_VAR)
    assert client.get("/t/act/token/").status_code == 200
    assert [first] == act.HANDED_OUT  # before the fix: the session ended, the user sent to log in again
    act.due(client, expires_at=time.time() - 1)
    assert client.get("/t/act/token/").status_code == 503
    assert me(client)["authenticated"] is True
    act.HANDED_OUT.clear()


# 2. A secret's variable does not follow a new row to another issuer --------------------------------------

ATTACKER = "https://attacker.example.test/oidc"


def _document() -> dict[str, Any]:
    return json.loads(export())  # type: ignore[no-any-return]


@pytest.mark.parametrize("prune", [True, False], ids=["renamed", "added"])
def test_a_new_row_does_not_take_another_rows_secret_to_another_issuer(tmp_path: Path, prune: bool) -> None:
    new_provider("a", "--client-secret-env", "DUO_A_SECRET")
    document = _document()
    row = dict(document["providers"]["a"], issuer=ATTACKER)
    document["providers"] = {"evil": row} if prune else {**document["providers"], "evil": row}
    path = write(tmp_path, document)
    extra = ("--prune",) if prune else ()
    with pytest.raises(CommandError, match="DUO_A_SECRET already holds the secret of provider 'a'"):
        run("duo_oidc_import", path, *extra)  # before the fix: imported, no confirmation asked
    assert list(Provider.objects.values_list("slug", "issuer")) == [("a", ISSUER)]
    run("duo_oidc_import", path, *extra, "--send-secret-to-new-connection")  # said in so many words: done
    assert Provider.objects.get(slug="evil").client_secret_env == "DUO_A_SECRET"


@pytest.mark.parametrize(
    ("command", "owner"),
    [
        (("duo_oidc_directory", "corp", "--api-host", "api-1.duosecurity.com", "--ikey", "DI1", "--skey-env",
          "DUO_ADMIN_SKEY", "--provider", "a"), "directory connection 'corp'"),
        (("duo_oidc_mfa", "--client-id", "DIXXXXXXXXXXXXXXXXXX", "--api-host", "api-1.duosecurity.com",
          "--client-secret-env", "DUO_ADMIN_SKEY"), "the second factor"),
    ],
)  # fmt: skip
def test_an_existing_row_does_not_switch_to_another_connections_variable(
    tmp_path: Path, command: tuple[str, ...], owner: str
) -> None:
    """Naming "another variable" is the way round the confirmation: not one that holds another secret."""
    new_provider("a", "--client-secret-env", "DUO_A_SECRET")
    new_provider("b", "--client-secret-env", "DUO_B_SECRET")
    Provider.objects.filter(slug="b").update(issuer=ATTACKER)  # a row of the attacker's, already there
    run(*command)
    document = _document()
    document["providers"]["b"]["client_secret_env"] = "DUO_ADMIN_SKEY"
    with pytest.raises(CommandError, match=f"DUO_ADMIN_SKEY already holds the secret of {owner}"):
        run("duo_oidc_import", write(tmp_path, document))
    assert Provider.objects.get(slug="b").client_secret_env == "DUO_B_SECRET"


def test_rows_of_one_connection_may_share_its_variable(tmp_path: Path) -> None:
    """The same issuer and client (a browser row and a tokens-only row): nothing to confirm."""
    new_provider("a", "--client-secret-env", "DUO_A_SECRET")
    document = _document()
    document["providers"]["tokens"] = dict(document["providers"]["a"], browser_login=False, is_default=False)
    run("duo_oidc_import", write(tmp_path, document))
    assert Provider.objects.get(slug="tokens").client_secret_env == "DUO_A_SECRET"


def test_the_admin_asks_for_the_box_too(tmp_path: Path) -> None:
    new_provider("a", "--client-secret-env", "DUO_A_SECRET")
    data = {**ProviderForm(instance=Provider.objects.get(slug="a")).initial, "slug": "evil", "issuer": ATTACKER}
    data = {k: v for k, v in data.items() if v is not None and k not in ("id", "introspect_with")}
    form = ProviderForm(data=data)
    assert not form.is_valid()
    assert "DUO_A_SECRET already holds the secret of provider 'a'" in " ".join(form.non_field_errors())
    form = ProviderForm(data={**data, "send_secret_to_new_connection": "on"})
    assert form.is_valid(), form.errors


# 3. An https issuer's endpoints set by hand are https too -----------------------------------------------


@pytest.mark.parametrize("name", ["token_endpoint", "jwks_uri", "introspection_endpoint", "revocation_endpoint"])
def test_an_endpoint_set_by_hand_over_plain_http_is_refused(tmp_path: Path, name: str) -> None:
    """Before the fix the row was saved: the client secret (or the keys) then went over plain HTTP,
    at every login and at Check connection, whatever the https issuer's own document said."""
    new_provider("a", "--client-secret-env", "DUO_A_SECRET")
    document = _document()
    document["providers"]["a"][name] = "http://op.example.test/oidc/x"
    with pytest.raises(CommandError, match=f"{name}: The issuer uses https: so must its endpoints"):
        run("duo_oidc_import", write(tmp_path, document), "--send-secret-to-new-connection")
    with pytest.raises(CommandError, match="so must its endpoints"):
        run("duo_oidc_provider", "a", f"--{name.replace('_', '-')}", "http://op.example.test/oidc/x")
    assert getattr(Provider.objects.get(slug="a"), name) == ""


def test_an_http_issuer_for_local_development_may_set_http_endpoints() -> None:
    run("duo_oidc_provider", "dev", "--issuer", "http://localhost:18741/oidc", "--client-id", "c",
        "--token-endpoint", "http://localhost:18741/oidc/token")  # fmt: skip
    assert Provider.objects.get(slug="dev").token_endpoint == "http://localhost:18741/oidc/token"


def test_check_connection_sends_no_secret_to_a_plain_http_token_endpoint(fake_op: FakeOP, provider: Provider) -> None:
    fake_op.discovery_overrides["token_endpoint"] = "http://op.example.test/token"
    report = check_connection(provider)
    assert not report.ok
    assert any("plain http:// token_endpoint" in line for line in report.lines), report.lines
    assert fake_op.token_requests == []


# 4. The log of changes made from the shell says what was written, deletions included ---------------------


def shell_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "by manage.py" in r.getMessage()]


def test_a_dry_run_or_a_refused_import_logs_no_change_and_pruning_logs_each_deletion(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    build_configuration()
    document = _document()
    document["providers"]["a"]["max_age"] = 5
    document["providers"]["a"]["group_rules"] = []
    del document["providers"]["b"]
    document["scope_rules"] = []
    document["second_factor"] = None
    path = write(tmp_path, document)
    rules = sorted(r.path_prefix or r.url_name for r in ScopeRule.objects.all())
    group_rules = sorted(f"{r.claim}={r.value}:{r.group.name if r.group else ''}" for r in GroupRule.objects.all())
    mfa = MFAConfiguration.objects.get().pk
    caplog.clear()
    # The lines are written when the import's transaction commits (the test's own never does: run them).
    with caplog.at_level(logging.WARNING, logger="django_duo_oidc"):
        with django_capture_on_commit_callbacks(execute=True):
            run("duo_oidc_import", path, "--dry-run", "--prune")
        assert shell_log(caplog) == []  # before the fix: "provider a changed by manage.py duo_oidc_import"
        document["providers"]["a"]["issuer"] = "not a url"
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(CommandError):
            run("duo_oidc_import", write(tmp_path, document, "bad.json"), "--prune")
        assert shell_log(caplog) == []
        with django_capture_on_commit_callbacks(execute=True):
            run("duo_oidc_import", path, "--prune")
    assert group_rules
    assert sorted(shell_log(caplog)) == sorted(
        [
            *(f"group rule {rule} of provider a deleted by manage.py duo_oidc_import" for rule in group_rules),
            "provider a changed by manage.py duo_oidc_import: max_age",
            "provider b deleted by manage.py duo_oidc_import",  # before the fix: no deletion was logged
            *(f"scope rule {target} deleted by manage.py duo_oidc_import" for target in rules),
            f"second factor (Duo Universal Prompt) {mfa} deleted by manage.py duo_oidc_import",
        ]
    )


def test_removing_a_rule_from_the_shell_is_logged(
    caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    new_provider("a", "--client-secret-env", "DUO_A_SECRET")
    run("duo_oidc_group_rule", "a", "--value", "crm-*", "--group", "CRM")
    run("duo_oidc_scope_rule", "--path", "/reports/", "--scopes", "reports.read")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="django_duo_oidc"), django_capture_on_commit_callbacks(execute=True):
        run("duo_oidc_group_rule", "a", "--value", "crm-*", "--group", "CRM", "--remove")
        run("duo_oidc_scope_rule", "--path", "/reports/", "--remove")
    assert shell_log(caplog) == [
        "group rule groups=crm-*:CRM of provider a deleted by manage.py duo_oidc_group_rule",
        "scope rule /reports/ deleted by manage.py duo_oidc_scope_rule",
    ]


# 5. Listing rules prints no terminal control sequence -------------------------------------------------

ESCAPES = ("\x1b]0;owned\x07", "\x1b[2J", "\u202e")


def test_listing_rules_escapes_control_characters(tmp_path: Path) -> None:
    new_provider("a", "--client-secret-env", "DUO_A_SECRET")
    document = _document()
    document["providers"]["a"]["group_rules"] = [
        {"claim": "groups\x1b[2J", "value": "crm-\u202e*", "group": "CRM\x1b]0;owned\x07", "staff": False}
    ]
    document["scope_rules"] = [
        {"path_prefix": "/x\x1b[2J/", "scopes": "read"},
        {"url_name": "a\u202e:b", "scopes": "read"},
    ]
    run("duo_oidc_import", write(tmp_path, document))
    for out in (run("duo_oidc_scope_rule", "--list")[0], run("duo_oidc_group_rule", "a", "--list")[0]):
        assert out.strip()
        assert not any(escape in out for escape in ESCAPES), out  # before the fix: printed as stored
        assert "\\x1b" in out or "\\u202e" in out  # shown escaped, not dropped


# Attacks that held (pinned) --------------------------------------------------------------------------


def test_a_missing_secret_at_logout_with_revocation_still_logs_out(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_op.advertise_revocation = True
    login(client, fake_op, scope=CRM)
    monkeypatch.delenv(SECRET_VAR)
    response = client.post("/oidc/logout/")
    assert response.status_code == 302 and me(client) == {"authenticated": False}
    assert fake_op.revocations == []  # nothing sent without the secret


def test_a_missing_secret_for_bearer_introspection_is_a_503_without_the_variable(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_op.access_token_format = "opaque"
    login(client, fake_op, scope=CRM)
    access = act.stored_tokens(client)[0]
    Provider.objects.filter(pk=provider.pk).update(access_token_validation="introspection")
    monkeypatch.delenv(SECRET_VAR)
    response = Client().get("/api/contacts/", HTTP_AUTHORIZATION=f"Bearer {access}")
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert SECRET_VAR not in response.content.decode() and access not in response.content.decode()


@pytest.mark.parametrize("prefix", ["/", "/oidc/"])
def test_a_scope_rule_on_everything_does_not_lock_out_the_login_itself(
    client: Client, fake_op: FakeOP, provider: Provider, prefix: str
) -> None:
    run("duo_oidc_scope_rule", "--path", prefix, "--scopes", "nobody.has.this")
    assert login(client, fake_op)["Location"] == "/me/"
    assert client.post("/oidc/logout/").status_code == 302


def test_the_get_logout_page_is_not_cached_framed_or_a_redirect(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    login(client, fake_op, scope=CRM)
    response = client.get("/oidc/logout/?next=https://attacker.example.test/")
    assert response.status_code == 405 and "no-store" in response["Cache-Control"]
    assert response["X-Frame-Options"] == "DENY" and "attacker" not in response.content.decode()
    assert me(client)["authenticated"] is True


# 6. The pages run "as written" are: no block skipped, the README's command itself --------------------

ROOT = Path(__file__).resolve().parents[2]


def unrun_blocks(path: Path, prefix: str) -> list[str]:
    """The fenced blocks of ``path`` a reader types that no ``<!-- prefix: ... -->`` marker gives a test:
    all but the ``text`` blocks (a folder layout, a picture of output)."""
    found = []
    for block in docblocks.fenced_blocks(path):
        marker = docblocks.MARKER.match(block.marker)
        if block.language != "text" and not (marker and marker.group(1) == prefix):
            found.append(f"line {block.line}: {block.language or 'no language'}")
    return found


def test_every_block_of_the_tutorial_a_reader_types_is_run() -> None:
    assert unrun_blocks(ROOT / "docs" / "tutorial.md", "tutorial") == []


@pytest.mark.parametrize(
    "mistake",
    ["```sh\npip install something-else\n```\n", "<!-- tutoral: run extra -->\n```sh\necho typo\n```\n"],
    ids=["unmarked", "misspelt"],
)
def test_a_block_the_tutorial_test_would_skip_is_found(tmp_path: Path, mistake: str) -> None:
    """Before: labelled_blocks (what tests/e2e/test_tutorial.py runs) silently left such a block out."""
    tutorial = ROOT / "docs" / "tutorial.md"
    page = tmp_path / "tutorial.md"
    page.write_text(tutorial.read_text() + "\n" + mistake)
    assert docblocks.labelled_blocks(page, "tutorial") == docblocks.labelled_blocks(tutorial, "tutorial")
    assert len(unrun_blocks(page, "tutorial")) == 1


def readme_provider_command() -> list[str]:
    """The Quick start's ``python manage.py duo_oidc_provider ...`` lines, as the shell splits them."""
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    for block in re.findall(r"```sh\n(.*?)```", quick_start, re.S):
        if "duo_oidc_provider" in block:
            words = shlex.split(block.replace("\\\n", " "), comments=True)
            start = words.index("duo_oidc_provider")
            assert words[start - 2 : start] == ["python", "manage.py"], words
            return words[start:]
    raise AssertionError("The README's Quick start has no duo_oidc_provider command")


def test_the_readmes_provider_command_runs_as_written(fake_op: FakeOP, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its words, with the Duo tenant's issuer and client id replaced by the fake provider's (the values
    a reader replaces too): every option exists, and --check passes against a provider that answers.
    Before, test_stock_settings.py ran its own copy of the command, not the README's."""
    words = readme_provider_command()
    issuer, client_id = words[words.index("--issuer") + 1], words[words.index("--client-id") + 1]
    assert issuer.startswith("https://sso-") and client_id.startswith("DI")
    monkeypatch.setenv(words[words.index("--client-secret-env") + 1], fake_op.client_secret)
    out, _ = run(*[{issuer: fake_op.issuer, client_id: fake_op.client_id}.get(w, w) for w in words])
    assert "Client credentials: accepted" in out
    assert Provider.objects.get(slug=words[1]).is_default


# 7. Surrounding spaces (a copy and paste) do not make the shell or an import add a rule each run ---------


def test_a_rule_named_with_surrounding_spaces_is_found_again(tmp_path: Path) -> None:
    """The admin's form strips the values it saves; the commands and the import looked the rule up with
    the spaces. Before the fix each run added another rule (two scope rules for /x/ then made every
    export and import refuse the configuration), and groups were created named " CRM "."""
    new_provider("a", "--client-secret-env", "DUO_A_SECRET")
    for _ in range(2):
        run("duo_oidc_scope_rule", "--path", " /x/ ", "--scopes", "a")
        run("duo_oidc_group_rule", "a", "--value", " crm-* ", "--group", "CRM ")
    assert list(ScopeRule.objects.values_list("path_prefix", flat=True)) == ["/x/"]
    assert list(GroupRule.objects.values_list("value", "group__name")) == [("crm-*", "CRM")]
    document = _document()
    document["scope_rules"] = [{"path_prefix": " /y/ ", "scopes": "a"}]
    document["providers"]["a"]["group_rules"] = [{"value": " ops-* ", "group": " Ops ", "staff": False}]
    path = write(tmp_path, document)
    run("duo_oidc_import", path, "--prune")
    with CaptureQueriesContext(connection) as queries:
        assert run("duo_oidc_import", path, "--prune")[0] == "No changes.\n"
    assert not [q for q in queries.captured_queries if q["sql"].split()[0] in ("INSERT", "UPDATE", "DELETE")]
    assert list(ScopeRule.objects.values_list("path_prefix", flat=True)) == ["/y/"]
    assert list(GroupRule.objects.values_list("value", "group__name")) == [("ops-*", "Ops")]
    assert not Group.objects.filter(name__in=[" Ops ", "CRM "]).exists()
    run("duo_oidc_group_rule", "a", "--value", " ops-* ", "--group", " Ops ", "--remove")
    assert not GroupRule.objects.exists()


def test_the_second_factors_groups_are_stripped_too(tmp_path: Path) -> None:
    run("duo_oidc_mfa", "--client-id", "DIXXXXXXXXXXXXXXXXXX", "--api-host", "api-1.duosecurity.com",
        "--client-secret-env", "DUO_MFA_SECRET", "--who", "groups", "--group", " Finance ")  # fmt: skip
    document = _document()
    document["second_factor"]["groups"] = [" Finance", "Ops "]
    run("duo_oidc_import", write(tmp_path, document))
    assert sorted(Group.objects.values_list("name", flat=True)) == ["Finance", "Ops"]  # before: " Finance " too
    assert run("duo_oidc_import", write(tmp_path, document))[0] == "No changes.\n"


# 8. --prune never reaches a row the file keeps ------------------------------------------------------------


@pytest.mark.parametrize("directory_section", [True, False], ids=["listed", "left-alone"])
def test_prune_refuses_to_delete_a_provider_a_kept_row_names(tmp_path: Path, directory_section: bool) -> None:
    build_configuration()  # b introspects with a; the directory connection corp belongs to a
    document = _document()
    del document["providers"]["a"]
    document["providers"]["b"]["is_default"] = True
    if not directory_section:
        del document["directory_connections"]
    with pytest.raises(CommandError) as refused:
        run("duo_oidc_import", write(tmp_path, document), "--prune")  # before the fix: imported
    assert "provider 'b': introspect_with names provider 'a', which --prune deletes" in str(refused.value)
    assert "directory connection 'corp': its provider 'a' is deleted by --prune" in str(refused.value)
    assert DirectoryConnection.objects.filter(slug="corp").exists()
    assert Provider.objects.get(slug="b").introspect_with == Provider.objects.get(slug="a")
    # Said in the file, it goes through: b stops introspecting with a, corp moves to b.
    document["providers"]["b"]["introspect_with"] = None
    document.setdefault("directory_connections", _document()["directory_connections"])
    document["directory_connections"]["corp"]["provider"] = "b"
    path = write(tmp_path, document)
    run("duo_oidc_import", path, "--prune")
    assert run("duo_oidc_import", path, "--prune")[0] == "No changes.\n"
    assert DirectoryConnection.objects.get(slug="corp").provider.slug == "b"
