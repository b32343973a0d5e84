"""The Duo Admin API directory: Duo's own client built from a connection row and "Check connection"
(:mod:`.client`), the sync's decisions on plain values (:mod:`.plan`), reading and writing the rows a
sync touches (:mod:`.store`), one run with its lock, listing, guard and transaction (:mod:`.sync`), and
the task for Django's Tasks framework (:mod:`.tasks`).

May import: :mod:`django_duo_oidc.resource`, :mod:`django_duo_oidc.freshness`, :mod:`django_duo_oidc.login`,
:mod:`django_duo_oidc.outbound`, :mod:`django_duo_oidc.sessions`, :mod:`django_duo_oidc.providers`,
:mod:`django_duo_oidc.models`, :mod:`django_duo_oidc.signals`, :mod:`django_duo_oidc.state`,
:mod:`django_duo_oidc.conf`, :mod:`django_duo_oidc.core`; ``duo_client``; ``django.tasks`` or ``django_tasks``.
"""

from __future__ import annotations
