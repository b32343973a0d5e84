"""A provider row put to work: discovery, keys, token endpoint calls (:mod:`.runtime`), the admin's
"Check connection" report (:mod:`.connection`), and the enabled rows as this process last read them
(:mod:`.enabled`, re-read every 5 s: the bearer registry's and the sessions' list).

May import: :mod:`django_duo_oidc.models`, :mod:`django_duo_oidc.state`, :mod:`django_duo_oidc.conf`,
:mod:`django_duo_oidc.core`.
"""
