"""System checks with stable ids (``manage.py check``; deployment ones with ``check --deploy``).

Over 300 lines on purpose: every check is registered from this module, so that its docstring stays the
one list of ids (the second factor's own checks live in :mod:`django_duo_oidc.mfa.checks`).

duo_oidc.E001  DuoOIDCBackend is not in AUTHENTICATION_BACKENDS
duo_oidc.E002  SessionMiddleware or AuthenticationMiddleware is missing
duo_oidc.E003  DuoOIDCMiddleware is missing, or placed before AuthenticationMiddleware
duo_oidc.E004  unknown key in DUO_OIDC
duo_oidc.E005  a provider stores an encrypted secret but DUO_OIDC["ENCRYPTION_KEYS"] is empty
duo_oidc.E006  DUO_OIDC["ENCRYPTION_KEYS"] holds an invalid key
duo_oidc.E007  the signed-cookie session backend (or one built on it) would put tokens in a cookie
duo_oidc.E008  a provider's client_secret_env names a variable outside DUO_OIDC["SECRET_ENV_PREFIXES"] (also
               with check --deploy)
duo_oidc.E009  DUO_OIDC["SCOPE_POLICY"] is malformed (every request would fail)
duo_oidc.E140  a provider's issuer or an endpoint is Duo's api-*.duosecurity.com host (MFA-only, not an OpenID provider)
duo_oidc.E141  a provider's introspect_with names itself, a circle, or a disabled row
duo_oidc.W001  (deploy) a provider's issuer is plain http while DEBUG is off
duo_oidc.W002  (deploy) SESSION_COOKIE_SECURE is off
duo_oidc.W003  a provider's client-secret environment variable is not set (also with check --deploy)
duo_oidc.W004  (deploy) the cache is per process (local memory or dummy) while DEBUG is off
duo_oidc.W005  SESSION_ENGINE keeps sessions in the browser: back-channel logout and deprovisioning cannot end them
duo_oidc.E101-E108, W101-W105  the second factor (Duo Universal Prompt): see django_duo_oidc.mfa.checks
duo_oidc.W160  a Django Ninja operation lists DuoBearer after another auth (that auth's callers skip its scopes)
duo_oidc.W161  a DRF view lists DuoBearerAuthentication after another authentication class
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.db import Error as DBError

from .conf import conf

BACKEND = "django_duo_oidc.backends.DuoOIDCBackend"
MIDDLEWARE = "django_duo_oidc.middleware.DuoOIDCMiddleware"
SESSION_MW = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH_MW = "django.contrib.auth.middleware.AuthenticationMiddleware"
PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if BACKEND not in settings.AUTHENTICATION_BACKENDS:
        errors.append(
            Error(
                "DuoOIDCBackend is not in AUTHENTICATION_BACKENDS, so logins through Duo cannot complete.",
                hint=f"Add '{BACKEND}' to AUTHENTICATION_BACKENDS.",
                id="duo_oidc.E001",
            )
        )
    middleware = list(settings.MIDDLEWARE)
    for name in (SESSION_MW, AUTH_MW):
        if name not in middleware:
            errors.append(
                Error(f"'{name}' is not in MIDDLEWARE.", hint=f"Add '{name}' to MIDDLEWARE.", id="duo_oidc.E002")
            )
    if MIDDLEWARE not in middleware or (
        AUTH_MW in middleware and middleware.index(MIDDLEWARE) < middleware.index(AUTH_MW)
    ):
        errors.append(
            Error(
                "DuoOIDCMiddleware is missing from MIDDLEWARE or placed before AuthenticationMiddleware.",
                hint=f"Add '{MIDDLEWARE}' to MIDDLEWARE after '{AUTH_MW}'.",
                id="duo_oidc.E003",
            )
        )
    from .policy.rules import policy_problems

    for problem in policy_problems(getattr(settings, "DUO_OIDC", {}).get("SCOPE_POLICY", [])):
        errors.append(
            Error(
                problem + " Every request would fail.",
                hint='Rules look like {"path": "/admin/", "scopes": ["admin.access"]}: see docs/howto/scope-rules.md.',
                id="duo_oidc.E009",
            )
        )
    for key in conf.unknown_keys():
        errors.append(
            Error(
                f"Unknown setting DUO_OIDC[{key!r}].",
                hint="Check the spelling against the settings reference, docs/reference/settings.md (the keys of "
                "DEFAULTS in django_duo_oidc/conf.py).",
                id="duo_oidc.E004",
            )
        )
    for key in conf.encryption_keys:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            errors.append(
                Error(
                    'DUO_OIDC["ENCRYPTION_KEYS"] holds a key that is not a valid Fernet key.',
                    hint="Generate one with cryptography.fernet.Fernet.generate_key().",
                    id="duo_oidc.E006",
                )
            )
            break
    from .sessions.index import stores_sessions_in_browser

    in_browser = stores_sessions_in_browser()
    if in_browser:
        errors.append(
            Error(
                "The signed-cookie session backend would store access and refresh tokens in a browser cookie.",
                hint="Use a server-side session backend (db, cache or cached_db).",
                id="duo_oidc.E007",
            )
        )
    if in_browser:
        errors.append(
            Warning(
                "SESSION_ENGINE keeps sessions in the browser: back-channel logout, deprovisioning and the "
                "admin's 'End sessions' cannot end them (a session cookie stays valid until it expires).",
                hint="Use a server-side session backend (db, cache or cached_db).",
                id="duo_oidc.W005",
            )
        )
    return errors


def check_providers(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Checks that read the Provider table: run only when the check is given databases (e.g. migrate)."""
    if not databases:
        return []
    errors: list[CheckMessage] = []
    providers = _read_providers()
    if providers is None:
        return []
    if not conf.encryption_keys and any(p.client_secret_encrypted for p in providers):
        errors.append(
            Error(
                "A provider stores an encrypted client secret, but DUO_OIDC['ENCRYPTION_KEYS'] is empty.",
                hint="Restore the key it was encrypted with, or give the provider an environment variable instead.",
                id="duo_oidc.E005",
            )
        )
    errors += _check_authorization_servers(providers)
    return errors


