"""Live sessions per user and provider: end every session of a user in one call; OIDC Back-Channel Logout.

May import: providers, guards, models, signals, state, conf, core.
"""

from __future__ import annotations
