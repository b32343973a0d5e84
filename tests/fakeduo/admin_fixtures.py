"""Fixtures for the fake Duo Admin API server (tests/fakeduo/admin_api.py): see its module docstring."""

from __future__ import annotations
