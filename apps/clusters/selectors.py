"""Reads of the clusters app (portal pages and API lists): every query is restricted to what the viewer may see.

Counts shown next to a row (nodes, workloads, pods) are subqueries over restricted querysets too, so a
namespace-scoped viewer never learns how many objects other namespaces hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from django.db.models import Count, IntegerField, Model, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum, Value
from django.db.models.expressions import Expression
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from django.utils import timezone

from apps.clusters.models import (
    Application,
    ApplicationVersion,
    Cluster,
    Namespace,
    Node,
    Pod,
    RolloutState,
    WarningEvent,
    WatchState,
    Workload,
)
from apps.core.access import Action, can, restrict
from apps.core.selectors import matching

M = TypeVar("M", bound=Model)

# Container and pod reasons that mean "broken" (red) rather than "on its way" (amber).
FAILED_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "OOMKilled",
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "InvalidImageName",
        "Error",
        "Evicted",
    }
)
RECENT_WARNINGS = 50
VERSIONS_SHOWN = 50


def visible(viewer: Any, queryset: QuerySet[M], pk: int) -> M:
    """One row the viewer may read, else 404 (hidden and missing look the same)."""
    return get_object_or_404(restrict(viewer, Action.READ, queryset), pk=pk)


def _sum(queryset: QuerySet[Any], outer: str, field: str) -> Coalesce:
    summed = queryset.filter(**{outer: OuterRef("pk")}).order_by().values(outer).annotate(n=Sum(field)).values("n")
    return Coalesce(Subquery(summed, output_field=IntegerField()), 0)


def _bad_pods() -> Q:
    return Q(reason__in=FAILED_REASONS) | Q(phase="Failed")


# --- clusters ------------------------------------------------------------------------------------------------


def cluster_list(viewer: Any, *, status: str = "", search: str = "") -> QuerySet[Cluster]:
    """The clusters the viewer may read, with node and workload counts (each counted within their rights)."""
    clusters = matching(
        restrict(viewer, Action.READ, Cluster.objects.all()),
        status=status,
        search=search,
        search_fields=("name", "description", "api_url"),
    )
    return clusters.annotate(
        node_count=count_where(restrict(viewer, Action.READ, Node.objects.all()), cluster="pk"),
        workload_count=count_where(restrict(viewer, Action.READ, Workload.objects.all()), cluster="pk"),
    ).order_by("name")


@dataclass
class WatchRow:
    kind: str
    connected: bool
    lag_seconds: float | None
    events_applied: int
    relists: int
    last_error: str


def cluster_health(viewer: Any, cluster: Cluster) -> dict[str, Any]:
    """Status, errors, last sync and the watch streams of one (visible) cluster."""
    now = timezone.now()
    watches = [
        WatchRow(
            kind=w.kind,
            connected=w.connected,
            lag_seconds=(now - w.last_message_at).total_seconds() if w.last_message_at else None,
            events_applied=w.events_applied,
            relists=w.relists,
            last_error=w.last_error,
        )
        for w in restrict(viewer, Action.READ, WatchState.objects.filter(cluster=cluster)).order_by("kind")
    ]
    return {"cluster": cluster, "watches": watches, "now": now}


def cluster_nodes(viewer: Any, cluster: Cluster) -> list[Node]:
    return list(restrict(viewer, Action.READ, Node.objects.filter(cluster=cluster)).order_by("name")[:500])


def cluster_namespaces(viewer: Any, cluster: Cluster) -> list[Namespace]:
    namespaces = restrict(viewer, Action.READ, Namespace.objects.filter(cluster=cluster))
    workloads = restrict(viewer, Action.READ, Workload.objects.filter(cluster=cluster, namespace=OuterRef("name")))
    counted = workloads.order_by().values("namespace").annotate(n=Count("*")).values("n")
    return list(
        namespaces.annotate(workload_count=Coalesce(Subquery(counted, output_field=IntegerField()), 0)).order_by(
            "name"
        )[:500]
    )


def cluster_workloads(
    viewer: Any, cluster: Cluster, *, namespace: str = "", kind: str = "", search: str = ""
) -> QuerySet[Workload]:
    workloads = matching(
        restrict(viewer, Action.READ, Workload.objects.filter(cluster=cluster)),
        namespace=namespace,
        kind=kind,
        search=search,
        search_fields=("name", "application__name"),
    )
    return workloads.select_related("application").order_by("namespace", "kind", "name")


def workload_namespaces(viewer: Any, cluster: Cluster) -> list[str]:
    """Namespaces holding workloads the viewer may read (for the namespace filter)."""
    names = restrict(viewer, Action.READ, Workload.objects.filter(cluster=cluster)).order_by("namespace")
    return list(names.values_list("namespace", flat=True).distinct()[:500])


def cluster_warnings(viewer: Any, cluster: Cluster) -> list[WarningEvent]:
    events = restrict(viewer, Action.READ, WarningEvent.objects.filter(cluster=cluster))
    return list(events.order_by("-last_seen", "-id")[:RECENT_WARNINGS])


def cluster_removal_counts(viewer: Any, cluster: Cluster) -> dict[str, int]:
    """What deleting the cluster removes (asked by someone who may configure it, so sees all of it)."""
    return {
        "namespaces": restrict(viewer, Action.READ, Namespace.objects.filter(cluster=cluster)).count(),
        "nodes": restrict(viewer, Action.READ, Node.objects.filter(cluster=cluster)).count(),
        "applications": restrict(viewer, Action.READ, Application.objects.filter(cluster=cluster)).count(),
        "workloads": restrict(viewer, Action.READ, Workload.objects.filter(cluster=cluster)).count(),
        "pods": restrict(viewer, Action.READ, Pod.objects.filter(cluster=cluster)).count(),
        "warning events": restrict(viewer, Action.READ, WarningEvent.objects.filter(cluster=cluster)).count(),
    }


# --- applications ---------------------------------------------------------------------------------------------


def application_list(
    viewer: Any, *, active: bool | None = True, cluster: int | None = None, namespace: str = "", search: str = ""
) -> QuerySet[Application]:
    """Applications the viewer may read, with workload and pod counts (pods ready / total / failing)."""
    apps = matching(
        restrict(viewer, Action.READ, Application.objects.all()),
        cluster_id=cluster,
        namespace=namespace,
        search=search,
        search_fields=("name", "namespace"),
    )
    if active is not None:
        apps = apps.filter(active=active)
    workloads = restrict(viewer, Action.READ, Workload.objects.all())
    pods = restrict(viewer, Action.READ, Pod.objects.all())
    return (
        apps.select_related("cluster")
        .annotate(
            workload_count=count_where(workloads, application="pk"),
            desired_replicas=_sum(workloads, "application", "desired_replicas"),
            failed_rollouts=count_where(workloads.filter(rollout_state=RolloutState.FAILED), application="pk"),
            pods_total=count_where(pods.filter(deleting=False), application="pk"),
            pods_ready=count_where(pods.filter(deleting=False, ready=True), application="pk"),
            pods_bad=count_where(pods.filter(_bad_pods(), deleting=False), application="pk"),
        )
        .order_by("cluster__name", "namespace", "name")
    )


def application_colour(app: Any) -> str:
    """Rule: red when a pod is failing or a rollout failed; grey when inactive; green when every wanted pod
    is ready; amber otherwise (starting, rolling out, scaled below its pods)."""
    if not app.active:
        return "grey"
    if app.pods_bad or app.failed_rollouts:
        return "red"
    if app.pods_ready >= app.desired_replicas and app.pods_ready == app.pods_total:
        return "green"
    return "amber"


def application_filter_choices(viewer: Any) -> dict[str, list[Any]]:
    """Clusters and namespaces that hold applications the viewer may read (for the filters)."""
    apps = restrict(viewer, Action.READ, Application.objects.all()).order_by()
    clusters = set(apps.values_list("cluster_id", "cluster__name").distinct()[:500])
    return {
        "clusters": sorted(clusters, key=lambda item: item[1]),
        "namespaces": sorted(set(apps.values_list("namespace", flat=True).distinct()[:500])),
    }


def application_workloads(viewer: Any, app: Application) -> list[Workload]:
    workloads = restrict(viewer, Action.READ, Workload.objects.filter(application=app))
    return list(workloads.order_by("kind", "name"))


@dataclass
class PodTile:
    pod: Pod
    colour: str
    state: str
    detail: str


def pod_tile(pod: Pod) -> PodTile:
    """Rule: grey while deleting or finished; red for a failing pod (CrashLoopBackOff, OOMKilled, image pull
    errors, phase Failed); green when Running and ready; amber for anything on its way (Pending, not ready)."""
    reason = pod.reason or ""
    if pod.deleting:
        colour, state = "grey", "deleting"
    elif reason in FAILED_REASONS or pod.phase == "Failed":
        colour, state = "red", reason or "Failed"
    elif pod.phase == "Succeeded":
        colour, state = "grey", "Completed"
    elif pod.phase == "Running" and pod.ready:
        colour, state = "green", "Ready"
    else:
        colour, state = "amber", reason or (f"{pod.phase or 'Pending'}, not ready" if pod.phase else "Pending")
    parts = [pod.name, state, f"restarts {pod.restarts}", f"node {pod.node_name or '(unscheduled)'}"]
    if reason and reason != state:
        parts.insert(2, reason)
    return PodTile(pod=pod, colour=colour, state=state, detail=" · ".join(parts))


def application_pods(viewer: Any, app: Application) -> list[PodTile]:
    pods = restrict(viewer, Action.READ, Pod.objects.filter(application=app)).select_related("workload")
    return [pod_tile(p) for p in pods.order_by("workload__name", "name")[:1000]]


def application_versions(viewer: Any, app: Application) -> list[ApplicationVersion]:
    versions = restrict(viewer, Action.READ, ApplicationVersion.objects.filter(application=app))
    return list(versions.order_by("-observed_at", "-id")[:VERSIONS_SHOWN])


def application_warnings(viewer: Any, app: Application) -> list[WarningEvent]:
    events = restrict(viewer, Action.READ, WarningEvent.objects.filter(application=app))
    return list(events.order_by("-last_seen", "-id")[:RECENT_WARNINGS])


def application_summary(viewer: Any, app: Application) -> dict[str, Any]:
    """The colour and counters at the top of an application's page."""
    row = application_list(viewer, active=None).filter(pk=app.pk).first()
    if row is None:
        return {"colour": "grey", "pods_ready": 0, "pods_total": 0, "workload_count": 0, "desired_replicas": 0}
    return {
        "colour": application_colour(row),
        "pods_ready": row.pods_ready,  # type: ignore[attr-defined]
        "pods_total": row.pods_total,  # type: ignore[attr-defined]
        "workload_count": row.workload_count,  # type: ignore[attr-defined]
        "desired_replicas": row.desired_replicas,  # type: ignore[attr-defined]
    }


