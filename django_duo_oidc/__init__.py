"""django-duo-oidc: Cisco Duo Single Sign-On (OpenID Connect) for Django.

Nothing but the version lives here: this module is imported before the app registry is ready.
"""

from __future__ import annotations

__version__ = "0.1.0"
