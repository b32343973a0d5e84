"""The answers of a resource server that refuses a request (RFC 6750 section 3): status, JSON body,
``WWW-Authenticate`` with ``resource_metadata`` (RFC 9728 section 5.1).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, TypedDict

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import get_script_prefix

from .. import signals
from ..conf import conf
from ..core.bearer import (
    challenge,
)
from ..core.errors import (
    DuoOIDCError,
    InsufficientScope,
    InvalidRequest,
    TokenError,
    TokenExpired,
)
from ..core.scopes import format_scopes
from .metadata import metadata_url

logger = logging.getLogger("django_duo_oidc")


class _ChallengeBase(TypedDict):
    """The parameters every challenge of this site carries (RFC 6750 realm, RFC 9728 metadata URL)."""

    realm: str
    resource_metadata: str | None


def _challenge_base(request: HttpRequest) -> _ChallengeBase:
    return {"realm": conf.bearer_realm or request.get_host(), "resource_metadata": metadata_url(request)}


@dataclass(frozen=True)
class Refusal:
    """An RFC 6750 refusal: the status, the JSON body and the headers (``WWW-Authenticate`` included)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def refusal(
    request: HttpRequest,
    exc: DuoOIDCError | None,
    *,
    scope: frozenset[str] | None = None,
    max_age: int | None = None,
) -> Refusal:
    """Describe the answer to a refused bearer request; ``exc`` None means no credentials were sent."""
    base = _challenge_base(request)
    headers = {"Cache-Control": "no-store"}
    if exc is None:
        # RFC 6750 section 3: no credentials, so no error code.
        headers["WWW-Authenticate"] = challenge(**base)
        return Refusal(401, {"error_description": "This resource needs a bearer access token."}, headers)
    if max_age is not None:
        # RFC 9470 section 3: the authentication behind the token is too old for this resource.
        description = "A more recent authentication is required."
        error, status = "insufficient_user_authentication", 401
        headers["WWW-Authenticate"] = challenge(**base, error=error, description=description, max_age=max_age)
    elif isinstance(exc, InsufficientScope):
        error, status = "insufficient_scope", 403
        description = "The access token does not carry the scope this resource requires."
        headers["WWW-Authenticate"] = challenge(
            **base, error=error, description=description, scope=scope if scope is not None else exc.required
        )
    elif isinstance(exc, InvalidRequest):
        error, status, description = "invalid_request", 400, exc.description
        headers["WWW-Authenticate"] = challenge(**base, error=error, description=description)
    elif isinstance(exc, TokenError):
        # The description says no more than "expired" or "not valid": which check failed is logged, not told.
        error, status = "invalid_token", 401
        description = (
            "The access token has expired." if isinstance(exc, TokenExpired) else "The access token is not valid."
        )
        headers["WWW-Authenticate"] = challenge(**base, error=error, description=description)
    else:
        # The provider could not be asked (or is misconfigured): fail closed, and say it is temporary.
        error, status = "temporarily_unavailable", 503
        description = "The access token could not be checked with the identity provider right now."
        retry_after = getattr(exc, "retry_after", None) or max(1, int(conf.provider_down_backoff))
        headers["Retry-After"] = str(retry_after)
    return Refusal(status, {"error": error, "error_description": description}, headers)


# The answers to invalid tokens (the commonest refusal, and the one a flood sends), built once per
# host, scheme, realm and URLconf, since nothing else in them varies: a refusal then costs what an
# acceptance does. At most INVALID_TOKEN_ANSWERS_MAX hosts' worth (only hosts ALLOWED_HOSTS accepts).
INVALID_TOKEN_ANSWERS_MAX = 64
_invalid_token_answers: dict[tuple[Any, ...], tuple[int, bytes, dict[str, str]]] = {}


def error_response(
    request: HttpRequest,
    exc: DuoOIDCError | None,
    *,
    scope: frozenset[str] | None = None,
    max_age: int | None = None,
) -> HttpResponse:
    """The RFC 6750 answer for a refused bearer request, as a JSON response."""
    if isinstance(exc, TokenError) and scope is None and max_age is None:
        key = (
            request.get_host(),  # validated against ALLOWED_HOSTS, as building the answer would
            request.is_secure(),
            conf.bearer_realm,
            getattr(request, "urlconf", None) or settings.ROOT_URLCONF,  # where the metadata URL is
            get_script_prefix(),
            isinstance(exc, TokenExpired),
        )
        answer = _invalid_token_answers.get(key)
        if answer is None:
            refused = refusal(request, exc)
            answer = (refused.status, json.dumps(refused.body).encode(), refused.headers)
            if len(_invalid_token_answers) >= INVALID_TOKEN_ANSWERS_MAX:
                _invalid_token_answers.clear()
            _invalid_token_answers[key] = answer
        status, body, headers = answer
        return HttpResponse(body, status=status, content_type="application/json", headers=headers)
    refused = refusal(request, exc, scope=scope, max_age=max_age)
    return JsonResponse(refused.body, status=refused.status, headers=refused.headers)


def refuse_scope(request: HttpRequest, exc: InsufficientScope, *, view_name: str = "") -> HttpResponse:
    """Log and signal a bearer request without the scopes, and answer 403 insufficient_scope."""
    note_scope_denied(request, exc, view_name=view_name)
    return error_response(request, exc)


def note_scope_denied(request: HttpRequest, exc: InsufficientScope, *, view_name: str = "") -> None:
    """Log the denial and send ``scope_denied``, as for sessions."""
    # A BearerContext (resource.context, which imports this module): client_id and is_client are its own.
    context = request.oidc  # type: ignore[attr-defined]
    who = f"client {context.client_id}" if context.is_client else f"sub {context.sub}"
    logger.warning(
        "Scope denied: bearer %s view=%s missing=%s", who, view_name or request.path, format_scopes(exc.missing)
    )
    signals.send_scope_denied(request, exc, view_name=view_name)