def application_page(viewer: Any, app: Application) -> dict[str, Any]:
    """What the live parts of an application's page show (also rendered by its topic, per viewer)."""
    return {
        "app": app,
        "summary": application_summary(viewer, app),
        "workloads": application_workloads(viewer, app),
        "pods": application_pods(viewer, app),
        "versions": application_versions(viewer, app),
        "warnings": application_warnings(viewer, app),
        "may_act": can(viewer, Action.ACT, app),
    }


# --- the dashboard -------------------------------------------------------------------------------------------


def dashboard_counters(viewer: Any) -> list[dict[str, Any]]:
    """Clusters, active applications, workloads and pods the viewer may read (for the dashboard)."""
    return [
        {
            "key": "clusters",
            "label": "Clusters",
            "url": "/clusters/",
            "value": restrict(viewer, Action.READ, Cluster.objects.all()).count(),
        },
        {
            "key": "applications",
            "label": "Applications",
            "url": "/clusters/applications/",
            "value": restrict(viewer, Action.READ, Application.objects.filter(active=True)).count(),
        },
        {
            "key": "workloads",
            "label": "Workloads",
            "value": restrict(viewer, Action.READ, Workload.objects.all()).count(),
        },
        {
            "key": "pods",
            "label": "Pods",
            "value": restrict(viewer, Action.READ, Pod.objects.filter(deleting=False)).count(),
        },
    ]


