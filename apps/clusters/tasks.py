"""Reconciliation tasks: a full sync of one cluster, and the periodic pass that starts the due ones."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.utils import timezone

from apps.clusters.gateway import KubeError
from apps.clusters.models import Cluster
from apps.clusters.sync import full_sync
from apps.core.tasking import icc_task

logger = logging.getLogger(__name__)


@icc_task(name="clusters.full_sync", queue="reconcile", soft_time_limit=600, time_limit=660)
def full_sync_task(cluster_id: int) -> dict[str, Any]:
    try:
        return full_sync(cluster_id).as_dict()
    except KubeError as exc:  # recorded on the cluster (status, last error); nothing to retry here
        logger.warning("full sync of cluster %s failed: %s", cluster_id, exc.message)
        return {"cluster": cluster_id, "error": exc.message}


@icc_task(name="clusters.sync_due", queue="reconcile", soft_time_limit=60)
def sync_due() -> list[int]:
    """Enqueue a full sync of every unpaused cluster whose last one is older than its interval."""
    now = timezone.now()
    due = [
        pk
        for pk, interval, last in Cluster.objects.filter(paused=False).values_list(
            "id", "sync_interval_seconds", "last_full_sync_at"
        )
        if last is None or now - last >= timedelta(seconds=interval)
    ]
    for pk in due:
        full_sync_task.delay(pk)
    return due