def _read_providers() -> list[Any] | None:
    """Every provider row, or None when there is no table to read (see :func:`_read_rows`)."""
    from .models import Provider

    return _read_rows(lambda: list(Provider.objects.all()))


def _read_rows(read: Callable[[], list[Any]]) -> list[Any] | None:
    """What ``read`` reads from the database, or None when there is no table to read (not migrated yet,
    no database configured, the database down): a check never fails on that. Django 6 gives every check
    the database aliases even without ``--database``, so a check run with no database reaches here."""
    try:
        return read()
    except (DBError, ImproperlyConfigured):
        return None


def check_secret_variables(providers: list[Any]) -> list[CheckMessage]:
    """``E008`` (a variable outside ``SECRET_ENV_PREFIXES``) and ``W003`` (a variable not set in this
    process) for ``providers``; each message's ``obj`` is the provider row."""
    from .models import secret_env_refusal

    errors: list[CheckMessage] = []
    for p in providers:
        if p.client_secret_env and secret_env_refusal(p.client_secret_env):
            # Not whether it is set: only allowed variables are looked at.
            errors.append(
                Error(
                    f"Provider {p.slug!r} reads its client secret from ${p.client_secret_env}, which is not an "
                    "allowed name: logins and calls through it fail.",
                    hint="Rename the variable to start with one of DUO_OIDC['SECRET_ENV_PREFIXES'] "
                    "(default DUO_ or OIDC_), or add its prefix there.",
                    obj=p,
                    id="duo_oidc.E008",
                )
            )
        elif p.client_secret_env and not os.environ.get(p.client_secret_env):
            errors.append(
                Warning(
                    f"Provider {p.slug!r} reads its client secret from ${p.client_secret_env}, which is not set.",
                    hint="Set the variable in the environment of every process that serves logins.",
                    obj=p,
                    id="duo_oidc.W003",
                )
            )
    return errors


def _check_authorization_servers(providers: list[Any]) -> list[CheckMessage]:
    """Rows the model's validation would refuse, written around it (a shell, a data migration)."""
    from .core.discovery import duo_api_host_refusal
    from .models import ENDPOINT_FIELDS

    errors: list[CheckMessage] = []
    by_pk = {p.pk: p for p in providers}
    for p in providers:
        for name in ("issuer", *ENDPOINT_FIELDS):
            refusal = duo_api_host_refusal(getattr(p, name))
            if refusal:
                errors.append(Error(f"Provider {p.slug!r}: its {name} is wrong. {refusal}", obj=p, id="duo_oidc.E140"))
                break
        other = by_pk.get(p.introspect_with_id) if p.introspect_with_id else None
        if other is not None and (other.pk == p.pk or other.introspect_with_id == p.pk or not other.enabled):
            errors.append(
                Error(
                    f"Provider {p.slug!r} has its tokens introspected by {other.slug!r}, which is itself, introspects "
                    "for it in turn, or is disabled: its bearer tokens are refused.",
                    hint="Point introspect_with at an enabled provider row of the server that introspects globally.",
                    obj=p,
                    id="duo_oidc.E141",
                )
            )
    return errors