# --- the API's lists: one query per page however many rows (counts are correlated subqueries) -----------


def count_where(queryset: QuerySet[Any], **outer: str) -> Expression:
    """COUNT(*) of ``queryset`` rows whose fields equal the outer row's (``cluster="pk"``); 0 when none."""
    if queryset.query.is_empty():
        return Value(0, output_field=IntegerField())
    group = next(iter(outer))
    counted = (
        queryset.filter(**{field: OuterRef(ref) for field, ref in outer.items()})
        .order_by()
        .values(group)
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _readable(user: Any, model: type[M]) -> QuerySet[M]:
    """Every row of ``model`` the user may read."""
    return restrict(user, Action.READ, model._default_manager.all())


def cluster_rows(user: Any) -> QuerySet[Cluster]:
    """Readable clusters with counts of what the user may see in them, and their watch streams."""
    return (
        _readable(user, Cluster)
        .annotate(
            node_count=count_where(_readable(user, Node), cluster="pk"),
            namespace_count=count_where(_readable(user, Namespace), cluster="pk"),
            workload_count=count_where(_readable(user, Workload), cluster="pk"),
            pod_count=count_where(_readable(user, Pod).filter(deleting=False), cluster="pk"),
            application_count=count_where(_readable(user, Application).filter(active=True), cluster="pk"),
        )
        .prefetch_related(Prefetch("watch_states", queryset=_readable(user, WatchState).order_by("kind")))
    )


def namespace_rows(user: Any) -> QuerySet[Namespace]:
    return (
        _readable(user, Namespace)
        .select_related("cluster")
        .annotate(
            workload_count=count_where(_readable(user, Workload), cluster="cluster_id", namespace="name"),
            pod_count=count_where(_readable(user, Pod).filter(deleting=False), cluster="cluster_id", namespace="name"),
        )
    )


def node_rows(user: Any) -> QuerySet[Node]:
    return (
        _readable(user, Node)
        .select_related("cluster")
        .annotate(
            pod_count=count_where(_readable(user, Pod).filter(deleting=False), cluster="cluster_id", node_name="name")
        )
    )


def application_rows(user: Any) -> QuerySet[Application]:
    pods = _readable(user, Pod).filter(deleting=False)
    return (
        _readable(user, Application)
        .select_related("cluster")
        .annotate(
            workload_count=count_where(_readable(user, Workload), application="pk"),
            pod_count=count_where(pods, application="pk"),
            ready_pod_count=count_where(pods.filter(ready=True), application="pk"),
        )
    )


def application_version_rows(user: Any, application: Application) -> QuerySet[ApplicationVersion]:
    return restrict(user, Action.READ, ApplicationVersion.objects.filter(application=application))


def workload_rows(user: Any, action: str = Action.READ) -> QuerySet[Workload]:
    pods = _readable(user, Pod).filter(deleting=False)
    return (
        restrict(user, action, Workload.objects.all())
        .select_related("cluster", "application")
        .annotate(pod_count=count_where(pods, workload="pk"))
    )


def pod_rows(user: Any) -> QuerySet[Pod]:
    return _readable(user, Pod).select_related("cluster", "application", "workload")


def warning_event_rows(user: Any) -> QuerySet[WarningEvent]:
    return _readable(user, WarningEvent).select_related("cluster", "application")
