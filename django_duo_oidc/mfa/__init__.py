"""Duo's Universal Prompt (Web SDK v4) as the second factor after Django's own password login.

May import: resource, freshness, login, outbound, sessions, providers, guards, models, signals, state, conf, core.
"""

from __future__ import annotations
