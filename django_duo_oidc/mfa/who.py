"""Who must pass Duo after the password, under which Duo username, and the configuration in force.

Staff and superusers always must when the second factor is on: the admin login always goes through Duo,
and an account that can reach the admin must not get there through another password login without it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import Error as DBError
from django.db import connections, router

from ..models import MFAConfiguration

__all__ = ["active_config", "duo_username", "must_use_duo", "reset_config_memo"]

logger = logging.getLogger("django_duo_oidc")

# The middleware reads the configuration at most this often per process (login views read it fresh).
CONFIG_TTL = 5.0
_memo: tuple[float, MFAConfiguration | None] = (0.0, None)


def active_config(*, fresh: bool = False) -> MFAConfiguration | None:
    """The enabled configuration, or None. ``fresh=False`` may answer from this process's memory (5 s)."""
    global _memo
    now = time.monotonic()
    if not fresh and now < _memo[0]:
        return _memo[1]
    try:
        config = MFAConfiguration.objects.active()
    except DBError:
        if _table_exists():
            raise  # the database failed: as for every other query, not a reason to skip the second factor
        # Code deployed before `migrate`: the second factor cannot have been turned on yet.
        logger.warning("The second factor's table does not exist yet: run manage.py migrate")
        return None
    if config is not None:
        config.group_ids = frozenset(config.groups.values_list("pk", flat=True))
    _memo = (now + CONFIG_TTL, config)
    return config


def _table_exists() -> bool:
    table = MFAConfiguration._meta.db_table
    connection = connections[router.db_for_read(MFAConfiguration)]
    try:
        with connection.cursor() as cursor:
            return table in connection.introspection.table_names(cursor)
    except DBError:
        return True  # cannot tell: assume it exists (the caller then re-raises)


def reset_config_memo(**kwargs: Any) -> None:
    """Forget the memorised configuration (connected to the configuration's save and delete signals)."""
    global _memo
    _memo = (0.0, None)


def must_use_duo(user: Any, config: MFAConfiguration | None) -> bool:
    """Whether ``user`` must pass Duo after the password under ``config`` (None: the feature is off)."""
    if config is None or not getattr(user, "is_authenticated", False):
        return False
    if user.is_staff or user.is_superuser or config.who == MFAConfiguration.Who.ALL:
        return True
    if config.who == MFAConfiguration.Who.GROUPS:
        group_ids = config.group_ids
        if group_ids is None:
            group_ids = frozenset(config.groups.values_list("pk", flat=True))
        return bool(group_ids) and user.groups.filter(pk__in=group_ids).exists()
    return False


def duo_username(user: Any, config: MFAConfiguration) -> str:
    """The username sent to Duo for ``user`` (its Django username or email), "" when it has none."""
    if config.username_from == MFAConfiguration.UsernameFrom.EMAIL:
        return str(getattr(user, "email", "") or "")
    return str(user.get_username() or "")
