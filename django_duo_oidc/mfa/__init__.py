"""Duo's Universal Prompt as the second factor after Django's own password login."""

from __future__ import annotations
