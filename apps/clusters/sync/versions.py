"""Applications and their versions: the applications workloads name, whether each still has a workload, and
the version history recorded when a workload rolls out."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef

from apps.clusters.kinds import Row
from apps.clusters.models import Application, ApplicationVersion, Cluster, Workload

BULK = 500


def ensure_applications(cluster: Cluster, wanted: dict[tuple[str, str], str]) -> dict[tuple[str, str], int]:
    """Ids of the applications (namespace, name) of a cluster, creating the missing ones."""
    if not wanted:
        return {}
    existing = {
        (ns, name): (pk, active)
        for pk, ns, name, active in Application.objects.filter(cluster=cluster, namespace__in={k[0] for k in wanted})
        .filter(name__in={k[1] for k in wanted})
        .values_list("id", "namespace", "name", "active")
    }
    missing = [
        Application(cluster=cluster, namespace=ns, name=name, label_source=source)
        for (ns, name), source in wanted.items()
        if (ns, name) not in existing
    ]
    if missing:
        Application.objects.bulk_create(missing, ignore_conflicts=True, batch_size=BULK)
        for pk, ns, name, active in (
            Application.objects.filter(cluster=cluster, namespace__in={a.namespace for a in missing})
            .filter(name__in={a.name for a in missing})
            .values_list("id", "namespace", "name", "active")
        ):
            existing[(ns, name)] = (pk, active)
    inactive = [pk for key, (pk, active) in existing.items() if key in wanted and not active]
    if inactive:
        Application.objects.filter(pk__in=inactive).update(active=True)
    return {key: pk for key, (pk, _) in existing.items() if key in wanted}


def refresh_active(cluster: Cluster) -> None:
    """An application is active while it has a workload."""
    Application.objects.filter(cluster=cluster).update(
        active=Exists(Workload.objects.filter(application=OuterRef("pk")))
    )


def refresh_active_one(application_id: int) -> None:
    Application.objects.filter(pk=application_id).update(
        active=Exists(Workload.objects.filter(application=OuterRef("pk")))
    )


def version_changes(before: list[dict[str, str]], after: list[dict[str, str]]) -> list[dict[str, str]]:
    old = {c["container"]: c["image"] for c in before}
    new = {c["container"]: c["image"] for c in after}
    return [
        {"container": name, "from": old.get(name, ""), "to": new.get(name, "")}
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    ]


def rolled_out(row: Row, before: dict[str, Any] | None) -> bool:
    """Rule: a version is a rollout, seen when a workload's revision (a Deployment's revision annotation, a
    StatefulSet's update revision, a DaemonSet's generation) first has a value or changes, or the workload was
    recreated under the same name. An image edit alone is
    not one yet: the controller gives it a revision a moment later (or never, while a Deployment is paused)."""
    if not row["revision"]:
        return False
    return before is None or before["uid"] != row["uid"] or before["revision"] != row["revision"]


def latest_versions(
    cluster: Cluster, workload_kind: str, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, list[dict[str, str]]]]:
    """The newest recorded (revision, images) of each (namespace, name) workload of one kind."""
    found: dict[tuple[str, str], tuple[str, list[dict[str, str]]]] = {}
    names = sorted({name for _, name in keys})
    for start in range(0, len(names), BULK):
        rows = (
            ApplicationVersion.objects.filter(
                application__cluster=cluster, workload_kind=workload_kind, workload_name__in=names[start : start + BULK]
            )
            .order_by("observed_at", "id")
            .values_list("application__namespace", "workload_name", "revision", "images")
        )
        for namespace, name, revision, images in rows:
            if (namespace, name) in keys:
                found[(namespace, name)] = (revision, images)
    return found


def new_version(
    app_id: int, row: Row, previous: tuple[str, list[dict[str, str]]] | None, now: Any
) -> ApplicationVersion | None:
    """The entry for a rollout (see :func:`rolled_out`); what changed is compared with the previous entry of the
    same workload (its images, else its revision). None when that entry already says the same."""
    if previous is not None and previous[0] == row["revision"] and previous[1] == row["images"]:
        return None
    changes: list[dict[str, str]] = []
    if previous is not None:
        changes = version_changes(previous[1], row["images"]) or [
            {"container": "", "from": f"revision {previous[0]}", "to": f"revision {row['revision']}"}
        ]
    return ApplicationVersion(
        application_id=app_id,
        workload_kind=row["kind"],
        workload_name=row["name"],
        revision=row["revision"],
        images=row["images"],
        changes=changes,
        observed_at=now,
    )
