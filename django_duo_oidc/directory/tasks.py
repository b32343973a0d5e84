"""The directory sync as a task for Django's Tasks framework, for sites that run a task worker.

``sync_directories`` is defined with ``django.tasks.task`` on Django 6.0 and later, else with the
``django-tasks`` backport (``pip install django-duo-oidc[tasks]``) on Django 5.2. Without either, this
module still imports and ``sync_directories`` is None: schedule ``manage.py duo_oidc_sync`` instead.

    from django_duo_oidc.directory.tasks import sync_directories
    sync_directories.enqueue()            # every enabled connection
    sync_directories.enqueue(slug="corp") # one

The task fails (its result is FAILED, with :class:`DirectorySyncFailed`) when a sync failed, so a
worker's monitoring sees it; each run is also on the connection (``last_sync_*``) and in the log.
"""

from __future__ import annotations

from typing import Any

import django

from .sync import sync_all

__all__ = ["DirectorySyncFailed", "sync_directories"]

task: Any
try:
    if django.VERSION >= (6, 0):
        from django.tasks import task
    else:
        from django_tasks import task
except ImportError:  # neither Django 6's tasks nor the backport: no task, the command still works
    task = None


class DirectorySyncFailed(RuntimeError):
    """A directory sync run by the task failed; the message is the runs' summaries (no secret)."""


def run_sync(slug: str | None = None, dry_run: bool = False, force: bool = False) -> list[dict[str, Any]]:
    """Sync one connection or every enabled one; return JSON-ready outcomes, raise when one failed."""
    results = sync_all(slug=slug, dry_run=dry_run, force=force)
    outcomes = [
        {"connection": r.connection, "ok": r.ok, "dry_run": r.dry_run, "summary": r.summary(), "counts": r.counts}
        for r in results
    ]
    failed = [o for o in outcomes if not o["ok"]]
    if failed:
        raise DirectorySyncFailed("; ".join(f"{o['connection']}: {o['summary']}" for o in failed))
    return outcomes


sync_directories: Any = task(run_sync) if task is not None else None
