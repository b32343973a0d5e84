"""The fake Duo Admin API (tests/fakeduo/admin_api.py) against Duo's own client, ``duo_client.Admin``.

The fake checks signatures independently of ``duo_client``; these tests prove the two agree on good
requests and that the fake refuses what Duo refuses (a wrong key, tampered parameters, headers or host, a
stale Date), pages as Duo does, and produces the faults the directory-sync tests rely on.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import itertools
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duo_client
import pytest
import requests
from duo_client.client import normalize_params, sign

from tests.fakeduo.admin_fixtures import (
    ROOT,
    FakeDuoAdmin,
    duo_group,
    duo_group_id,
    duo_user,
    duo_user_id,
    start_server,
    stop_server,
)

USERS_PATH = "/admin/v1/users"


def _error(excinfo: pytest.ExceptionInfo[RuntimeError]) -> tuple[int, dict[str, Any]]:
    error = excinfo.value
    data = error.data  # type: ignore[attr-defined]  # duo_client leaves the parsed body on FAIL answers
    return error.status, data if isinstance(data, dict) else json.loads(data)  # type: ignore[attr-defined]


def _signed_get(
    fake: FakeDuoAdmin,
    path: str,
    *,
    signed_params: dict[str, str],
    sent_params: dict[str, str] | None = None,
    date: str | None = None,
    signed_host: str | None = None,
    skey: str | None = None,
    signed_headers: dict[str, str] | None = None,
    sent_headers: dict[str, str] | None = None,
    signed_path: str | None = None,
) -> requests.Response:
    """A GET signed by duo_client's own ``sign`` (v5), then sent as the test chooses (possibly altered)."""
    date = date or email.utils.formatdate()
    authorization = sign(
        fake.ikey,
        skey or fake.skey,
        "GET",
        signed_host or fake.host,
        signed_path or path,
        date,
        5,
        normalize_params(signed_params),
        body="",
        additional_headers=signed_headers or {},
    )
    headers = {"Date": date, "Authorization": authorization, **(sent_headers or signed_headers or {})}
    sent = signed_params if sent_params is None else sent_params
    return requests.get(f"https://{fake.api_host}{path}", params=sent, headers=headers, verify=fake.ca_path, timeout=10)


def _fail_body(response: requests.Response) -> tuple[int, dict[str, Any]]:
    return response.status_code, response.json()


BAD_SIGNATURE = {"stat": "FAIL", "code": 40103, "message": "Invalid signature in request credentials"}


# --- listing and paging ---------------------------------------------------------------------------------


def test_users_and_groups_are_listed_across_pages_each_once(fake_duo_admin: FakeDuoAdmin) -> None:
    names = [f"user{i:02d}" for i in range(11)]
    fake_duo_admin.set_state(
        users=[duo_user(n, groups=["g-even" if i % 2 else "g-odd"]) for i, n in enumerate(names)],
        groups=[duo_group(f"extra{i}") for i in range(3)],
    )
    fake_duo_admin.faults(page_limit=3)
    admin = fake_duo_admin.admin_client()

    users = list(admin.get_users_iterator())
    groups = list(admin.get_groups_generator())

    assert [u["username"] for u in users] == names
    assert [u["user_id"] for u in users] == [duo_user_id(n) for n in names]
    assert sorted(g["name"] for g in groups) == ["extra0", "extra1", "extra2", "g-even", "g-odd"]
    stats = fake_duo_admin.stats()
    assert stats["by_path"] == {USERS_PATH: 4, "/admin/v1/groups": 2}  # 11 users by 3: 4 pages; 5 groups by 3: 2
    assert stats["by_signature"] == {"v5": 6} and stats["bad_signatures"] == 0 and stats["writes"] == 0


