"""The settings path of the backend: ``AUTHENTICATION_BACKENDS = ["django_duo_oidc.backends.DuoOIDCBackend"]``.

An entry point only, and it stays here: Django stores this path in every session (``_auth_user_backend``),
so moving it would log everybody out. The backend itself lives in :mod:`django_duo_oidc.login.backend`.
"""

from __future__ import annotations

from .login.backend import DuoOIDCBackend

__all__ = ["DuoOIDCBackend"]
