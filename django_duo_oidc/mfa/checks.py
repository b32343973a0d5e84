"""System checks of the second-factor configuration (registered by ``django_duo_oidc.checks``).

duo_oidc.E101  the client id is not 20 characters (Duo's Web SDK client ids are)
duo_oidc.E102  the client secret is not 40 characters
duo_oidc.E103  the client secret cannot be read (variable unset or not allowed, undecryptable, none)
duo_oidc.E104  the API hostname is not a bare host name (no scheme, path or spaces; host:port allowed)
duo_oidc.E105  the second factor is on but the URLs (``duo_oidc:mfa-callback``) are not included
duo_oidc.E106  the second factor is on but DuoOIDCMiddleware (which enforces it) is not in MIDDLEWARE
duo_oidc.E107  the CA bundle named by ca_certs does not exist
duo_oidc.W101  the fail mode is open: when Duo cannot be reached, passwords alone log users in
duo_oidc.W102  the API hostname is not api-*.duosecurity.com (while DEBUG is off)
duo_oidc.W103  "who" is groups but no group is chosen: only staff and superusers use Duo
duo_oidc.W104  the second factor is on while Django REST framework takes passwords without it: HTTP Basic among
               its default authentication classes (DRF's own default), or ``rest_framework.authtoken``
               (whose ``obtain_auth_token`` trades a password for a token)
(check --deploy --database default, which asks Duo:)
duo_oidc.E108  Duo refuses the credentials: another application type than Web SDK (unauthorized_request),
               or a secret that does not match the client id (40002), or a TLS certificate refused
duo_oidc.W105  Duo's health check could not be reached from here
"""

from __future__ import annotations

import os
import re

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.urls import NoReverseMatch, reverse

from ..core.errors import ConfigurationError
from ..models import MFAConfiguration

__all__ = ["API_HOST", "DUO_API_HOST", "check_configuration", "check_credentials_at_duo", "drf_password_paths"]

MIDDLEWARE = "django_duo_oidc.middleware.DuoOIDCMiddleware"
DRF_BASIC = "rest_framework.authentication.BasicAuthentication"
# DRF's api_settings default for DEFAULT_AUTHENTICATION_CLASSES (rest_framework/settings.py).
DRF_DEFAULT_AUTHENTICATION = ("rest_framework.authentication.SessionAuthentication", DRF_BASIC)
# A host name or address, with an optional port; nothing else (no scheme, path, user info or spaces).
API_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?")
DUO_API_HOST = re.compile(r"api-[a-z0-9]+\.duosecurity\.com", re.IGNORECASE)


def drf_password_paths() -> list[str]:
    """Where Django REST framework, as configured, takes a password that never meets Duo (read from the
    settings; DRF is not imported). DRF counts as in use when it is installed as an app or configured."""
    installed = settings.INSTALLED_APPS
    configured = getattr(settings, "REST_FRAMEWORK", None)
    if "rest_framework" not in installed and configured is None:
        return []
    found = []
    classes = (configured or {}).get("DEFAULT_AUTHENTICATION_CLASSES", DRF_DEFAULT_AUTHENTICATION)
    if DRF_BASIC in classes:
        found.append("BasicAuthentication (HTTP Basic: the password on every request)")
    if "rest_framework.authtoken" in installed:
        found.append("rest_framework.authtoken (obtain_auth_token trades a password for a token)")
    return found


