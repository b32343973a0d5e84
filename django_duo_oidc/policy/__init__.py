"""Scope policy on every request: :class:`~django_duo_oidc.core.scopes.Requirement` judged by one check
(:mod:`.check`) for the decorator (:mod:`.decorators`), the mixin (:mod:`.mixins`) and the rules for
views you don't own (:mod:`.rules`); sessions and bearer tokens alike, through ``request.oidc``.

May import: :mod:`django_duo_oidc.resource` (RFC 6750 answers for bearer requests, token
authentication), :mod:`django_duo_oidc.guards`, :mod:`django_duo_oidc.models`,
:mod:`django_duo_oidc.signals`, :mod:`django_duo_oidc.conf`, :mod:`django_duo_oidc.core`.
"""
