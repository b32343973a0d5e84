"""Integrations with other frameworks: Django REST framework (:mod:`.drf`, the ``drf`` extra) and
Django Ninja (:mod:`.ninja`, the ``ninja`` extra)."""

from __future__ import annotations
