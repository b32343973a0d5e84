"""Calling other APIs as this server: client credentials (:mod:`.client_credentials`).

``from django_duo_oidc.outbound import ClientCredentialsAuth, client_token`` is the documented path.

May import: :mod:`django_duo_oidc.providers`, :mod:`django_duo_oidc.models`, :mod:`django_duo_oidc.state`,
:mod:`django_duo_oidc.conf`, :mod:`django_duo_oidc.core`.
"""

from __future__ import annotations

from .client_credentials import ClientCredentialsAuth, ClientToken, client_token, forget_client_token

__all__ = ["ClientCredentialsAuth", "ClientToken", "client_token", "forget_client_token"]
