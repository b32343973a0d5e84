"""RFC 7009 token revocation at logout: the refresh token first, then the access token.

Run by ``LogoutView`` after the Django session has ended, so a revocation that fails (provider down,
slow, refusing) never keeps anyone logged in: it is logged and logout goes on. Each call is bounded by
``HTTP_TIMEOUT``, and no call starts once ``HTTP_TIMEOUT`` has passed since the first.

Why both: RFC 7009 section 2.1 lets a server revoke the grant's access tokens with its refresh token
("SHOULD"), not must; an access token revoked too is refused by every API that introspects it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.views.decorators.debug import sensitive_variables

from ..conf import conf
from ..core.errors import DuoOIDCError
from ..models import Provider
from ..providers.runtime import ProviderRuntime
from . import session

__all__ = ["revoke_login_tokens"]

logger = logging.getLogger("django_duo_oidc")


@sensitive_variables()
def revoke_login_tokens(data: dict[str, Any] | None) -> list[str]:
    """Revoke the tokens of the ended login ``data`` when its provider row asks for it
    (``revoke_at_logout``) and has a revocation endpoint (published or set by hand).

    Returns the token types revoked (``["refresh_token", "access_token"]``), for logs and tests.
    Never raises.
    """
    if not data:
        return []
    try:
        provider = Provider.objects.filter(slug=data.get("provider")).first()
        if provider is None or not provider.revoke_at_logout:
            return []
        try:
            tokens = [("refresh_token", session.refresh_token(data)), ("access_token", session.access_token(data))]
        except session.UnreadableTokens:
            logger.warning("Logout: the tokens of provider %s could not be decrypted, so not revoked", provider.slug)
            return []
        runtime = ProviderRuntime(provider)
        deadline = time.monotonic() + conf.http_timeout
        revoked: list[str] = []
        for hint, token in tokens:
            if not token:
                continue
            if time.monotonic() >= deadline:
                logger.warning("Logout: no time left to revoke the %s at provider %s", hint, provider.slug)
                break
            try:
                if not runtime.revoke(token, token_type_hint=hint):
                    return revoked  # no revocation endpoint: nothing to do
            except DuoOIDCError as exc:
                logger.warning(
                    "Logout: could not revoke the %s at provider %s: %s", hint, provider.slug, exc.description
                )
                continue
            revoked.append(hint)
        if revoked:
            logger.info("Logout: revoked the %s at provider %s", " and ".join(revoked), provider.slug)
        return revoked
    except Exception as exc:  # logout must not fail because revocation did
        logger.warning("Logout: token revocation failed (%s)", type(exc).__name__)
        return []
