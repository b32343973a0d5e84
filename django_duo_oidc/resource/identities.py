"""Which user a bearer token's subject is linked to: the identity queries behind ``request.user``.

:mod:`.context` remembers their answers per process (``USER_TTL``); this module only asks the database.
"""

from __future__ import annotations

import functools
import logging

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist

from ..conf import conf
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
    (its ``preferred_username`` claim, kept in ``Identity.last_claims``); None when none or several do,
    and always None unless ``LINK_TOKENS_BY_USERNAME`` is on.

    Only this provider's identities, and only what this provider asserted at login (never the Django
    username, which an administrator or another provider may have chosen). Still only as good as the
    provider's usernames: one renamed and reused there would hand the old account to the new holder,
    hence the opt-in.
    """
    if not conf.link_tokens_by_username:
        return None
    identities = Identity.objects.filter(provider_id=provider.pk, last_claims__preferred_username=username)
    fields = ("user_id", "user__is_active") if users_have_is_active() else ("user_id",)
    rows = list(identities.values_list(*fields)[:2])
    if len(rows) > 1:
        logger.warning("Token username matches several identities of provider %s: linked to none", provider.slug)
        return None
    if not rows:
        return None
    return (rows[0][0], bool(rows[0][1]) if len(rows[0]) > 1 else True)
