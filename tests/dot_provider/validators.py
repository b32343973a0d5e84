"""The claims this provider adds to ID tokens and userinfo, as DOT's docs show (``get_additional_claims``).

Stock DOT sends only ``sub`` (the user's primary key): the RP would then name its user after a hash,
and a token introspected by ``username`` (DOT's RFC 7662 answer has no ``sub``) would find no user.
"""

from __future__ import annotations

from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator


class ClaimsValidator(OAuth2Validator):
    # OIDC Core 5.4: preferred_username and name under "profile", email under "email".
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "preferred_username": "profile"}

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        user = request.user
        return {
            "preferred_username": user.get_username(),
            "name": user.get_full_name() or user.get_username(),
            "email": user.email,
            "email_verified": True,
        }
