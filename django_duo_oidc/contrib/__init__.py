"""Integrations with other frameworks: Django REST framework (:mod:`.drf`, the ``drf`` extra)."""
