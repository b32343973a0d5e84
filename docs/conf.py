"""Sphinx configuration of the documentation site (Markdown with MyST, the Furo theme).

Build it as CI does (warnings are errors)::

    python -m sphinx -W --keep-going -b html docs build/docs

The reference pages are generated from the code (``docs/_ext/duo_oidc_docs.py`` and autodoc), so Django
is set up here with a minimal configuration: nothing is read from the network or a database.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS / "_ext")]

import django  # noqa: E402
from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="docs-build-only",  # never serves a request
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "rest_framework",
            "django_duo_oidc",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        AUTHENTICATION_BACKENDS=["django_duo_oidc.backends.DuoOIDCBackend"],
        ROOT_URLCONF="django_duo_oidc.urls",
        USE_TZ=True,
    )
    django.setup()

import django_duo_oidc  # noqa: E402

project = "django-duo-oidc"
author = "the django-duo-oidc authors"
copyright = "the django-duo-oidc authors (MIT licence)"
release = version = django_duo_oidc.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "duo_oidc_docs",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
# docs/pypi.md is the package's long description (pyproject.toml), not a page of the site.
exclude_patterns = ["_build", "pypi.md"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
# The package's ``from __future__ import annotations`` hints name Django and requests types that autodoc
# can evaluate; those it cannot stay as written, which is what a reader wants anyway.
autodoc_preserve_defaults = True

# Messages, settings and code are quoted as written: no curly quotes.
smartquotes = False

html_theme = "furo"
html_title = f"django-duo-oidc {release}"
html_show_sourcelink = False
