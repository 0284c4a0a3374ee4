"""Compliance tasks on the ``analysis`` queue: one workload's evaluation (after the watcher saw it change) and the
periodic scan of everything, which records the history. Both tell the live pages when results changed."""

from __future__ import annotations

from apps.clusters.models import Workload
from apps.compliance import evaluation, events, history
from apps.compliance.models import Result
from apps.core.tasking import icc_task


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
    return count
