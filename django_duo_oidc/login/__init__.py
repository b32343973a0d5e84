"""Login through the provider: the views (:mod:`.views`), the backend that puts claims onto users and
groups (:mod:`.backend`), what the session keeps of a pending and a completed login (:mod:`.session`),
and ``request.oidc`` for a session (:mod:`.context`).

May import: :mod:`django_duo_oidc.providers`, :mod:`django_duo_oidc.models`, :mod:`django_duo_oidc.signals`,
:mod:`django_duo_oidc.state`, :mod:`django_duo_oidc.conf`, :mod:`django_duo_oidc.core`.
"""
