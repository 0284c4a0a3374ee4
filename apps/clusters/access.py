"""How clusters and observed objects plug into access control (:mod:`apps.core.access`).

Rules: a cluster binding reaches the cluster and everything observed in it; a namespace binding reaches
that namespace's namespace row, workloads, pods, applications, versions and Warning events (not the
cluster row or its nodes, which are cluster-wide); an application binding reaches that application's rows
in its cluster, whatever their namespace.
"""

from __future__ import annotations

from apps.core.access import Scope, ScopedModel, register_scoped


def resolve_scope(scope: Scope) -> str | None:
    """Rule: a binding may name only a registered cluster (by id); namespaces and applications may be named
    before they are observed (a binding can be prepared before a deployment)."""
    from apps.clusters.models import Cluster

    if not str(scope.cluster).isdigit() or not Cluster.objects.filter(pk=int(scope.cluster)).exists():
        return f"no registered cluster has id {scope.cluster!r}"
    return None


def register() -> None:
    from apps.clusters import models as m
    from apps.users.bindings import register_scope_resolver

    register_scope_resolver(resolve_scope)
    register_scoped(m.Cluster, ScopedModel(cluster="id"))
    register_scoped(m.Node, ScopedModel(cluster="cluster_id"))
    register_scoped(m.Namespace, ScopedModel(cluster="cluster_id", namespace="name"))
    register_scoped(m.Application, ScopedModel(cluster="cluster_id", namespace="namespace", application="name"))
    for model in (m.Workload, m.Pod, m.WarningEvent):
        register_scoped(
            model, ScopedModel(cluster="cluster_id", namespace="namespace", application="application__name")
        )
    register_scoped(
        m.ApplicationVersion,
        ScopedModel(
            cluster="application__cluster_id", namespace="application__namespace", application="application__name"
        ),
    )
    register_scoped(m.WatchState, ScopedModel(cluster="cluster_id"))