def test_page_metadata_follows_duo(fake_duo_admin: FakeDuoAdmin) -> None:
    fake_duo_admin.set_state(users=[duo_user(f"u{i:03d}") for i in range(305)])
    admin = fake_duo_admin.admin_client()

    def page(**params: str) -> dict[str, Any]:
        response, data = admin.api_call("GET", USERS_PATH, params)
        assert response.status == 200, data
        return json.loads(data)

    first = page(limit="2", offset="0")
    assert [u["username"] for u in first["response"]] == ["u000", "u001"]
    assert first["stat"] == "OK" and first["metadata"] == {"total_objects": 305, "next_offset": 2}
    assert page()["metadata"]["next_offset"] == 100  # default limit 100
    assert len(page(limit="1000")["response"]) == 300  # the users maximum
    last = page(limit="300", offset="300")
    assert len(last["response"]) == 5 and last["metadata"]["next_offset"] is None
    assert page(offset="400")["response"] == []
    response, data = admin.api_call("GET", USERS_PATH, {"limit": "-1"})
    assert response.status == 400 and json.loads(data)["code"] == 40002


def test_one_user_their_groups_and_devices(fake_duo_admin: FakeDuoAdmin) -> None:
    carol = duo_user("carol", groups=["crm-users", "admins"], phones=2, tokens=1, webauthn=1, desktop=1)
    fake_duo_admin.set_state(users=[carol])
    admin = fake_duo_admin.admin_client()

    got = admin.get_user_by_id(duo_user_id("carol"))

    assert got == carol
    assert {k: len(got[k]) for k in ("phones", "tokens", "webauthncredentials", "desktoptokens")} == {
        "phones": 2,
        "tokens": 1,
        "webauthncredentials": 1,
        "desktoptokens": 1,
    }
    assert got["user_id"].startswith("DU") and len(got["user_id"]) == 20
    assert [g["name"] for g in admin.get_user_groups(got["user_id"])] == ["crm-users", "admins"]
    assert admin.get_user_phones(got["user_id"]) == carol["phones"]
    assert admin.get_user_tokens(got["user_id"]) == carol["tokens"]
    assert admin.get_user_webauthncredentials(got["user_id"]) == carol["webauthncredentials"]
    assert admin.get_group(duo_group_id("admins"), api_version=2)["name"] == "admins"
    assert admin.get_info_summary()["user_count"] == 1
    with pytest.raises(RuntimeError) as missing:
        admin.get_user_by_id("DU" + "X" * 18)
    status, body = _error(missing)
    assert status == 404 and body["code"] == 40401


def test_filters_and_canonicalisation_of_awkward_parameters(fake_duo_admin: FakeDuoAdmin) -> None:
    # A space, a tilde, a slash and non-ASCII: the canonical parameters must agree byte for byte with duo_client.
    odd = duo_user("zoë o~b/c d", email="Zoe@Example.test")
    fake_duo_admin.set_state(users=[odd, duo_user("alice"), duo_user("bob")])
    admin = fake_duo_admin.admin_client()

    assert [u["user_id"] for u in admin.get_users_by_name("zoë o~b/c d")] == [odd["user_id"]]
    assert [u["username"] for u in admin.get_user_by_email("zoe@example.test")] == ["zoë o~b/c d"]
    by_ids = admin.get_users_by_ids([duo_user_id("bob"), duo_user_id("alice")])
    assert sorted(u["username"] for u in by_ids) == ["alice", "bob"]
    assert admin.get_users_by_name("nobody") == []
    assert fake_duo_admin.stats()["bad_signatures"] == 0


def test_test_control_patches_and_deletes_users(fake_duo_admin: FakeDuoAdmin) -> None:
    fake_duo_admin.set_state(users=[duo_user("alice", groups=["crm-users"])])
    alice = duo_user_id("alice")
    admin = fake_duo_admin.admin_client()

    fake_duo_admin.patch_user(alice, status="disabled", groups=["admins"], tokens=2)
    got = admin.get_user_by_id(alice)
    assert got["status"] == "disabled" and [g["name"] for g in got["groups"]] == ["admins"]
    assert len(got["tokens"]) == 2 and len(got["phones"]) == 1
    fake_duo_admin.delete_user(alice)
    assert admin.get_users() == []
    with pytest.raises(AssertionError, match="400"):
        fake_duo_admin.faults(rate_limit=-1)


# --- signatures -----------------------------------------------------------------------------------------


