"""Settings for the unit and integration tiers: SQLite in memory, local-memory cache, the fake provider."""

from __future__ import annotations

import os

from example_project.settings import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
# The second leg of `scripts/dev.py test` sets DJANGO_PG_PORT and DJANGO_REDIS_URL: the example
# settings imported above then already point at the PostgreSQL and Redis it started; otherwise SQLite
# in memory and the local-memory cache.
if not os.environ.get("DJANGO_PG_PORT"):
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
if not os.environ.get("DJANGO_REDIS_URL"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "duo-oidc-tests"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SESSION_COOKIE_SECURE = True
DUO_OIDC = {
    "HTTP_SESSION_FACTORY": "django_duo_oidc.testing.fakeop.session_factory",  # the shipped test kit's fake
    "ENCRYPTION_KEYS": ["ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg="],
}
LOGGING = {"version": 1, "disable_existing_loggers": False}
ROOT_URLCONF = "tests.urls"
INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework"]  # noqa: F405
# Not DRF's default (it adds HTTP Basic, a password without Duo's second factor: duo_oidc.W104).
REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"]}
