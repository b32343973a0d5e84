"""The example's pages. ``/me/`` and ``/me/upstream/`` answer a browser with a page and anything else
(``Accept: application/json``, ``*/*``, no ``Accept``, or ``?format=json``) with the JSON that scripts and
tests read: :func:`negotiated`."""

from __future__ import annotations

from typing import Any

import requests
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views import View
from django.views.decorators.csrf import ensure_csrf_cookie

from django_duo_oidc.core.errors import ProviderUnavailable, ReauthenticationRequired
from django_duo_oidc.directory.review import csv_response
from django_duo_oidc.login.renewal import login_again
from django_duo_oidc.models import Provider
from django_duo_oidc.outbound import UserTokenAuth
from django_duo_oidc.policy.decorators import scopes_required
from django_duo_oidc.policy.mixins import ScopesRequiredMixin
from django_duo_oidc.resource.views import bearer_auth

CONTACTS = [
    {"name": "Ada Lovelace", "email": "ada@example.test"},
    {"name": "Grace Hopper", "email": "grace@example.test"},
]


def wants_page(request: HttpRequest) -> bool:
    """True when the client prefers ``text/html`` to JSON (a browser) and did not ask ``?format=json``."""
    if request.GET.get("format") == "json":
        return False
    return request.get_preferred_type(["application/json", "text/html"]) == "text/html"


def negotiated(request: HttpRequest, data: dict[str, Any], template: str, status: int = 200) -> HttpResponse:
    """``data`` as a page (``template``, with ``data`` in its context) for a browser, else as JSON."""
    if wants_page(request):
        response: HttpResponse = render(request, template, {"data": data}, status=status)
    else:
        response = JsonResponse(data, status=status)
    patch_vary_headers(response, ["Accept"])  # one URL, two representations: caches must tell them apart
    return response


def home(request: HttpRequest) -> HttpResponse:
    providers = Provider.objects.filter(enabled=True, browser_login=True)
    return render(request, "home.html", {"providers": providers})


@ensure_csrf_cookie
def me(request: HttpRequest) -> HttpResponse:
    """Who am I: a page for a browser; as JSON the contract other checks read (``authenticated``,
    ``username``, ``email``, ``groups``, ``scopes``)."""
    user = request.user
    if not user.is_authenticated:
        return negotiated(request, {"authenticated": False}, "me.html")
    data = {
        "authenticated": True,
        "username": user.get_username(),
        "email": user.email,
        "groups": sorted(user.groups.values_list("name", flat=True)),
        "scopes": sorted(request.oidc.scopes),
    }
    return negotiated(request, data, "me.html")


@scopes_required("crm.contacts.read")
def contacts(request: HttpRequest) -> HttpResponse:
    """Needs the crm.contacts.read scope: anonymous -> login, without the scope -> 403 naming it."""
    return render(request, "contacts.html", {"contacts": CONTACTS})


class ContactsExportView(ScopesRequiredMixin, View):
    """The contacts as a CSV download. Needs the scope and an authentication at most 5 minutes old
    (step-up: Duo's prompt again). Cells that a spreadsheet would run as a formula are neutralised."""

    required_scopes = "crm.contacts.read"
    scopes_max_age = 300

    def get(self, request: HttpRequest) -> StreamingHttpResponse:
        return csv_response("contacts.csv", ["name", "email"], ([c["name"], c["email"]] for c in CONTACTS))


@bearer_auth
@scopes_required("crm.contacts.read")
def api_contacts(request: HttpRequest) -> JsonResponse:
    """The API twin of /contacts/: a bearer token with crm.contacts.read, from a user or a server.

    No or invalid token -> 401 with a Bearer challenge; without the scope -> 403 insufficient_scope.
    """
    caller = (
        {"client_id": request.oidc.client_id}
        if request.oidc.is_client
        else {"sub": request.oidc.sub, "username": request.user.get_username() or None}
    )
    return JsonResponse({"contacts": CONTACTS, "caller": caller, "scopes": sorted(request.oidc.scopes)})


# /me/upstream/ calls this site's own API. A site calling itself needs a second free worker: runserver is
# threaded, gunicorn needs --workers 2 (or --threads); with every worker busy the call would wait for
# itself, so it is bounded and answered with a 504 that says why.
UPSTREAM_TIMEOUT = 5.0


def upstream_session() -> requests.Session:
    """The HTTP session /me/upstream/ calls the API with (the tests mount an in-process adapter on it)."""
    return requests.Session()


def upstream_url(request: HttpRequest) -> str:
    """``EXAMPLE_UPSTREAM_URL``, else this site's own ``/api/contacts/`` at the host the request named
    (``request.get_host()`` is checked against ALLOWED_HOSTS: the user's token never goes to a host
    this site does not serve)."""
    return getattr(settings, "EXAMPLE_UPSTREAM_URL", "") or request.build_absolute_uri(reverse("api-contacts"))


@login_required
def me_upstream(request: HttpRequest) -> HttpResponse:
    """The whole chain in one page: call ``/api/contacts/`` with the signed-in user's access token (from
    the server, never through the browser) and show what the API saw: the user and the scopes."""
    url = upstream_url(request)
    try:
        with upstream_session() as http:
            answer = http.get(
                url, auth=UserTokenAuth(request, origins=[url]), timeout=UPSTREAM_TIMEOUT, allow_redirects=False
            )
    except ReauthenticationRequired as exc:
        return login_again(request, exc)
    except ProviderUnavailable as exc:
        return upstream_failed(request, "provider_unavailable", exc.description, 503)
    except requests.Timeout:
        message = (
            f"The API did not answer within {UPSTREAM_TIMEOUT:g} s. This site calls itself here: it needs another "
            "free worker (runserver is threaded; run gunicorn with --workers 2 or more, or --threads 2)."
        )
        return upstream_failed(request, "upstream_timeout", message, 504)
    except requests.RequestException as exc:
        message = f"The API could not be reached ({type(exc).__name__})."
        return upstream_failed(request, "upstream_unreachable", message, 502)
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    saw = {"caller": body.get("caller"), "scopes": body.get("scopes")} if answer.status_code == 200 else None
    data = {
        "api": reverse("api-contacts"),
        "status": answer.status_code,
        "api_saw": saw,
        "error": None if answer.status_code == 200 else answer.headers.get("WWW-Authenticate", ""),
    }
    return negotiated(request, data, "upstream.html", status=200 if answer.status_code == 200 else 502)


def upstream_failed(request: HttpRequest, error: str, message: str, status: int) -> HttpResponse:
    """/me/upstream/ when the API could not be asked: ``error`` (a code) and ``message`` (for a person)."""
    return negotiated(request, {"error": error, "message": message}, "upstream.html", status=status)
