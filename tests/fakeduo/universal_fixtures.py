"""Fixtures for the fake Duo Web SDK v4 server (tests/fakeduo/universal.py): see its module docstring."""

from __future__ import annotations
