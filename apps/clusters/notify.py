"""Clusters' domain events about a cluster's credentials: ``clusters.permissions_missing`` when an access check
(SelfSubjectAccessReview, at registration, on new credentials and at every full sync) finds permissions ICC needs
missing, and ``clusters.permissions_granted`` (resolving) once they are all present again; one condition per
cluster. (``clusters.unreachable`` / ``clusters.recovered`` live with the health they follow: :mod:`.sync.health`.)
"""

from __future__ import annotations

from collections.abc import Sequence

from apps.clusters.models import Cluster
from apps.core.access import Scope, ScopeKind
from apps.core.domain_events import DomainEvent, Severity, emit


def permissions_key(cluster_id: int) -> str:
    return f"clusters.permissions_missing:{cluster_id}"


def permissions_checked(cluster: Cluster, *, before: Sequence[str], after: Sequence[str]) -> None:
    """Announce a change of the cluster's missing permissions (after commit): nothing when the set is unchanged,
    so a check finding the same gaps again is silent; a new or different set of gaps (re)announces the condition;
    no gaps after some resolves it."""
    if set(before) == set(after):
        return
    scope = Scope(ScopeKind.CLUSTER, str(cluster.pk))
    if after:
        emit(
            DomainEvent(
                kind="clusters.permissions_missing",
                severity=Severity.WARNING,
                subject=f"cluster {cluster.name}",
                text=(
                    f"ICC's credentials for cluster {cluster.name} lack these permissions: {'; '.join(after)}. "
                    "What needs them (scale, restart, logs, machine identity, or observing) fails until a "
                    "ClusterRole grants them."
                )[:1000],
                scope=scope,
                link=f"/clusters/{cluster.pk}/",
                dedup_key=permissions_key(cluster.pk),
            )
        )
    elif before:
        emit(
            DomainEvent(
                kind="clusters.permissions_granted",
                severity=Severity.INFO,
                subject=f"cluster {cluster.name}",
                text=f"ICC's credentials for cluster {cluster.name} have every permission ICC uses again.",
                scope=scope,
                link=f"/clusters/{cluster.pk}/",
                dedup_key=permissions_key(cluster.pk),
                resolves=True,
            )
        )
