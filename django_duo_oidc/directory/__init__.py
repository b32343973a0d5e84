"""The Duo Admin API directory: sync users and groups, deprovisioning, and the access review's data.

May import: resource, freshness, login, outbound, sessions, providers, guards, models, signals, state, conf, core.
"""

from __future__ import annotations
