"""Full sync (every kind listed, page by page, and the difference applied) and the relist of one kind."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.clusters import events
from apps.clusters import gateway as gateways
from apps.clusters.kinds import KINDS, Row
from apps.clusters.metrics import SYNC_SECONDS
from apps.clusters.models import Cluster, ClusterStatus, WarningEvent
from apps.clusters.sync.diff import SyncResult, apply_rows
from apps.clusters.sync.health import failing_watches, set_health
from apps.clusters.sync.links import link_orphan_pods
from apps.clusters.sync.permissions import recheck_permissions
from apps.clusters.sync.versions import BULK, refresh_active
from apps.core.events import publish_many
from apps.core.locks import advisory_lock

logger = logging.getLogger(__name__)


def cap_events(cluster: Cluster) -> None:
    """Keep the newest CLUSTER_WARNING_EVENTS_KEEP Warning events of a cluster."""
    keep = settings.CLUSTER_WARNING_EVENTS_KEEP
    stale = list(
        WarningEvent.objects.filter(cluster=cluster).order_by("-last_seen", "-id").values_list("id", flat=True)[keep:]
    )
    for start in range(0, len(stale), BULK):
        WarningEvent.objects.filter(pk__in=stale[start : start + BULK]).delete()


def list_kind(gateway: gateways.Gateway, kind: str) -> tuple[list[Row], str]:
    """Every object of one kind, listed page by page: (rows, the list's resourceVersion)."""
    spec = KINDS[kind]
    rows: list[Row] = []
    list_rv = ""
    for items, page_rv in gateway.list_pages(spec.path, query=spec.params):
        rows.extend(spec.row(obj) for obj in items)
        list_rv = page_rv
    return rows, list_rv


def list_all(gateway: gateways.Gateway) -> dict[str, tuple[list[Row], str]]:
    """Every observed kind, listed page by page: {kind: (rows, list resourceVersion)}."""
    return {key: list_kind(gateway, key) for key in KINDS}


def full_sync(cluster_id: int) -> SyncResult:
    """List every kind and make the database match. Single-flight: a concurrent call returns ``skipped``."""
    result = SyncResult(cluster_id=cluster_id)
    with advisory_lock(f"clusters.sync:{cluster_id}") as acquired:
        if not acquired:
            result.skipped = "a sync of this cluster is already running"
            return result
        cluster = Cluster.objects.filter(pk=cluster_id).first()
        if cluster is None:
            result.skipped = "no such cluster"
            return result
        if cluster.paused:
            result.skipped = "the cluster is paused"
            return result
        _sync(cluster, result)
        return result


def _sync(cluster: Cluster, result: SyncResult) -> None:
    started = time.monotonic()
    try:
        gateway = gateways.for_cluster(cluster)
        version = gateway.version()
        recheck_permissions(cluster.pk, gateway)  # before listing: a 403 on a list is then already explained
        listed = list_all(gateway)
    except gateways.KubeError as exc:
        status = (
            ClusterStatus.UNREACHABLE
            if isinstance(exc, (gateways.Unreachable, gateways.TLSFailure))
            else (ClusterStatus.DEGRADED)
        )
        set_health(cluster.pk, status, exc.message)
        raise
    touched: set[int] = set()
    for kind, (rows, list_rv) in listed.items():
        result.objects += len(rows)
        result.resource_versions[kind] = list_rv
        apply_rows(cluster, kind, rows, list_rv, result=result, touched=touched)
    with transaction.atomic():
        link_orphan_pods(cluster)
        refresh_active(cluster)
        cap_events(cluster)
    result.seconds = time.monotonic() - started
    SYNC_SECONDS.labels(cluster.name).observe(result.seconds)
    failing = failing_watches(cluster.pk)
    set_health(
        cluster.pk,
        ClusterStatus.DEGRADED if failing else ClusterStatus.CONNECTED,
        failing,
        server_version=str(version.get("gitVersion") or ""),
        last_full_sync_at=timezone.now(),
        last_sync_duration_ms=int(result.seconds * 1000),
    )
    changed = any(any(v.values()) for v in result.changes.values())
    if changed:
        items: list[tuple[str, dict[str, Any]]] = [events.list_changed(events.APPLICATIONS, cluster.pk)]
        items += [events.object_changed(events.application(pk), {"reason": "sync"}) for pk in sorted(touched)[:200]]
        publish_many(items)
    logger.info(
        "full sync of %s: %d objects in %.2fs, changes %s",
        cluster.name,
        result.objects,
        result.seconds,
        result.changes,
    )


def relist_apply(cluster: Cluster, kind: str, rows: list[Row], list_rv: str) -> SyncResult:
    """Apply a fresh list of one kind (the watcher's relist after 410 Gone or a broken stream): the same
    guarded diff as a full sync, then the follow-ups that kind needs, and live updates for what changed."""
    spec = KINDS[kind]
    result = SyncResult(cluster_id=cluster.pk, objects=len(rows), resource_versions={kind: list_rv})
    touched: set[int] = set()
    apply_rows(cluster, kind, rows, list_rv, result=result, touched=touched)
    counts = result.changes.get(kind, {})
    if not any(counts.values()):
        return result
    with transaction.atomic():
        if spec.workload:
            link_orphan_pods(cluster)
            refresh_active(cluster)
        if spec.capped:
            cap_events(cluster)
        items: list[tuple[str, dict[str, Any]]] = [
            events.object_changed(events.cluster(cluster.pk), {"kind": kind, "event": "RELIST"})
        ]
        if "RELIST" in spec.clusters_list_on:
            items.append(events.list_changed(events.CLUSTERS, cluster.pk))
        if "RELIST" in spec.applications_list_on:
            items.append(events.list_changed(events.APPLICATIONS, cluster.pk))
        items += [
            events.object_changed(events.application(pk), {"reason": "relist", "kind": kind})
            for pk in sorted(touched)[:200]
        ]
        publish_many(items)
    return result
