"""The Duo Admin API directory: sync users and groups, deprovision, and the access review's data."""

from __future__ import annotations
