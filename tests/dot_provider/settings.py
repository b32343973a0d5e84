"""Settings of the django-oauth-toolkit provider run by the e2e tier (an OpenID provider, not the RP).

Environment: ``DOT_ISSUER`` (``http://127.0.0.1:<port>/o``), ``DOT_DB_PATH`` (its own SQLite file),
``DOT_RSA_KEY_FILE`` (the PEM private key that signs ID tokens), ``DOT_ACCESS_TOKEN_SECONDS``.
"""

from __future__ import annotations

import os
from pathlib import Path

SECRET_KEY = "dot-provider-test-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.dot_provider.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "oauth2_provider",
    "tests.dot_provider",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("DOT_DB_PATH", ":memory:")}}
STATIC_URL = "static/"
LOGIN_URL = "/accounts/login/"
# The RP (the example project) runs on the same host, another port: cookies are per host, not per
# port, so both sites' "sessionid" would overwrite each other in one browser. Distinct names.
SESSION_COOKIE_NAME = "dot_sessionid"
CSRF_COOKIE_NAME = "dot_csrftoken"
# Test speed only: PBKDF2 makes every password and client-secret check ~0.3 s (DOT hashes secrets).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

_key_file = os.environ.get("DOT_RSA_KEY_FILE")
OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": Path(_key_file).read_text() if _key_file else "",
    # Set explicitly, as DOT's docs advise; otherwise it is derived from each request's Host.
    "OIDC_ISS_ENDPOINT": os.environ.get("DOT_ISSUER", ""),
    # DOT_VALIDATOR_CLASS=oauth2_provider.oauth2_validators.OAuth2Validator: stock DOT (ID tokens with sub only).
    "OAUTH2_VALIDATOR_CLASS": os.environ.get("DOT_VALIDATOR_CLASS", "tests.dot_provider.validators.ClaimsValidator"),
    "PKCE_REQUIRED": True,
    "SCOPES": {
        "openid": "OpenID Connect",
        "profile": "Your name and username",
        "email": "Your email address",
        "crm.contacts.read": "Read the CRM contacts",
    },
    "DEFAULT_SCOPES": ["openid"],
    # RP-Initiated Logout 1.0: no confirmation page when the id_token_hint names the logged-in user
    # (DOT's default, ALWAYS_PROMPT True, asks every time; without a hint it must ask, section 2).
    "OIDC_RP_INITIATED_LOGOUT_ENABLED": True,
    "OIDC_RP_INITIATED_LOGOUT_ALWAYS_PROMPT": False,
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(os.environ.get("DOT_ACCESS_TOKEN_SECONDS", "36000")),
    "ROTATE_REFRESH_TOKEN": True,
}
