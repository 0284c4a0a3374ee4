"""How a row finds its application (and a pod its workload), in bulk for a listing or one row for an event.

A kind names its way in :attr:`apps.clusters.kinds.Kind.link`: a workload's labels name its own application, a
pod belongs to its owning workload's, a Warning event to that of the object it is about."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Subquery

from apps.clusters.kinds import WORKLOAD_KINDS, Row
from apps.clusters.models import Cluster, Pod, Workload
from apps.clusters.sync.versions import ensure_applications

Links = dict[str, int | None]  # {"application_id": ..., and for a pod "workload_id": ...}


@dataclass(frozen=True)
class Linker:
    fields: tuple[str, ...]  # the relations it sets (written by a bulk update)
    many: Callable[[Cluster, list[Row]], Callable[[Row], Links]]  # one lookup for a whole listing
    one: Callable[[Cluster, Row], Links]  # the lookup of one event
    # A change of the row is a change of its application's page (Warning events churn: the sync does not say so).
    touches_on_sync: bool = True


def _by_labels(cluster: Cluster, rows: list[Row]) -> Callable[[Row], Links]:
    app_ids = ensure_applications(cluster, {(r["namespace"], r["_application"][0]): r["_application"][1] for r in rows})
    return lambda row: {"application_id": app_ids[(row["namespace"], row["_application"][0])]}


def _by_labels_one(cluster: Cluster, row: Row) -> Links:
    return _by_labels(cluster, [row])(row)


def _by_owner(cluster: Cluster, rows: list[Row]) -> Callable[[Row], Links]:
    owners = {
        (k, ns, n): (pk, app)
        for pk, k, ns, n, app in Workload.objects.filter(cluster=cluster).values_list(
            "id", "kind", "namespace", "name", "application_id"
        )
    }

    def links(row: Row) -> Links:
        workload, app = owners.get((row["owner_kind"], row["namespace"], row["owner_name"])) or (None, None)
        return {"workload_id": workload, "application_id": app}

    return links


def _by_owner_one(cluster: Cluster, row: Row) -> Links:
    owner = (
        Workload.objects.filter(
            cluster=cluster, kind=row["owner_kind"], namespace=row["namespace"], name=row["owner_name"]
        )
        .values_list("id", "application_id")
        .first()
    )
    workload, app = owner or (None, None)
    return {"workload_id": workload, "application_id": app}


def _by_involved(cluster: Cluster, rows: list[Row]) -> Callable[[Row], Links]:
    pod_apps = {
        (ns, n): app
        for ns, n, app in Pod.objects.filter(cluster=cluster, application__isnull=False).values_list(
            "namespace", "name", "application_id"
        )
    }
    work_apps = {
        (k, ns, n): app
        for k, ns, n, app in Workload.objects.filter(cluster=cluster).values_list(
            "kind", "namespace", "name", "application_id"
        )
    }

    def links(row: Row) -> Links:
        app = pod_apps.get((row["namespace"], row["object_name"])) if row["object_kind"] == "Pod" else None
        return {"application_id": app or work_apps.get((row["object_kind"], row["namespace"], row["object_name"]))}

    return links


def _by_involved_one(cluster: Cluster, row: Row) -> Links:
    app: int | None = None
    if row["object_kind"] == "Pod":
        app = (
            Pod.objects.filter(cluster=cluster, namespace=row["namespace"], name=row["object_name"])
            .values_list("application_id", flat=True)
            .first()
        )
    elif row["object_kind"] in WORKLOAD_KINDS.values():
        app = (
            Workload.objects.filter(
                cluster=cluster, kind=row["object_kind"], namespace=row["namespace"], name=row["object_name"]
            )
            .values_list("application_id", flat=True)
            .first()
        )
    return {"application_id": app}


LINKERS: dict[str, Linker] = {
    "labels": Linker(("application",), _by_labels, _by_labels_one),
    "owner": Linker(("workload", "application"), _by_owner, _by_owner_one),
    "involved": Linker(("application",), _by_involved, _by_involved_one, touches_on_sync=False),
}


def link_orphan_pods(cluster: Cluster) -> int:
    """Link pods to workloads that were stored after them (a watch or relist may see a pod first)."""
    owner = Workload.objects.filter(
        cluster=cluster, kind=OuterRef("owner_kind"), namespace=OuterRef("namespace"), name=OuterRef("owner_name")
    )
    return (
        Pod.objects.filter(cluster=cluster, workload__isnull=True, owner_kind__in=list(WORKLOAD_KINDS.values()))
        .filter(Exists(owner))
        .update(workload=Subquery(owner.values("id")[:1]), application=Subquery(owner.values("application_id")[:1]))
    )