def test_a_wrong_secret_key_is_refused_with_40103(fake_duo_admin: FakeDuoAdmin) -> None:
    admin = fake_duo_admin.admin_client(skey="x" * 40)
    with pytest.raises(RuntimeError) as refused:
        admin.get_users()
    assert _error(refused) == (401, BAD_SIGNATURE)
    stats = fake_duo_admin.stats()
    assert stats["bad_signatures"] == 1 and stats["last_bad_signature"] == "signature mismatch"


def test_a_wrong_integration_key_is_refused_with_40103(fake_duo_admin: FakeDuoAdmin) -> None:
    admin = fake_duo_admin.admin_client(ikey="DI" + "Z" * 18)
    with pytest.raises(RuntimeError) as refused:
        admin.get_users()
    assert _error(refused) == (401, BAD_SIGNATURE)
    assert fake_duo_admin.stats()["last_bad_signature"] == "wrong ikey"


def test_hand_signed_request_is_accepted_so_the_tampering_tests_mean_something(fake_duo_admin: FakeDuoAdmin) -> None:
    fake_duo_admin.set_state(users=[duo_user("alice"), duo_user("bob")])
    response = _signed_get(fake_duo_admin, USERS_PATH, signed_params={"limit": "1", "offset": "0"})
    assert response.status_code == 200 and [u["username"] for u in response.json()["response"]] == ["alice"]
    headers = {"X-Duo-Trace": "a"}
    assert _signed_get(fake_duo_admin, USERS_PATH, signed_params={}, signed_headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("case", "kwargs", "reason"),
    [
        ("other parameters", {"signed_params": {"limit": "1"}, "sent_params": {"limit": "2"}}, "signature mismatch"),
        ("parameter added", {"signed_params": {}, "sent_params": {"username": "alice"}}, "signature mismatch"),
        (
            "other X-Duo header",
            {"signed_headers": {"X-Duo-A": "1"}, "sent_headers": {"X-Duo-A": "2"}},
            "signature mismatch",
        ),
        ("X-Duo header added", {"sent_headers": {"X-Duo-A": "1"}}, "signature mismatch"),
        ("other host", {"signed_host": "api-12345678.duosecurity.com"}, "signature mismatch"),
        ("other path", {"signed_path": "/admin/v1/groups"}, "signature mismatch"),
        ("stale Date", {"date_offset": -310}, "stale Date"),
        ("future Date", {"date_offset": 310}, "stale Date"),
        ("Date without zone", {"date_offset": "no zone"}, "Date without a zone"),
    ],
)
def test_a_tampered_request_is_refused_with_40103(
    fake_duo_admin: FakeDuoAdmin, case: str, kwargs: dict[str, Any], reason: str
) -> None:
    kwargs = {"signed_params": {}, **kwargs}
    offset = kwargs.pop("date_offset", None)  # dates are made here, not at collection time
    if offset == "no zone":
        kwargs["date"] = time.strftime("%a, %d %b %Y %H:%M:%S", time.gmtime())
    elif offset is not None:
        kwargs["date"] = email.utils.formatdate(time.time() + offset)
    response = _signed_get(fake_duo_admin, USERS_PATH, **kwargs)
    assert _fail_body(response) == (401, BAD_SIGNATURE), case
    assert fake_duo_admin.stats()["last_bad_signature"] == reason


def _signed_post(fake: FakeDuoAdmin, *, signed_body: dict[str, Any], sent_body: dict[str, Any]) -> int:
    date = email.utils.formatdate()
    body = json.dumps(signed_body, sort_keys=True, separators=(",", ":"))
    authorization = sign(fake.ikey, fake.skey, "POST", fake.host, USERS_PATH, date, 5, {}, body=body)
    response = requests.post(
        f"https://{fake.api_host}{USERS_PATH}",
        data=json.dumps(sent_body, sort_keys=True, separators=(",", ":")),
        headers={"Date": date, "Authorization": authorization, "Content-Type": "application/json"},
        verify=fake.ca_path,
        timeout=10,
    )
    return response.status_code


