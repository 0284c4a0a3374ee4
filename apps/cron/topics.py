"""Live topics of the cron pages.

* ``cron`` (the jobs list): any logged-in user may follow; the push is a trigger that makes the page re-fetch
  its table with its own filters (what each viewer sees is restricted when the table is read).
* ``cron.<job id>`` (a job's page, a run's page): whoever may read that job; each push re-fetches the run
  timeline at the page the viewer is on.

Publishing: :mod:`apps.cron.events` after commit (the services, the scheduler and the workers call it).
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse

from apps.core import topics
from apps.cron import selectors
from apps.cron.events import JOBS


def _job_id(name: str) -> int | None:
    _, _, raw = name.partition(".")
    return int(raw) if raw.isdigit() else None


def authorize(user: Any, name: str) -> bool:
    """Rule: the jobs list, any logged-in user (rows are restricted when read); a job's page, whoever may
    read that job."""
    if name == JOBS:
        return topics.authenticated(user, name)
    pk = _job_id(name)
    return pk is not None and topics.authenticated(user, name) and selectors.job(user, pk) is not None


def _refresh(target: str, url: str, include: str) -> str:
    return render_to_string("core/_refresh.html", {"target": target, "url": url, "include": include})


def render(user: Any, name: str, payload: dict[str, Any]) -> str:
    if name == JOBS:
        return _refresh("cron-jobs", reverse("cron:jobs-table"), "#cron-filters, #cron-jobs-page")
    pk = _job_id(name)
    if pk is None or selectors.job(user, pk) is None:
        return ""
    return _refresh("cron-runs", reverse("cron:runs", args=[pk]), "#cron-runs-page")


def register() -> None:
    topics.register(JOBS, authorize=authorize, render=render)


register()
