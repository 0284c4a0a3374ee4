"""Live topics of the cluster and application pages.

* ``clusters`` and ``applications`` (lists): any logged-in user may follow; what they see is filtered by
  their rights. The lists carry the viewer's filters and page, which the server does not know when an
  event arrives, so the push is a small trigger element: swapped in, it makes the page re-fetch its table
  with its own filter form (a burst of events collapses into one fetch: each push replaces the trigger
  before its delay runs out).
* ``cluster.<id>`` and ``application.<id>`` (details): only for viewers who may read that object; each push
  re-renders the affected panels for that viewer as out-of-band swaps.
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse

from apps.clusters import events
from apps.core import topics
from apps.core.access import Action, restrict

WORKLOAD_KINDS = {"deployments", "statefulsets", "daemonsets"}


def _object_id(name: str) -> int | None:
    _, _, raw = name.rpartition(".")
    return int(raw) if raw.isdigit() else None


def _may_read(model: Any) -> topics.Authorize:
    def authorize(user: Any, name: str) -> bool:
        """Rule: a cluster's or an application's page may be followed by whoever may read that object."""
        pk = _object_id(name)
        if pk is None:
            return False
        return restrict(user, Action.READ, model._default_manager.filter(pk=pk)).exists()

    return authorize


def _refresh(target: str, url: str, include: str) -> str:
    return render_to_string("core/_refresh.html", {"target": target, "url": url, "include": include})


def _render_clusters(user: Any, name: str, payload: dict[str, Any]) -> str:
    return _refresh("clusters-table", reverse("clusters:table"), "#cluster-filters, #clusters-page")


def _render_applications(user: Any, name: str, payload: dict[str, Any]) -> str:
    return _refresh(
        "applications-table", reverse("clusters:applications-table"), "#application-filters, #applications-page"
    )


def _render_cluster(user: Any, name: str, payload: dict[str, Any]) -> str:
    from apps.clusters import selectors
    from apps.clusters.models import Cluster

    cluster = restrict(user, Action.READ, Cluster.objects.filter(pk=_object_id(name) or 0)).first()
    if cluster is None:
        return ""
    kind = str(payload.get("kind") or "")
    everything = not kind  # a snapshot, a health change, an edit: re-render every panel
    health = selectors.cluster_health(user, cluster)
    parts: list[str] = [render_to_string("clusters/_cluster_health.html", {**health, "oob": True})]
    if everything or kind == "nodes":
        nodes = selectors.cluster_nodes(user, cluster)
        parts.append(render_to_string("clusters/_cluster_nodes.html", {"nodes": nodes, "oob": True}))
    if everything or kind in ("namespaces", *WORKLOAD_KINDS):
        namespaces = selectors.cluster_namespaces(user, cluster)
        parts.append(render_to_string("clusters/_cluster_namespaces.html", {"namespaces": namespaces, "oob": True}))
    if everything or kind in WORKLOAD_KINDS:
        url = reverse("clusters:workloads", args=[cluster.pk])
        parts.append(_refresh("cluster-workloads", url, "#workload-filters, #workloads-page"))
    if everything or kind == "events":
        warnings = selectors.cluster_warnings(user, cluster)
        parts.append(
            render_to_string(
                "clusters/_warnings.html", {"warnings": warnings, "panel": "cluster-warnings", "oob": True}
            )
        )
    return "".join(parts)


def _render_application(user: Any, name: str, payload: dict[str, Any]) -> str:
    from apps.clusters.models import Application
    from apps.clusters.selectors import application_page

    apps = Application.objects.select_related("cluster").filter(pk=_object_id(name) or 0)
    app = restrict(user, Action.READ, apps).first()
    if app is None:
        return ""
    context = {**application_page(user, app), "oob": True}
    kind = str(payload.get("kind") or "")
    everything = not kind
    parts: list[str] = [render_to_string("clusters/_application_summary.html", context)]
    if everything or kind == "pods":
        parts.append(render_to_string("clusters/_pod_grid.html", context))
    if everything or kind in WORKLOAD_KINDS:
        parts.append(render_to_string("clusters/_application_workloads.html", context))
        parts.append(render_to_string("clusters/_versions.html", context))
    if everything or kind == "events":
        parts.append(render_to_string("clusters/_warnings.html", {**context, "panel": "application-warnings"}))
    return "".join(parts)


def register() -> None:
    from apps.clusters.models import Application, Cluster
    from apps.clusters.selectors import dashboard_counters
    from apps.core.selectors import register_counters

    register_counters(dashboard_counters)

    topics.register(events.CLUSTERS, authorize=topics.authenticated, render=_render_clusters)
    topics.register(events.APPLICATIONS, authorize=topics.authenticated, render=_render_applications)
    topics.register(events.CLUSTER, authorize=_may_read(Cluster), render=_render_cluster)
    topics.register(events.APPLICATION, authorize=_may_read(Application), render=_render_application)


register()
