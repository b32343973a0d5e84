"""Settings of the example project: a small site that shows every feature of django-duo-oidc."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

DEBUG = os.environ.get("DJANGO_DEBUG", "1").lower() not in ("0", "false", "no", "off")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-only-not-a-secret")
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_duo_oidc",
    "example_project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_duo_oidc.middleware.DuoOIDCMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "django_duo_oidc.backends.DuoOIDCBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "example_project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = "example_project.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}
# PostgreSQL when DJANGO_PG_PORT is set (the test run's second leg starts one on loopback).
if os.environ.get("DJANGO_PG_PORT"):
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("DJANGO_PG_HOST", "127.0.0.1"),
        "PORT": os.environ["DJANGO_PG_PORT"],
        "NAME": os.environ.get("DJANGO_PG_NAME", "duo_example"),
        "USER": os.environ.get("DJANGO_PG_USER", "postgres"),
    }
# Several worker processes must share one cache (discovery, JWKS, single-flight refresh, introspection).
if os.environ.get("DJANGO_REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["DJANGO_REDIS_URL"],
            "KEY_PREFIX": "example",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LOGIN_URL = "duo_oidc:login"
LOGIN_REDIRECT_URL = "/me/"
LOGOUT_REDIRECT_URL = "/"

STATIC_URL = "static/"
USE_TZ = True
# Times on pages and in the admin (the access review's last Duo login) are shown in this zone.
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG

DUO_OIDC = {
    "ENCRYPTION_KEYS": [k for k in os.environ.get("DUO_OIDC_ENCRYPTION_KEYS", "").split(",") if k],
    "REVALIDATE_SECONDS": float(os.environ.get("DUO_OIDC_REVALIDATE_SECONDS", "60")),
    # Tokens of providers whose introspection names only a username (django-oauth-toolkit): see
    # docs/howto/other-providers.md.
    "LINK_TOKENS_BY_USERNAME": os.environ.get("DUO_OIDC_LINK_TOKENS_BY_USERNAME", "") == "1",
    # The library's pages for a missing scope and a failed login, in this site's layout (its navigation).
    "FORBIDDEN_TEMPLATE": "example/forbidden.html",
    "ERROR_TEMPLATE": "example/error.html",
}

# Access logs record the callback URL: redact the authorization code and state in them.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_oauth": {"()": "django_duo_oidc.log_filters.RedactOAuthParams"}},
    "formatters": {"server": {"format": "[{server_time}] {message}", "style": "{"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact_oauth"]},
        "server": {"class": "logging.StreamHandler", "filters": ["redact_oauth"], "formatter": "server"},
    },
    "loggers": {
        "django_duo_oidc": {"handlers": ["console"], "level": "INFO"},
        "django.server": {"handlers": ["server"], "level": "INFO", "propagate": False},
    },
}
