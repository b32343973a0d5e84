"""Keeping a session's grant current (:mod:`.revalidation`): refresh, introspection, once per freshness
window for all workers (single-flight), the session ended or marked stale when the provider says so.

May import: :mod:`django_duo_oidc.login` (the session's stored login), :mod:`django_duo_oidc.providers`,
:mod:`django_duo_oidc.models`, :mod:`django_duo_oidc.signals`, :mod:`django_duo_oidc.state`,
:mod:`django_duo_oidc.conf`, :mod:`django_duo_oidc.core`.
"""
