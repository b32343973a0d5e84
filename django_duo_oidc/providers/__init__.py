"""A provider row put to work: discovery, keys, token endpoint calls (:mod:`.runtime`), and the admin's
"Check connection" report (:mod:`.connection`).

May import: :mod:`django_duo_oidc.models`, :mod:`django_duo_oidc.state`, :mod:`django_duo_oidc.conf`,
:mod:`django_duo_oidc.core`.
"""
