"""Create the provider's users and clients (idempotent): ``manage dot_bootstrap --rp-base URL``.

- users ``alice`` and ``bob`` (password from ``DOT_PASSWORD``);
- ``duo-site``: the RP (the example project), a confidential OIDC client (RS256 ID tokens, PKCE,
  secret from ``DOT_SITE_SECRET``), redirect ``<rp>/oidc/callback/``, post-logout redirect ``<rp>/``;
  DOT lets any confidential client introspect, so its credentials also serve introspection;
- ``crm-app``: a public native client (PKCE) whose users' tokens are sent to the RP's API;
- ``crm-service``: a confidential client-credentials client (DOT allows one grant type per client).
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from oauth2_provider.models import get_application_model

NATIVE_REDIRECT = "http://127.0.0.1/crm-app/callback"


class Command(BaseCommand):
    help = "Create the DOT test provider's users and clients."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rp-base", required=True, help="The RP's origin, e.g. http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        rp = options["rp_base"].rstrip("/")
        password = os.environ["DOT_PASSWORD"]
        secret = os.environ["DOT_SITE_SECRET"]
        users = get_user_model().objects
        for name, full in (("alice", "Alice Liddell"), ("bob", "Bob Builder")):
            user = users.filter(username=name).first() or users.create_user(name)
            user.email = f"{name}@example.test"
            user.first_name, user.last_name = full.split()
            user.set_password(password)
            user.save()
        Application = get_application_model()
        Application.objects.update_or_create(
            client_id="duo-site",
            defaults={
                "name": "Example site (django-duo-oidc)",
                "client_type": Application.CLIENT_CONFIDENTIAL,
                "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
                "client_secret": secret,
                "redirect_uris": f"{rp}/oidc/callback/",
                # RP-Initiated Logout 1.0 section 3: only a registered URI is redirected to.
                "post_logout_redirect_uris": f"{rp}/",
                "algorithm": Application.RS256_ALGORITHM,
            },
        )
        Application.objects.update_or_create(
            client_id="crm-app",
            defaults={
                "name": "CRM desktop app",
                "client_type": Application.CLIENT_PUBLIC,
                "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
                "client_secret": "",
                "redirect_uris": NATIVE_REDIRECT,
                "skip_authorization": True,
            },
        )
        Application.objects.update_or_create(
            client_id="crm-service",
            defaults={
                "name": "CRM sync service",
                "client_type": Application.CLIENT_CONFIDENTIAL,
                "authorization_grant_type": Application.GRANT_CLIENT_CREDENTIALS,
                "client_secret": secret,
            },
        )
        self.stdout.write("bootstrapped")
