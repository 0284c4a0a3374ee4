"""Reads for the traffic pages and API, restricted to what the viewer may read.

Rules: a route rollup is read by whoever reads its application; an edge of the service graph by whoever reads
either of its ends (a caller's team sees who calls it and whom it calls). The other end of such an edge, when it
is an application the viewer may not read, is shown as a node without its name or id (``other:<n>``). Diff mode
compares the graph around an application over the active periods of two of its versions: from a version's rollout
to the next one's (or now).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypedDict

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.clusters.models import Application, ApplicationVersion
from apps.core.access import Action, is_platform_superuser, restrict
from apps.traffic import queries
from apps.traffic.models import EdgeRollup, RouteRollup

DIFF_SLOWER = 0.2  # an edge is slower when its p95 grew by more than this share...
DIFF_SLOWER_MS = 1.0  # ...and by at least this many milliseconds
VERSIONS_SHOWN = 50


def applications(viewer: Any) -> QuerySet[Application]:
    return restrict(viewer, Action.READ, Application.objects.select_related("cluster")).order_by(
        "cluster__name", "namespace", "name"
    )


def application(viewer: Any, pk: int) -> Application | None:
    return applications(viewer).filter(pk=pk).first()


def route_rows(viewer: Any) -> QuerySet[RouteRollup]:
    return restrict(viewer, Action.READ, RouteRollup.objects.all())


def edge_rows(viewer: Any) -> QuerySet[EdgeRollup]:
    """Edges with an end the viewer reads."""
    rows = EdgeRollup.objects.all()
    if is_platform_superuser(viewer):
        return rows
    readable = restrict(viewer, Action.READ, Application.objects.all()).values("pk")
    return rows.filter(Q(source_application__in=readable) | Q(target_application__in=readable))


def traffic_by_application(
    viewer: Any, since: datetime, until: datetime, *, application_id: int | None = None
) -> list[queries.ApplicationTraffic]:
    """Every application the viewer reads (or just one) that had requests in the range, busiest first."""
    rows = route_rows(viewer)
    if application_id is not None:
        rows = rows.filter(application_id=application_id)
    return queries.applications(rows, since, until)


def _narrowed(rows: QuerySet[RouteRollup], method: str = "", status_class: int | None = None) -> QuerySet[RouteRollup]:
    if method:
        rows = rows.filter(method=method)
    if status_class is not None:
        rows = rows.filter(status_class=status_class)
    return rows


def routes(
    viewer: Any,
    application_id: int | None,
    since: datetime,
    until: datetime,
    *,
    sort: str = "-rate",
    method: str = "",
    status_class: int | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[int, list[queries.RouteTraffic]]:
    """The routes of one application (nothing when the viewer may not read it), or of every application the
    viewer reads, sorted and paged."""
    rows = route_rows(viewer)
    if application_id is not None:
        rows = rows.filter(application_id=application_id)
    rows = _narrowed(rows, method, status_class)
    return queries.routes(rows, since, until, sort=sort, offset=offset, limit=limit)


def route_series(
    viewer: Any,
    application_id: int,
    since: datetime,
    until: datetime,
    *,
    route: str = "",
    method: str = "",
    status_class: int | None = None,
) -> tuple[str, list[queries.SeriesPoint]]:
    """Requests, errors and quantiles per bucket of one route (or of the whole application without ``route``)."""
    rows = _narrowed(route_rows(viewer).filter(application_id=application_id), method, status_class)
    if route:
        rows = rows.filter(route=route)
    return queries.route_series(rows, since, until)


# --- the service graph -------------------------------------------------------------------------------------------


class Node(TypedDict):
    id: str
    kind: str  # app, db, peer, unknown
    label: str
    application: int | None  # for applications the viewer reads
    cluster: str
    namespace: str


class GraphEdge(queries.Edge, total=False):
    change: str  # diff mode: new, removed, slower, or "" (unchanged)
    before_p95: float | None


class Graph(TypedDict):
    nodes: list[Node]
    edges: list[GraphEdge]


def _around(rows: QuerySet[EdgeRollup], application_id: int | None) -> QuerySet[EdgeRollup]:
    if application_id is None:
        return rows
    node = f"app:{application_id}"
    return rows.filter(Q(source=node) | Q(target=node))


def _assemble(viewer: Any, found: list[GraphEdge]) -> Graph:
    """Nodes for the edges' ends; applications the viewer may not read lose their name and id."""
    ids = {pk for e in found for pk in (queries.application_of(e["source"]), queries.application_of(e["target"])) if pk}
    readable = {
        pk: (cluster, namespace, name)
        for pk, cluster, namespace, name in restrict(
            viewer, Action.READ, Application.objects.filter(pk__in=ids)
        ).values_list("pk", "cluster__name", "namespace", "name")
    }
    hidden: dict[str, str] = {}

    def public(node: str) -> str:
        pk = queries.application_of(node)
        if pk is None or pk in readable:
            return node
        return hidden.setdefault(node, f"other:{len(hidden) + 1}")

    nodes: dict[str, Node] = {}
    for edge in found:
        edge["source"], edge["target"] = public(edge["source"]), public(edge["target"])
        for name in (edge["source"], edge["target"]):
            if name not in nodes:
                nodes[name] = _node(name, readable)
    return {"nodes": sorted(nodes.values(), key=lambda n: (n["kind"], n["label"], n["id"])), "edges": found}


