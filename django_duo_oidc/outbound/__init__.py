"""Calling other APIs as this server: client credentials (:mod:`.client_credentials`); and for the
signed-in user, with the access token of their login (:mod:`.user_token`).

``from django_duo_oidc.outbound import ClientCredentialsAuth, client_token`` and
``from django_duo_oidc.outbound import UserTokenAuth, HttpxUserTokenAuth`` are the documented paths.

May import: :mod:`django_duo_oidc.providers`, :mod:`django_duo_oidc.models`, :mod:`django_duo_oidc.state`,
:mod:`django_duo_oidc.conf`, :mod:`django_duo_oidc.core`.
"""

from __future__ import annotations

from .client_credentials import ClientCredentialsAuth, ClientToken, client_token, forget_client_token
from .user_token import HttpxUserTokenAuth, TokenSource, UserTokenAuth

__all__ = [
    "ClientCredentialsAuth",
    "ClientToken",
    "HttpxUserTokenAuth",
    "TokenSource",
    "UserTokenAuth",
    "client_token",
    "forget_client_token",
]
