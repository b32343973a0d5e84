"""The Duo Admin API directory: Duo's own client built from a connection row and "Check connection"
(:mod:`.client`), the sync's decisions on plain values (:mod:`.plan`), reading and writing the rows a
sync touches (:mod:`.store`), one run with its lock, listing, guard and transaction (:mod:`.sync`), and
the task for Django's Tasks framework (:mod:`.tasks`).

May import: resource, freshness, login, outbound, sessions, providers, guards, models, signals, state, conf,
core (the layers below it); ``duo_client``; ``django.tasks`` or the ``django_tasks`` backport.
"""

from __future__ import annotations