def _node(name: str, readable: dict[int, tuple[str, str, str]]) -> Node:
    if name.startswith("other:"):
        return {
            "id": name,
            "kind": "app",
            "label": "another application",
            "application": None,
            "cluster": "",
            "namespace": "",
        }
    pk = queries.application_of(name)
    if pk is not None:
        cluster, namespace, label = readable[pk]
        return {
            "id": name,
            "kind": "app",
            "label": label,
            "application": pk,
            "cluster": cluster,
            "namespace": namespace,
        }
    kind = queries.node_kind(name)
    label = name.split(":", 1)[1] if ":" in name else name
    return {"id": name, "kind": kind, "label": label, "application": None, "cluster": "", "namespace": ""}


def graph(viewer: Any, since: datetime, until: datetime, *, application_id: int | None = None) -> Graph:
    """The service graph over the range: the whole fleet the viewer sees, or one hop each way around one
    application."""
    found: list[GraphEdge] = [
        GraphEdge(**e) for e in queries.edges(_around(edge_rows(viewer), application_id), since, until)
    ]
    return _assemble(viewer, found)


def versions(viewer: Any, application_id: int, limit: int | None = VERSIONS_SHOWN) -> list[ApplicationVersion]:
    """The application's versions the viewer reads, newest first."""
    rows = restrict(viewer, Action.READ, ApplicationVersion.objects.filter(application_id=application_id))
    rows = rows.order_by("-observed_at", "-id")
    return list(rows[:limit] if limit is not None else rows)


def version_period(version: ApplicationVersion, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Rule: a version is active from its rollout until the application's next rollout (or now)."""
    newer = (
        ApplicationVersion.objects.filter(application_id=version.application_id)
        .filter(Q(observed_at__gt=version.observed_at) | Q(observed_at=version.observed_at, id__gt=version.pk))
        .order_by("observed_at", "id")
        .values_list("observed_at", flat=True)
        .first()
    )
    end = newer or now or timezone.now()
    return version.observed_at, max(end, version.observed_at + timedelta(minutes=1))


def _p95(edge: queries.Edge) -> float | None:
    return edge["client_p95"] if edge["client_p95"] is not None else edge["server_p95"]


def slower(before: float | None, after: float | None) -> bool:
    """Rule: slower when the p95 grew by more than ``DIFF_SLOWER`` of itself and by at least ``DIFF_SLOWER_MS``."""
    if before is None or after is None:
        return False
    return after > before * (1 + DIFF_SLOWER) and after - before >= DIFF_SLOWER_MS


def graph_diff(viewer: Any, application_id: int, older: ApplicationVersion, newer: ApplicationVersion) -> Graph:
    """The graph around the application while ``newer`` was active, with the edges of ``older``'s period that
    are gone (``removed``), the new ones (``new``) and those whose p95 grew (``slower``)."""
    rows = _around(edge_rows(viewer), application_id)
    before = {(e["source"], e["target"]): e for e in queries.edges(rows, *version_period(older))}
    after = {(e["source"], e["target"]): e for e in queries.edges(rows, *version_period(newer))}
    found: list[GraphEdge] = []
    for key, edge in after.items():
        old = before.get(key)
        change = "new" if old is None else "slower" if slower(_p95(old), _p95(edge)) else ""
        found.append(GraphEdge(**edge, change=change, before_p95=_p95(old) if old else None))
    for key, edge in before.items():
        if key not in after:
            found.append(GraphEdge(**edge, change="removed", before_p95=_p95(edge)))
    return _assemble(viewer, found)
