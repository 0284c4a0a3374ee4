"""A cluster's health as the reconcilers see it: recorded, audited when it changes, published, exported."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.clusters import events
from apps.clusters.metrics import CLUSTER_STATUS
from apps.clusters.models import Cluster, ClusterStatus, WatchState
from apps.core.access import Scope, ScopeKind
from apps.core.domain_events import DomainEvent, Severity, emit


def set_health(cluster_id: int, status: str, error: str = "", **fields: Any) -> None:
    """Record the cluster's health; a change of status is audited (as the system) and published."""
    from apps.audit.services import audit_record

    now = timezone.now()
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().filter(pk=cluster_id).first()
        if cluster is None:
            return
        previous = cluster.status
        if cluster.paused:
            status = ClusterStatus.PAUSED
        cluster.status = status
        if error:
            cluster.last_error, cluster.last_error_at = error[:4000], now
        elif status == ClusterStatus.CONNECTED:
            cluster.last_error = ""
        for name, value in fields.items():
            setattr(cluster, name, value)
        cluster.save(update_fields=["status", "last_error", "last_error_at", "updated_at", *fields])
        # The gauge follows the row before the commit's callbacks (domain events, audit) run: whoever sees the
        # committed status sees the same status in /metrics.
        for value in ClusterStatus.values:
            CLUSTER_STATUS.labels(cluster.name, value).set(1 if value == status else 0)
        if previous != status:
            _announce(cluster, previous, status, error)
            audit_record(
                action="clusters.cluster.health",
                target=cluster,
                message=f"{previous} -> {status}" + (f": {error}" if error else ""),
                changes={"status": [previous, status]},
                scope={"cluster": str(cluster.pk)},
            )
        events.cluster_changed(cluster.pk, "health")


def _announce(cluster: Cluster, previous: str, status: str, error: str) -> None:
    """A domain event when the cluster becomes unreachable, and a resolving one when it answers again
    (one condition per cluster: ``clusters.unreachable:<id>``); emitted after the change commits."""
    key = f"clusters.unreachable:{cluster.pk}"
    scope = Scope(ScopeKind.CLUSTER, str(cluster.pk))
    link = f"/clusters/{cluster.pk}/"
    if status == ClusterStatus.UNREACHABLE:
        emit(
            DomainEvent(
                kind="clusters.unreachable",
                severity=Severity.ERROR,
                subject=f"cluster {cluster.name}",
                text=f"ICC cannot reach cluster {cluster.name}: {error}"[:1000]
                if error
                else f"ICC cannot reach cluster {cluster.name}.",
                scope=scope,
                link=link,
                dedup_key=key,
            )
        )
    elif previous == ClusterStatus.UNREACHABLE and status in (ClusterStatus.CONNECTED, ClusterStatus.DEGRADED):
        emit(
            DomainEvent(
                kind="clusters.recovered",
                severity=Severity.INFO,
                subject=f"cluster {cluster.name}",
                text=f"Cluster {cluster.name} answers again ({status}).",
                scope=scope,
                link=link,
                dedup_key=key,
                resolves=True,
            )
        )


def failing_watches(cluster_id: int) -> str:
    """The errors of this cluster's watch streams that are failing right now ("" when none is).

    A full sync that succeeds proves the cluster answers lists; it must not call a cluster whose watches fail
    (say, a kind ICC may list but not watch) connected, or the watcher and the sync would flip its status."""
    recent = timezone.now() - timedelta(seconds=max(60, 4 * int(settings.CLUSTER_WATCH_LEASE_SECONDS)))
    errors = (
        WatchState.objects.filter(cluster_id=cluster_id, connected=False, updated_at__gte=recent)
        .exclude(last_error="")
        .order_by("kind")
        .values_list("kind", "last_error")
    )
    return "; ".join(f"watch {kind}: {error}" for kind, error in errors)