def test_the_body_is_signed(fake_duo_admin: FakeDuoAdmin) -> None:
    # Signed as sent: past the signature check, refused as a write (403). Another body: refused as forged (401).
    assert _signed_post(fake_duo_admin, signed_body={"username": "a"}, sent_body={"username": "a"}) == 403
    assert _signed_post(fake_duo_admin, signed_body={"username": "a"}, sent_body={"username": "b"}) == 401
    assert fake_duo_admin.stats()["writes"] == 2


def test_a_get_signature_does_not_sign_a_delete(fake_duo_admin: FakeDuoAdmin) -> None:
    got = _signed_get(fake_duo_admin, USERS_PATH, signed_params={})
    assert got.status_code == 200
    headers = {k: got.request.headers[k] for k in ("Date", "Authorization")}
    deleted = requests.delete(
        f"https://{fake_duo_admin.api_host}{USERS_PATH}", headers=headers, verify=fake_duo_admin.ca_path, timeout=10
    )
    assert _fail_body(deleted) == (401, BAD_SIGNATURE)


def test_repeated_date_or_host_headers_are_refused(fake_duo_admin: FakeDuoAdmin) -> None:
    good = _signed_get(fake_duo_admin, USERS_PATH, signed_params={})
    assert good.status_code == 200
    context = ssl.create_default_context(cafile=fake_duo_admin.ca_path)
    for repeated in ("Date", "Host"):
        conn = http.client.HTTPSConnection(fake_duo_admin.host, fake_duo_admin.port, context=context, timeout=10)
        try:
            conn.putrequest("GET", USERS_PATH, skip_host=True)
            conn.putheader("Host", fake_duo_admin.api_host)
            conn.putheader("Date", good.request.headers["Date"])
            conn.putheader("Authorization", good.request.headers["Authorization"])
            conn.putheader(repeated, "Mon, 01 Jan 2024 00:00:00 -0000" if repeated == "Date" else "evil.example")
            conn.endheaders()
            response = conn.getresponse()
            assert (response.status, json.loads(response.read())) == (401, BAD_SIGNATURE), repeated
        finally:
            conn.close()


def test_a_date_within_five_minutes_is_accepted_but_not_with_another_date_header(
    fake_duo_admin: FakeDuoAdmin,
) -> None:
    for offset in (-280, 280):
        date = email.utils.formatdate(time.time() + offset)
        assert _signed_get(fake_duo_admin, USERS_PATH, signed_params={}, date=date).status_code == 200
    good = _signed_get(fake_duo_admin, USERS_PATH, signed_params={}, date=email.utils.formatdate(time.time() - 60))
    assert good.status_code == 200
    authorization = good.request.headers["Authorization"]
    replay = requests.get(
        f"https://{fake_duo_admin.api_host}{USERS_PATH}",
        headers={"Date": email.utils.formatdate(), "Authorization": authorization},
        verify=fake_duo_admin.ca_path,
        timeout=10,
    )
    assert _fail_body(replay) == (401, BAD_SIGNATURE)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Date": email.utils.formatdate()},
        {"Date": email.utils.formatdate(), "Authorization": "Bearer abc"},
        {"Date": email.utils.formatdate(), "Authorization": "Basic !!!"},
        {"Date": email.utils.formatdate(), "Authorization": "Basic ZGk="},  # "di", no colon
    ],
)
def test_missing_or_malformed_credentials_are_refused(fake_duo_admin: FakeDuoAdmin, headers: dict[str, str]) -> None:
    response = requests.get(
        f"https://{fake_duo_admin.api_host}{USERS_PATH}", headers=headers, verify=fake_duo_admin.ca_path, timeout=10
    )
    assert _fail_body(response) == (401, BAD_SIGNATURE)


def test_v2_signatures_are_accepted_and_told_apart(fake_duo_admin: FakeDuoAdmin) -> None:
    fake_duo_admin.admin_client(sig_version=2).get_users()
    fake_duo_admin.admin_client(sig_version=2, digestmod=hashlib.sha1).get_users()
    fake_duo_admin.admin_client().get_users()
    assert fake_duo_admin.stats()["by_signature"] == {"v2-sha512": 1, "v2-sha1": 1, "v5": 1}


