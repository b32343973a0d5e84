from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.generic import TemplateView

from django_duo_oidc.models import Provider
from django_duo_oidc.policy.decorators import scopes_required
from django_duo_oidc.policy.mixins import ScopesRequiredMixin
from django_duo_oidc.resource.views import bearer_auth

CONTACTS = [
    {"name": "Ada Lovelace", "email": "ada@example.test"},
    {"name": "Grace Hopper", "email": "grace@example.test"},
]


def home(request: HttpRequest) -> HttpResponse:
    providers = Provider.objects.filter(enabled=True, browser_login=True)
    return render(request, "home.html", {"providers": providers})


@ensure_csrf_cookie
def me(request: HttpRequest) -> JsonResponse:
    """Who am I: the contract other checks read (``authenticated``, ``username``, ``email``, ``groups``, ``scopes``)."""
    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"authenticated": False})
    return JsonResponse(
        {
            "authenticated": True,
            "username": user.get_username(),
            "email": user.email,
            "groups": sorted(user.groups.values_list("name", flat=True)),
            "scopes": sorted(request.oidc.scopes),
        }
    )


@scopes_required("crm.contacts.read")
def contacts(request: HttpRequest) -> HttpResponse:
    """Needs the crm.contacts.read scope: anonymous -> login, without the scope -> 403 naming it."""
    return render(request, "contacts.html", {"contacts": CONTACTS})


class ContactsExportView(ScopesRequiredMixin, TemplateView):
    """Needs the scope and an authentication at most 5 minutes old (step-up: Duo's prompt again)."""

    required_scopes = "crm.contacts.read"
    scopes_max_age = 300
    template_name = "contacts.html"

    def get_context_data(self, **kwargs: object) -> dict[str, object]:
        return {**super().get_context_data(**kwargs), "contacts": CONTACTS, "export": True}


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
