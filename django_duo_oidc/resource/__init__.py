"""Bearer access tokens for this site's APIs (OAuth 2.0 resource server).

- :mod:`.registry`: which providers' tokens are trusted, by issuer and audience;
- :mod:`.validation`: is a token valid, for whom, with which scopes (JWT checks, introspection,
  the introspection budget), and :mod:`.memory`: what a process remembers of tokens it judged;
- :mod:`.context`: ``request.oidc`` and ``request.user`` of a bearer request (:func:`authenticate`);
- :mod:`.answers`: RFC 6750 refusals; :mod:`.metadata`: the RFC 9728 document;
- :mod:`.views`: ``@bearer_auth``, ``BearerAuthMixin``, and which views answer to tokens.

May import: :mod:`django_duo_oidc.providers`, :mod:`django_duo_oidc.models`, :mod:`django_duo_oidc.signals`,
:mod:`django_duo_oidc.state`, :mod:`django_duo_oidc.guards`, :mod:`django_duo_oidc.conf`,
:mod:`django_duo_oidc.core`. Never :mod:`django_duo_oidc.policy` (which imports this package).
"""

from __future__ import annotations


def reset() -> None:
    """Forget the providers, tokens and linked users this process has seen (tests; after changing
    providers in code)."""
    from ..providers import enabled
    from . import answers, identities, memory, validation

    enabled.forget()  # the providers, read again by the bearer registry and the sessions' check
    validation._fetch_failed.clear()
    identities._forget()
    identities._shared.update({"seen": None, "next": 0.0})
    memory.forget()
    answers._invalid_token_answers.clear()