def check_configuration(config: MFAConfiguration) -> list[CheckMessage]:
    """The problems of ``config`` (which may be disabled: it is checked all the same)."""
    found: list[CheckMessage] = []
    where = f"Second factor configuration {config.name!r}"
    if len(config.client_id) != 20:
        found.append(
            Error(
                f"{where}: the client id has {len(config.client_id)} characters; Duo's have 20.",
                hint="Copy the Client ID of the Duo Admin Panel's Web SDK application.",
                id="duo_oidc.E101",
            )
        )
    try:
        secret = config.get_client_secret()
    except ConfigurationError as exc:
        found.append(
            Error(
                f"{where}: the client secret cannot be read: {exc.description}",
                hint="Set the environment variable in every process that serves logins, or type the secret again.",
                id="duo_oidc.E103",
            )
        )
    else:
        if len(secret) != 40:
            found.append(
                Error(
                    f"{where}: the client secret has {len(secret)} characters; Duo's have 40.",
                    hint="Copy the Client secret of the Duo Admin Panel's Web SDK application.",
                    id="duo_oidc.E102",
                )
            )
    if not API_HOST.fullmatch(config.api_host):
        found.append(
            Error(
                f"{where}: the API hostname {config.api_host!r} is not a host name.",
                hint="Give the bare API hostname, e.g. api-xxxxxxxx.duosecurity.com (no https://, no path).",
                id="duo_oidc.E104",
            )
        )
    elif not DUO_API_HOST.fullmatch(config.api_host) and not settings.DEBUG:
        found.append(
            Warning(
                f"{where}: the API hostname {config.api_host!r} is not a Duo API hostname (api-*.duosecurity.com).",
                hint="Copy the API hostname of the Duo Admin Panel's Web SDK application.",
                id="duo_oidc.W102",
            )
        )
    if config.ca_certs and not os.path.isfile(config.ca_certs):
        found.append(
            Error(
                f"{where}: the CA bundle {config.ca_certs!r} does not exist.",
                hint="Leave ca_certs empty to trust the Duo CAs the SDK pins.",
                id="duo_oidc.E107",
            )
        )
    if config.fail_mode == MFAConfiguration.FailMode.OPEN:
        found.append(
            Warning(
                f"{where}: the fail mode is open: while Duo cannot be reached, a password alone logs users in.",
                hint="Use the closed fail mode unless being locked out is worse than losing the second factor.",
                id="duo_oidc.W101",
            )
        )
    if config.who == MFAConfiguration.Who.GROUPS and config.pk and not config.groups.exists():
        found.append(
            Warning(
                f"{where}: Duo is required by group, but no group is chosen: only staff and superusers use Duo.",
                hint="Choose the groups, or require Duo of all users.",
                id="duo_oidc.W103",
            )
        )
    if config.enabled:
        try:
            reverse("duo_oidc:mfa-callback")
        except NoReverseMatch:
            found.append(
                Error(
                    f"{where}: the second factor is on, but its URLs are not included.",
                    hint='Add path("oidc/", include("django_duo_oidc.urls")) to your URLconf.',
                    id="duo_oidc.E105",
                )
            )
        paths = drf_password_paths()
        if paths:
            found.append(
                Warning(
                    f"{where}: the second factor is on, but Django REST framework accepts a password without "
                    f"it: {'; '.join(paths)}. No session is made, so the middleware cannot end it.",
                    hint="Set REST_FRAMEWORK['DEFAULT_AUTHENTICATION_CLASSES'] without BasicAuthentication (DRF's "
                    "default includes it), e.g. SessionAuthentication and DuoBearerAuthentication, and issue API "
                    "tokens only after a login that passed Duo.",
                    id="duo_oidc.W104",
                )
            )
        if MIDDLEWARE not in settings.MIDDLEWARE:
            found.append(
                Error(
                    f"{where}: the second factor is on, but {MIDDLEWARE} (which ends password sessions that "
                    "went around Duo) is not in MIDDLEWARE.",
                    hint=f"Add '{MIDDLEWARE}' to MIDDLEWARE after AuthenticationMiddleware.",
                    id="duo_oidc.E106",
                )
            )
    return found


def check_credentials_at_duo(config: MFAConfiguration) -> list[CheckMessage]:
    """Ask Duo's health check with ``config``'s credentials (a network call: deploy checks only)."""
    from ..core.errors import DuoOIDCError, ProviderUnavailable
    from .duo import client_for, health_check

    where = f"Second factor configuration {config.name!r}"
    try:
        # The health check sends no redirect URI; the SDK only wants one to be given.
        health_check(client_for(config, "https://localhost/oidc/mfa/callback/"))
    except ProviderUnavailable as exc:
        return [Warning(f"{where}: {exc.description}", hint="Run this check where the site runs.", id="duo_oidc.W105")]
    except DuoOIDCError as exc:
        return [
            Error(
                f"{where}: {exc.description}",
                hint="Use the Client ID, Client secret and API hostname of a Duo 'Web SDK' application "
                "(Applications > Protect an Application > Web SDK).",
                id="duo_oidc.E108",
            )
        ]
    return []
