"""Compliance tasks on the ``analysis`` queue: one workload's evaluation (after the watcher saw it change) and the
periodic scan of everything, which records the history. Both tell the live pages when results changed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from apps.clusters.models import Workload
from apps.compliance import evaluation, events, history, notify
from apps.compliance.models import Result
from apps.core.tasking import icc_task

logger = logging.getLogger(__name__)


def _verdicts(workload_id: int) -> set[tuple[str, str, str]]:
    return set(Result.objects.filter(workload_id=workload_id).values_list("check_id", "status", "message"))


@icc_task(name="compliance.evaluate_workload", queue="analysis", soft_time_limit=60)
def evaluate_workload(cluster_id: int, namespace: str, kind: str, name: str) -> int:
    """Re-evaluate one workload (a no-op when it is gone: its results went with it); the pages showing it refresh
    when a check's status or message changed."""
    workload = (
        Workload.objects.select_related("application")
        .filter(cluster_id=cluster_id, namespace=namespace, kind=kind, name=name)
        .first()
    )
    if workload is None:
        return 0
    before = _verdicts(workload.pk)
    stored = evaluation.evaluate_workload(workload)
    if _verdicts(workload.pk) != before:
        events.results_changed([workload.application_id], "workload")
    return len(stored)


@icc_task(name="compliance.scan", queue="analysis", soft_time_limit=3000, time_limit=3300)
def scan() -> int:
    """Every observed workload against every binding (hourly by default: COMPLIANCE_SCAN_SECONDS), then one
    history snapshot; the pages of the applications whose counts moved refresh."""
    count = evaluation.scan()
    changed = history.record()
    events.results_changed(changed, "scan")
    exceptions_expiring.apply_async()  # the periodic look for exceptions about to run out rides on the scan
    return count


@icc_task(name="compliance.exceptions_expiring", queue="analysis", soft_time_limit=60)
def exceptions_expiring() -> int:
    """Announce approved exceptions about to expire (each once; after every periodic scan, hourly by default)."""
    return notify.exceptions_expiring()


@icc_task(name="compliance.admission_denied", queue="analysis", soft_time_limit=30)
def admission_denied(denial: dict[str, Any]) -> None:
    """Announce a denial the admission webhook handed off (it writes nothing itself)."""
    notify.admission_denied(notify.Denial.from_dict(denial))


REPEAT_HANDOFF_SECONDS = 60.0  # a workload denied again within this, in the same process, is not handed off again
_handed: dict[str, float] = {}
_handed_lock = threading.Lock()


def admission_denied_later(denials: Iterable[notify.Denial]) -> int:
    """Hand denials to the ``compliance.admission_denied`` task (called after the webhook's response is sent;
    nothing here touches the database). A controller retrying a denied workload every few seconds is handed off
    once a minute per process; the event's key groups the rest. Returns how many were handed off."""
    now = time.monotonic()
    fresh: list[notify.Denial] = []
    with _handed_lock:
        if len(_handed) > 10_000:
            _handed.clear()
        for denial in denials:
            if now - _handed.get(denial.key(), -REPEAT_HANDOFF_SECONDS) < REPEAT_HANDOFF_SECONDS:
                continue
            _handed[denial.key()] = now
            fresh.append(denial)
    for denial in fresh:
        try:
            admission_denied.apply_async(args=[denial.as_dict()])
        except Exception:  # the broker is down: the denial stands (answered and logged), only its announcement is lost
            logger.warning("could not hand off the admission denial of %s", denial.key(), exc_info=True)
    return len(fresh)