def test_the_server_certificate_is_checked_by_duo_client(fake_duo_admin: FakeDuoAdmin) -> None:
    # Without the test CA, duo_client trusts only Duo's bundled CAs: the fake's certificate is refused.
    admin = duo_client.Admin(
        fake_duo_admin.ikey, fake_duo_admin.skey, host=fake_duo_admin.host, port=fake_duo_admin.port, timeout=5
    )
    with pytest.raises(OSError):
        admin.get_users()


# --- faults ---------------------------------------------------------------------------------------------


def test_a_429_is_retried_by_duo_client_then_succeeds(fake_duo_admin: FakeDuoAdmin) -> None:
    fake_duo_admin.set_state(users=[duo_user("alice")])
    fake_duo_admin.faults(rate_limit=1)
    started = time.monotonic()
    users = fake_duo_admin.admin_client().get_users()
    waited = time.monotonic() - started
    assert [u["username"] for u in users] == ["alice"]
    # duo_client's first back-off is 1 s plus up to 1 s of jitter (client.py _make_request).
    assert 1.0 <= waited < 4.0
    stats = fake_duo_admin.stats()
    assert stats["rate_limited"] == 1 and stats["by_path"] == {USERS_PATH: 2}


def test_a_429_answer_is_duos(fake_duo_admin: FakeDuoAdmin) -> None:
    fake_duo_admin.faults(rate_limit=1)
    response = _signed_get(fake_duo_admin, USERS_PATH, signed_params={})
    assert _fail_body(response) == (429, {"stat": "FAIL", "code": 42901, "message": "Too Many Requests"})
    assert "Retry-After" not in response.headers
    # A bad signature does not use up the rate-limit fault (only signed requests are counted)
    fake_duo_admin.faults(rate_limit=1)
    assert _signed_get(fake_duo_admin, USERS_PATH, signed_params={}, skey="y" * 40).status_code == 401
    assert _signed_get(fake_duo_admin, USERS_PATH, signed_params={}).status_code == 429


@pytest.mark.parametrize(("mode", "message"), [("status", "Received 500"), ("body", "Received bad response")])
def test_a_page_failing_half_way_makes_the_iterator_raise(
    fake_duo_admin: FakeDuoAdmin, mode: str, message: str
) -> None:
    fake_duo_admin.set_state(users=[duo_user(f"u{i}") for i in range(7)])
    fake_duo_admin.faults(page_limit=2, fail_at_offset=4, fail_mode=mode)
    admin = fake_duo_admin.admin_client()

    seen = []
    with pytest.raises(RuntimeError, match=message):
        for user in admin.get_users_iterator():
            seen.append(user["username"])
    assert seen == ["u0", "u1", "u2", "u3"]  # two good pages, then the failing one
    assert len(list(admin.get_users_iterator())) == 7  # not sticky: the fault fired once
    assert fake_duo_admin.stats()["failed_pages"] == 1


def test_a_sticky_failing_page_fails_every_time(fake_duo_admin: FakeDuoAdmin) -> None:
    fake_duo_admin.set_state(users=[duo_user(f"u{i}") for i in range(3)])
    fake_duo_admin.faults(page_limit=2, fail_at_offset=2, sticky=True)
    admin = fake_duo_admin.admin_client()
    for _ in range(2):
        with pytest.raises(RuntimeError) as failed:
            list(admin.get_users_iterator())
        assert failed.value.status == 500  # type: ignore[attr-defined]
    assert fake_duo_admin.stats()["failed_pages"] == 2


def test_users_deleted_mid_listing_shift_the_offsets_and_a_live_user_is_skipped(fake_duo_admin: FakeDuoAdmin) -> None:
    # The hazard a sync must survive: offset paging over a changing directory skips users who still exist.
    fake_duo_admin.set_state(users=[duo_user(f"u{i}") for i in range(7)])
    fake_duo_admin.faults(page_limit=2, delete_during_listing={"offset": 4, "user_ids": [duo_user_id("u0")]})
    admin = fake_duo_admin.admin_client()
    totals = []
    for offset in ("0", "2", "4", "6"):
        page = json.loads(admin.api_call("GET", USERS_PATH, {"offset": offset})[1])
        totals.append((page["metadata"]["total_objects"], [u["username"] for u in page["response"]]))
    assert totals == [(7, ["u0", "u1"]), (7, ["u2", "u3"]), (6, ["u5", "u6"]), (6, [])]  # u4 never listed
    assert admin.get_user_by_id(duo_user_id("u4"))["username"] == "u4"


