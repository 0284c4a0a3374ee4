"""What the clusters app tells the apps built on it, without importing them (they connect to these signals).

``job_observed`` is sent after commit whenever a full sync, relist or watch event created, changed or deleted a
:class:`apps.clusters.models.KubeJob` row, with the keyword arguments ``cluster_id``, ``namespace``, ``name``,
``state`` (a :class:`apps.clusters.models.JobState` value) and ``deleted``. It may come more than once for the
same state (a sync and a watch event racing for the same change), so receivers must be idempotent; a receiver's
exception is logged and does not stop the others, nor the watcher.

``workload_observed`` is sent the same way for every :class:`apps.clusters.models.Workload` row (Deployment,
StatefulSet, DaemonSet) created, changed or deleted, with ``cluster_id``, ``namespace``, ``kind``, ``name`` and
``deleted``. Receivers read the row (its ``pod_template``) themselves, once committed; like ``job_observed`` it
may come twice for the same version of a row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.dispatch import Signal

from apps.clusters.models import KubeJob, Workload

job_observed = Signal()
workload_observed = Signal()


def _announcer(signal: Signal, sender: type, *fields: str) -> Callable[[int, Mapping[str, Any], bool], None]:
    """A ``Kind.on_change`` that sends ``signal`` for one row (after commit) with ``cluster_id``, ``deleted`` and the
    row's ``fields``. send_robust: a failing receiver is logged by Django ("django.dispatch") and stops neither the
    others nor the sync or watcher that sent it."""

    def changed(cluster_id: int, row: Mapping[str, Any], deleted: bool) -> None:
        signal.send_robust(sender=sender, cluster_id=cluster_id, deleted=deleted, **{f: row[f] for f in fields})

    return changed


job_changed = _announcer(job_observed, KubeJob, "namespace", "name", "state")
workload_changed = _announcer(workload_observed, Workload, "namespace", "kind", "name")
