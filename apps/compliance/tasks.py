"""Compliance tasks on the ``analysis`` queue: one workload's evaluation (after the watcher saw it change) and the
periodic scan of everything."""

from __future__ import annotations

from apps.clusters.models import Workload
from apps.compliance import evaluation
from apps.core.tasking import icc_task


@icc_task(name="compliance.evaluate_workload", queue="analysis", soft_time_limit=60)
def evaluate_workload(cluster_id: int, namespace: str, kind: str, name: str) -> int:
    """Re-evaluate one workload (a no-op when it is gone: its results went with it)."""
    workload = (
        Workload.objects.select_related("application")
        .filter(cluster_id=cluster_id, namespace=namespace, kind=kind, name=name)
        .first()
    )
    return len(evaluation.evaluate_workload(workload)) if workload is not None else 0


@icc_task(name="compliance.scan", queue="analysis", soft_time_limit=3000, time_limit=3300)
def scan() -> int:
    """Every observed workload against every binding (hourly by default: COMPLIANCE_SCAN_SECONDS)."""
    return evaluation.scan()
