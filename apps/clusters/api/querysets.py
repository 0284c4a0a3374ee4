"""The API's reads: every queryset is restricted to the requesting user (:func:`apps.core.access.restrict`).

Counts next to a row are correlated subqueries over restricted querysets, so a list page costs one query
however many rows it shows, and nobody learns how many objects they may not see.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Count, IntegerField, Model, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.db.models.expressions import Expression
from django.db.models.functions import Coalesce

from apps.clusters.models import (
    Application,
    ApplicationVersion,
    Cluster,
    Namespace,
    Node,
    Pod,
    WarningEvent,
    WatchState,
    Workload,
)
from apps.core.access import Action, restrict

M = TypeVar("M", bound=Model)


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
    return restrict(user, Action.READ, model._default_manager.all())


def clusters(user: Any) -> QuerySet[Cluster]:
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


def namespaces(user: Any) -> QuerySet[Namespace]:
    return (
        _readable(user, Namespace)
        .select_related("cluster")
        .annotate(
            workload_count=count_where(_readable(user, Workload), cluster="cluster_id", namespace="name"),
            pod_count=count_where(_readable(user, Pod).filter(deleting=False), cluster="cluster_id", namespace="name"),
        )
    )


def nodes(user: Any) -> QuerySet[Node]:
    return (
        _readable(user, Node)
        .select_related("cluster")
        .annotate(
            pod_count=count_where(_readable(user, Pod).filter(deleting=False), cluster="cluster_id", node_name="name")
        )
    )


def applications(user: Any) -> QuerySet[Application]:
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


def application_versions(user: Any, application: Application) -> QuerySet[ApplicationVersion]:
    return restrict(user, Action.READ, ApplicationVersion.objects.filter(application=application))


def workloads(user: Any, action: str = Action.READ) -> QuerySet[Workload]:
    pods = _readable(user, Pod).filter(deleting=False)
    return (
        restrict(user, action, Workload.objects.all())
        .select_related("cluster", "application")
        .annotate(pod_count=count_where(pods, workload="pk"))
    )


def pods(user: Any) -> QuerySet[Pod]:
    return _readable(user, Pod).select_related("cluster", "application", "workload")


def warning_events(user: Any) -> QuerySet[WarningEvent]:
    return _readable(user, WarningEvent).select_related("cluster", "application")