def test_a_lying_next_offset_never_ends_the_listing(fake_duo_admin: FakeDuoAdmin) -> None:
    fake_duo_admin.set_state(users=[duo_user("a"), duo_user("b")])
    fake_duo_admin.faults(page_limit=1, next_offset_loop=True)
    listing = fake_duo_admin.admin_client().get_users_iterator()
    assert [u["username"] for u in itertools.islice(listing, 5)] == ["a", "a", "a", "a", "a"]


def test_down_closes_the_connection_and_delay_runs_into_timeouts(fake_duo_admin: FakeDuoAdmin) -> None:
    fake_duo_admin.faults(down=True)
    with pytest.raises(ConnectionError):
        fake_duo_admin.admin_client().get_users()
    fake_duo_admin.faults(down=False, delay=1.0)
    with pytest.raises(TimeoutError):
        fake_duo_admin.admin_client(timeout=0.3).get_users()
    stats = fake_duo_admin.stats()
    assert stats["dropped"] == 1 and stats["requests"] == 2


# --- read-only ------------------------------------------------------------------------------------------


def test_writes_are_forbidden_counted_and_change_nothing(fake_duo_admin: FakeDuoAdmin) -> None:
    fake_duo_admin.set_state(users=[duo_user("alice", groups=["crm-users"])])
    before = fake_duo_admin.state()
    admin = fake_duo_admin.admin_client()
    alice = duo_user_id("alice")
    writes = [
        lambda: admin.add_user("mallory"),  # POST
        lambda: admin.update_user(alice, status="disabled"),  # POST
        lambda: admin.delete_user(alice),  # DELETE
        lambda: admin.delete_user_group(alice, duo_group_id("crm-users")),  # DELETE
    ]
    for write in writes:
        with pytest.raises(RuntimeError) as refused:
            write()
        assert _error(refused) == (403, {"stat": "FAIL", "code": 40301, "message": "Access forbidden"})
    # An unsigned write is refused for its signature, and still counted as an attempt.
    unsigned = requests.post(
        f"https://{fake_duo_admin.api_host}{USERS_PATH}", json={}, verify=fake_duo_admin.ca_path, timeout=10
    )
    assert unsigned.status_code == 401
    assert fake_duo_admin.stats()["writes"] == 5
    assert fake_duo_admin.state() == before


# --- the process ----------------------------------------------------------------------------------------


def test_seed_example_serves_alice_bob_and_carol_and_reset_goes_back_to_it(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--seed-example")
    try:
        fake = server.controller
        admin = fake.admin_client()
        users = {u["username"]: u for u in admin.get_users()}
        assert sorted(users) == ["alice", "bob", "carol"]
        assert users["alice"]["email"] == "alice@example.test"
        assert [g["name"] for g in users["alice"]["groups"]] == ["crm-users"]
        assert [g["name"] for g in users["carol"]["groups"]] == ["crm-users", "admins"]
        assert users["bob"]["groups"] == []
        fake.delete_user(duo_user_id("alice"))
        fake.reset()
        assert len(admin.get_users()) == 3
    finally:
        stop_server(server)
    assert server.process.returncode == 0  # SIGTERM stops it cleanly


def test_state_file_is_the_starting_state(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"users": [duo_user("dave", status="bypass")], "groups": []}))
    server = start_server(tmp_path, "--state", str(state))
    try:
        assert [(u["username"], u["status"]) for u in server.controller.admin_client().get_users()] == [
            ("dave", "bypass")
        ]
    finally:
        stop_server(server)


def test_without_credentials_the_server_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_DUO_")}
    done = subprocess.run(
        [sys.executable, "-m", "tests.fakeduo.admin_api", "--port", "0", "--cert", "x", "--key", "y"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 2 and "FAKE_DUO_IKEY" in done.stderr and "READY" not in done.stdout