def check_deploy(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Deployment warnings in the manner of ``check --deploy``.

    A deploy check may read the provider table (it runs against the production database on purpose):
    ``check --deploy`` says ``W003``/``E008``, with or without ``--database``. They are deploy checks only:
    Django 6 passes every check the database aliases whether or not ``--database`` was given, so a
    database check cannot tell a run that also says them from one that does not (and they would be said
    twice, or not at all).
    """
    errors: list[CheckMessage] = []
    if not settings.SESSION_COOKIE_SECURE:
        errors.append(
            Warning(
                "SESSION_COOKIE_SECURE is off: the session that holds the login can be sent over plain http.",
                hint="Set SESSION_COOKIE_SECURE = True.",
                id="duo_oidc.W002",
            )
        )
    backend = settings.CACHES.get(conf.cache_alias, {}).get("BACKEND", "")
    if not settings.DEBUG and backend in PER_PROCESS_CACHES:
        errors.append(
            Warning(
                f"The cache {conf.cache_alias!r} ({backend.rsplit('.', 1)[-1]}) is kept by each worker process for "
                "itself: freshness checks, provider metadata, JWKS refetch limits and login-state claims are not "
                "shared, so each worker asks the provider on its own and a revocation is seen worker by worker.",
                hint="Use a cache all workers share, such as django.core.cache.backends.redis.RedisCache "
                "(or point DUO_OIDC['CACHE_ALIAS'] at one).",
                id="duo_oidc.W004",
            )
        )
    providers = _read_providers() or []
    errors += check_secret_variables(providers)
    if not settings.DEBUG:
        for slug in [p.slug for p in providers if p.issuer.lower().startswith("http://")]:
            errors.append(
                Warning(
                    f"Provider {slug!r} has a plain http issuer while DEBUG is off: codes travel unencrypted.",
                    hint="Use the https issuer from the Duo application's Metadata tab.",
                    id="duo_oidc.W001",
                )
            )
    return errors


def check_mfa(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The second-factor configurations (a table read: run only when the check is given databases)."""
    from .mfa.checks import check_configuration
    from .models import MFAConfiguration

    if not databases:
        return []
    configs = _read_rows(lambda: list(MFAConfiguration.objects.all())) or []
    return [message for config in configs for message in check_configuration(config)]


def check_mfa_deploy(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``check --deploy --database default``: ask Duo's health check with each enabled second-factor
    configuration, so that credentials of the wrong Duo application type (``unauthorized_request``,
    DUO.md 3) or a wrong secret (40002) are caught before a user meets them. A network call, so only
    in the deploy checks, and only when the check is given databases."""
    from .mfa.checks import check_credentials_at_duo
    from .models import MFAConfiguration

    if not databases:
        return []
    configs = _read_rows(lambda: list(MFAConfiguration.objects.filter(enabled=True))) or []
    return [message for config in configs for message in check_credentials_at_duo(config)]


def check_api_auth_order(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W160/W161: in the root URLconf, a bearer auth listed after another one.

    Ninja and DRF stop at the first auth that accepts a request: with ``auth=[django_auth,
    DuoBearer(scopes=...)]`` a session is served without the scopes (and a refused token is never
    seen), and with ``[SessionAuthentication, DuoBearerAuthentication]`` a session stands in for a
    token that would have been refused. Both want the bearer auth first.
    """
    from django.urls import URLPattern, URLResolver, get_resolver

    from .resource.metadata import ninja_operations

    def bearer(auth: Any) -> bool:
        return bool(getattr(auth, "duo_oidc_bearer", False))

    def late(auths: Any) -> bool:
        auths = list(auths or ())
        return any(bearer(auth) and not all(bearer(a) for a in auths[:i]) for i, auth in enumerate(auths))

    found: list[CheckMessage] = []

    def walk(patterns: Any, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                for operation in ninja_operations(pattern.callback) or ():
                    if late(operation.auth_callbacks):
                        found.append(
                            Warning(
                                f"{'/'.join(operation.methods)} /{route}: DuoBearer is listed after another auth; "
                                "a request that auth accepts skips DuoBearer's scopes and max_age.",
                                hint="Put DuoBearer(...) first in the operation's auth list.",
                                id="duo_oidc.W160",
                            )
                        )
                view_class = getattr(pattern.callback, "cls", None)
                if view_class is not None and late(getattr(view_class, "authentication_classes", ())):
                    found.append(
                        Warning(
                            f"{view_class.__qualname__} (/{route}) lists DuoBearerAuthentication after another "
                            "authentication class: a session stands in for a bearer token that would be refused.",
                            hint="Put DuoBearerAuthentication first in authentication_classes.",
                            id="duo_oidc.W161",
                        )
                    )

    try:
        walk(get_resolver().url_patterns, "")
    except Exception:  # a broken URLconf is for Django's own URL checks to report
        return []
    return found
