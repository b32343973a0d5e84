"""Live sessions per user and provider: end every session of a user in one call; OIDC Back-Channel Logout."""

from __future__ import annotations
