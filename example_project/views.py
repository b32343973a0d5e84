from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from django_duo_oidc.models import Provider


def home(request: HttpRequest) -> HttpResponse:
    providers = Provider.objects.filter(enabled=True)
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
