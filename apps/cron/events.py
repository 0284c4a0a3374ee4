"""Live topics of the cron pages and their payloads: the one place their names are built."""

from __future__ import annotations

from typing import Any, TypedDict

from apps.core.events import publish_many

JOBS = "cron"  # the jobs list; prefix of one job's page, ``cron.<id>``


def job(job_id: int) -> str:
    """One job's page (its run timeline)."""
    return f"{JOBS}.{job_id}"


class CronChanged(TypedDict):
    kind: str  # create, update, delete, suspend, resume, run
    job: int


def job_changed(job_obj: Any, kind: str) -> None:
    """After commit: the jobs list and the job's page re-render."""
    payload: CronChanged = {"kind": kind, "job": int(job_obj.pk)}
    publish_many([(JOBS, dict(payload)), (job(job_obj.pk), dict(payload))])


def runs_changed(job_ids: list[int], kind: str = "run") -> None:
    items: list[tuple[str, dict[str, object]]] = [(JOBS, {"kind": kind, "job": 0})]
    items += [(job(pk), {"kind": kind, "job": pk}) for pk in sorted(set(job_ids))]
    publish_many(items)
