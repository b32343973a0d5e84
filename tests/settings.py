"""Settings for the unit and integration tiers: SQLite in memory, local-memory cache, the fake provider."""

from __future__ import annotations

import os

from example_project.settings import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "duo-oidc-tests"}}
# The second leg of `scripts/dev.py test` runs everything on PostgreSQL and Redis it started itself.
if os.environ.get("DJANGO_PG_PORT"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "127.0.0.1",
            "PORT": os.environ["DJANGO_PG_PORT"],
            "NAME": "duo_unit",
            "USER": "postgres",
            "TEST": {"NAME": "test_duo_unit"},
        }
    }
if os.environ.get("DJANGO_REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["DJANGO_REDIS_URL"],
            "KEY_PREFIX": "tests",
        }
    }
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SESSION_COOKIE_SECURE = True
DUO_OIDC = {
    "HTTP_SESSION_FACTORY": "tests.fakeop.session_factory",
    "ENCRYPTION_KEYS": ["ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg="],
}
LOGGING = {"version": 1, "disable_existing_loggers": False}
ROOT_URLCONF = "tests.urls"
INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework"]  # noqa: F405
