"""Which user a bearer token's subject is linked to: the identity queries behind ``request.user``.

:mod:`.context` remembers their answers per process (``USER_TTL``); this module only asks the database.
"""

from __future__ import annotations

import functools
import logging

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist

from ..models import Identity, Provider

logger = logging.getLogger("django_duo_oidc")


@functools.cache
def users_have_is_active() -> bool:
    try:
        get_user_model()._meta.get_field("is_active")
    except FieldDoesNotExist:
        return False  # a custom user model without the field: every user may log in (AbstractBaseUser)
    return True


def identity_link(provider: Provider, sub: str) -> tuple[int, bool] | None:
    """``(user pk, may log in)`` of the identity ``(provider, sub)``, in one indexed query, or None."""
    identities = Identity.objects.filter(provider_id=provider.pk, sub=sub)
    if users_have_is_active():
        row = identities.values_list("user_id", "user__is_active")[:1]
        return (row[0][0], bool(row[0][1])) if row else None
    pks = identities.values_list("user_id", flat=True)[:1]
    return (pks[0], True) if pks else None


def identity_link_by_username(provider: Provider, username: str) -> tuple[int, bool] | None:
    """``(user pk, may log in)`` of the one identity of ``provider`` whose last login said ``username``
    (``preferred_username``), else whose user has it as username; None when none or several do.

    Only this provider's identities: the provider vouches for its own accounts' names, not for users
    another provider (or a password) made.
    """
    identities = Identity.objects.filter(provider_id=provider.pk)
    fields = ("user_id", "user__is_active") if users_have_is_active() else ("user_id",)
    for match in ({"last_claims__preferred_username": username}, {"user__username": username}):
        rows = list(identities.filter(**match).values_list(*fields)[:2])
        if len(rows) > 1:
            logger.warning("Token username matches several identities of provider %s: linked to none", provider.slug)
            return None
        if rows:
            return (rows[0][0], bool(rows[0][1]) if len(rows[0]) > 1 else True)
    return None
