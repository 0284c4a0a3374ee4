"""Reconciliation: make the database mirror the cluster.

* :func:`full_sync` lists every kind (paginated), diffs against the rows and applies the difference in bulk.
  It is idempotent (a second run changes nothing) and single-flight per cluster (an advisory lock).
* :func:`apply_event` applies one watch event in one transaction.

Both guard against going backwards: a row whose stored resourceVersion is newer than the listed object is
left alone, and a row is deleted by a full sync only when it is missing from the list and not newer than
the list itself (the watcher may have created it after the list was taken). Live views learn of changes
through :func:`apps.core.events.publish` after commit.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Model, OuterRef
from django.utils import timezone

from apps.clusters import gateway as gateways
from apps.clusters.kinds import KINDS, WORKLOAD_KINDS, Row, newer
from apps.clusters.metrics import CLUSTER_STATUS, SYNC_CHANGES, SYNC_SECONDS
from apps.clusters.models import (
    Application,
    ApplicationVersion,
    Cluster,
    ClusterStatus,
    Namespace,
    Node,
    Pod,
    WarningEvent,
    Workload,
)
from apps.core.events import publish, publish_many
from apps.core.locks import advisory_lock

logger = logging.getLogger(__name__)

MODELS: dict[str, type[Model]] = {
    "namespaces": Namespace,
    "nodes": Node,
    "deployments": Workload,
    "statefulsets": Workload,
    "daemonsets": Workload,
    "pods": Pod,
    "events": WarningEvent,
}
BULK = 500


def _key(kind: str, row: Row) -> tuple[str, ...]:
    if kind in ("namespaces", "nodes"):
        return (row["name"],)
    if kind in WORKLOAD_KINDS:
        return (row["kind"], row["namespace"], row["name"])
    if kind == "pods":
        return (row["namespace"], row["name"])
    return (row["uid"],)


KEY_FIELDS = {
    "namespaces": ("name",),
    "nodes": ("name",),
    "deployments": ("kind", "namespace", "name"),
    "statefulsets": ("kind", "namespace", "name"),
    "daemonsets": ("kind", "namespace", "name"),
    "pods": ("namespace", "name"),
    "events": ("uid",),
}


@dataclass
class SyncResult:
    cluster_id: int
    skipped: str = ""
    seconds: float = 0.0
    objects: int = 0
    changes: dict[str, dict[str, int]] = field(default_factory=dict)
    resource_versions: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster_id,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "objects": self.objects,
            "changes": self.changes,
        }


# --- cluster health -----------------------------------------------------------------------------------------


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
        if previous != status:
            audit_record(
                action="clusters.cluster.health",
                target=cluster,
                message=f"{previous} -> {status}" + (f": {error}" if error else ""),
                changes={"status": [previous, status]},
                scope={"cluster": str(cluster.pk)},
            )
        publish(f"cluster.{cluster.pk}", {"reason": "health"})
        publish("clusters", {"cluster": cluster.pk})
    for value in ClusterStatus.values:
        CLUSTER_STATUS.labels(cluster.name, value).set(1 if value == status else 0)


# --- applications and versions ------------------------------------------------------------------------------


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


def version_changes(before: list[dict[str, str]], after: list[dict[str, str]]) -> list[dict[str, str]]:
    old = {c["container"]: c["image"] for c in before}
    new = {c["container"]: c["image"] for c in after}
    return [
        {"container": name, "from": old.get(name, ""), "to": new.get(name, "")}
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    ]


def _version(app_id: int, row: Row, before: dict[str, Any] | None, now: Any) -> ApplicationVersion | None:
    """A version entry when a workload is first seen or its images or revision changed."""
    if before is not None and before["images"] == row["images"] and before["revision"] == row["revision"]:
        return None
    changes = version_changes(before["images"], row["images"]) if before is not None else []
    if before is not None and not changes and before["revision"] != row["revision"]:
        changes = [{"container": "", "from": f"revision {before['revision']}", "to": f"revision {row['revision']}"}]
    return ApplicationVersion(
        application_id=app_id,
        workload_kind=row["kind"],
        workload_name=row["name"],
        revision=row["revision"],
        images=row["images"],
        changes=changes,
        observed_at=now,
    )


def refresh_active(cluster: Cluster) -> None:
    Application.objects.filter(cluster=cluster).update(
        active=Exists(Workload.objects.filter(application=OuterRef("pk")))
    )


# --- full sync ----------------------------------------------------------------------------------------------


def _fields(model: type[Model]) -> list[str]:
    skip = {"id", "cluster", "created_at", "application", "workload"}
    return [f.name for f in model._meta.concrete_fields if f.name not in skip]


def _apply_rows(  # noqa: PLR0912, PLR0915, PLR0917 - one diff, per kind
    cluster: Cluster, kind: str, rows: list[Row], list_rv: str, result: SyncResult, touched_apps: set[int]
) -> None:
    model = MODELS[kind]
    keys = KEY_FIELDS[kind]
    base = model._default_manager.filter(cluster=cluster)
    if kind in WORKLOAD_KINDS:
        base = base.filter(kind=WORKLOAD_KINDS[kind])
    extra = ("images", "revision", "application_id") if kind in WORKLOAD_KINDS else ()
    existing: dict[tuple[str, ...], dict[str, Any]] = {
        tuple(str(v[k]) for k in keys): v for v in base.values("id", "resource_version", *keys, *extra)
    }
    now = timezone.now()
    fields = _fields(model)
    update_fields = [f for f in fields if f not in keys] + ["updated_at"]
    if kind in WORKLOAD_KINDS:
        wanted = {(r["namespace"], r["_application"][0]): r["_application"][1] for r in rows}
        app_ids = ensure_applications(cluster, wanted)
        update_fields.append("application")
    if kind == "pods":
        owners = {
            (k, ns, n): (pk, app)
            for pk, k, ns, n, app in Workload.objects.filter(cluster=cluster).values_list(
                "id", "kind", "namespace", "name", "application_id"
            )
        }
        update_fields += ["workload", "application"]
    if kind == "events":
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
        update_fields.append("application")

    creates: list[Model] = []
    updates: list[Model] = []
    versions: list[ApplicationVersion] = []
    seen: set[tuple[str, ...]] = set()
    for row in rows:
        key = _key(kind, row)
        seen.add(key)
        before = existing.get(key)
        if before is not None and row["resource_version"] == before["resource_version"]:
            continue
        if before is not None and newer(before["resource_version"], row["resource_version"]):
            continue
        values = {k: v for k, v in row.items() if not k.startswith("_")}
        obj = model(cluster=cluster, **values)
        if kind in WORKLOAD_KINDS:
            app_id = app_ids[(row["namespace"], row["_application"][0])]
            obj.application_id = app_id  # type: ignore[attr-defined]
            touched_apps.add(app_id)
            if before is not None and before["application_id"] != app_id:
                touched_apps.add(before["application_id"])
            version = _version(app_id, row, before, now)
            if version is not None:
                versions.append(version)
        elif kind == "pods":
            owner = owners.get((row["owner_kind"], row["namespace"], row["owner_name"]))
            obj.workload_id, obj.application_id = owner or (None, None)  # type: ignore[attr-defined]
            if owner:
                touched_apps.add(owner[1])
        elif kind == "events":
            app = pod_apps.get((row["namespace"], row["object_name"])) if row["object_kind"] == "Pod" else None
            app = app or work_apps.get((row["object_kind"], row["namespace"], row["object_name"]))
            obj.application_id = app  # type: ignore[attr-defined]
        if before is None:
            creates.append(obj)
        else:
            obj.pk = before["id"]
            obj.updated_at = now  # type: ignore[attr-defined]
            updates.append(obj)
    gone = [v["id"] for key, v in existing.items() if key not in seen and not newer(v["resource_version"], list_rv)]
    with transaction.atomic():
        if creates:
            model._default_manager.bulk_create(creates, batch_size=BULK)
        if updates:
            model._default_manager.bulk_update(updates, update_fields, batch_size=BULK)
        if gone:
            if kind in WORKLOAD_KINDS:
                touched_apps.update(
                    Workload.objects.filter(pk__in=gone).values_list("application_id", flat=True).distinct()
                )
            for start in range(0, len(gone), BULK):
                model._default_manager.filter(pk__in=gone[start : start + BULK]).delete()
        if versions:
            ApplicationVersion.objects.bulk_create(versions, batch_size=BULK)
    counts = {"created": len(creates), "updated": len(updates), "deleted": len(gone)}
    total = result.changes.setdefault(kind, {"created": 0, "updated": 0, "deleted": 0})
    for change, count in counts.items():
        total[change] += count
        if count:
            SYNC_CHANGES.labels(cluster.name, kind, change).inc(count)


def cap_events(cluster: Cluster) -> None:
    keep = settings.CLUSTER_WARNING_EVENTS_KEEP
    stale = list(
        WarningEvent.objects.filter(cluster=cluster).order_by("-last_seen", "-id").values_list("id", flat=True)[keep:]
    )
    for start in range(0, len(stale), BULK):
        WarningEvent.objects.filter(pk__in=stale[start : start + BULK]).delete()


def list_all(gateway: gateways.Gateway) -> dict[str, tuple[list[Row], str]]:
    """Every observed kind, listed page by page: {kind: (rows, list resourceVersion)}."""
    listed: dict[str, tuple[list[Row], str]] = {}
    for kind in KINDS.values():
        rows: list[Row] = []
        list_rv = ""
        for items, page_rv in gateway.list_pages(kind.path, query=kind.params):
            rows.extend(kind.row(obj) for obj in items)
            list_rv = page_rv
        listed[kind.key] = (rows, list_rv)
    return listed


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
        started = time.monotonic()
        try:
            gateway = gateways.for_cluster(cluster)
            version = gateway.version()
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
            _apply_rows(cluster, kind, rows, list_rv, result, touched)
        with transaction.atomic():
            refresh_active(cluster)
            cap_events(cluster)
        result.seconds = time.monotonic() - started
        SYNC_SECONDS.labels(cluster.name).observe(result.seconds)
        set_health(
            cluster.pk,
            ClusterStatus.CONNECTED,
            server_version=str(version.get("gitVersion") or ""),
            last_full_sync_at=timezone.now(),
            last_sync_duration_ms=int(result.seconds * 1000),
        )
        changed = any(any(v.values()) for v in result.changes.values())
        if changed:
            items: list[tuple[str, dict[str, Any]]] = [("applications", {"cluster": cluster.pk})]
            items += [(f"application.{pk}", {"reason": "sync"}) for pk in sorted(touched)[:200]]
            publish_many(items)
        logger.info(
            "full sync of %s: %d objects in %.2fs, changes %s",
            cluster.name,
            result.objects,
            result.seconds,
            result.changes,
        )
        return result


# --- one watch event ----------------------------------------------------------------------------------------


def apply_event(cluster: Cluster, kind: str, event_type: str, obj: dict[str, Any]) -> bool:  # noqa: PLR0912, PLR0915 - one path per event type
    """Apply one watch event (ADDED, MODIFIED, DELETED) in one transaction. False when it changed nothing."""
    spec = KINDS[kind]
    model = MODELS[kind]
    row = spec.row(obj)
    key = dict(zip(KEY_FIELDS[kind], _key(kind, row), strict=True))
    topics: list[tuple[str, dict[str, Any]]] = []
    with transaction.atomic():
        current = model._default_manager.select_for_update().filter(cluster=cluster, **key).first()
        if current is not None and newer(current.resource_version, row["resource_version"]):  # type: ignore[attr-defined]
            return False
        if event_type == "DELETED":
            if current is None:
                return False
            app_id = getattr(current, "application_id", None)
            current.delete()
            if kind in WORKLOAD_KINDS and app_id:
                Application.objects.filter(pk=app_id).update(
                    active=Exists(Workload.objects.filter(application=OuterRef("pk")))
                )
            if app_id:
                topics.append((f"application.{app_id}", {"kind": kind, "name": row["name"], "event": event_type}))
        else:
            if current is not None and current.resource_version == row["resource_version"]:  # type: ignore[attr-defined]
                return False
            values = {k: v for k, v in row.items() if not k.startswith("_")}
            app_id = None
            if kind in WORKLOAD_KINDS:
                app_name, source = row["_application"]
                app_id = ensure_applications(cluster, {(row["namespace"], app_name): source})[
                    (row["namespace"], app_name)
                ]
                values["application_id"] = app_id
                before = (
                    {"images": current.images, "revision": current.revision}  # type: ignore[attr-defined]
                    if current is not None
                    else None
                )
                version = _version(app_id, row, before, timezone.now())
                if version is not None:
                    version.save()
            elif kind == "pods":
                owner = (
                    Workload.objects.filter(
                        cluster=cluster, kind=row["owner_kind"], namespace=row["namespace"], name=row["owner_name"]
                    )
                    .values_list("id", "application_id")
                    .first()
                )
                values["workload_id"], values["application_id"] = owner or (None, None)
                app_id = values["application_id"]
            elif kind == "events":
                app_id = _event_application(cluster, row)
                values["application_id"] = app_id
            if current is None:
                current = model._default_manager.create(cluster=cluster, **values)
                if kind in WORKLOAD_KINDS:  # pods that arrived before their workload
                    Pod.objects.filter(
                        cluster=cluster,
                        namespace=row["namespace"],
                        owner_kind=row["kind"],
                        owner_name=row["name"],
                        workload__isnull=True,
                    ).update(workload=current, application_id=app_id)
            else:
                for name, value in values.items():
                    setattr(current, name, value)
                current.save()
            if kind == "events":
                cap_events_lazily(cluster)
            if app_id:
                topics.append((f"application.{app_id}", {"kind": kind, "name": row["name"], "event": event_type}))
        if kind in ("namespaces", "nodes") or (kind in WORKLOAD_KINDS and event_type != "MODIFIED"):
            topics.append(("clusters", {"cluster": cluster.pk}))
        if kind in WORKLOAD_KINDS and event_type != "MODIFIED":
            topics.append(("applications", {"cluster": cluster.pk}))
        topics.append((f"cluster.{cluster.pk}", {"kind": kind, "name": row["name"], "event": event_type}))
        publish_many(topics)
    return True


_event_counts: dict[int, int] = defaultdict(int)


def cap_events_lazily(cluster: Cluster) -> None:
    """Trim Warning events every 50 inserts per cluster (the full sync trims too)."""
    _event_counts[cluster.pk] += 1
    if _event_counts[cluster.pk] % 50 == 0:
        cap_events(cluster)


def _event_application(cluster: Cluster, row: Row) -> int | None:
    if row["object_kind"] == "Pod":
        app: int | None = (
            Pod.objects.filter(cluster=cluster, namespace=row["namespace"], name=row["object_name"])
            .values_list("application_id", flat=True)
            .first()
        )
        return app
    if row["object_kind"] in WORKLOAD_KINDS.values():
        app = (
            Workload.objects.filter(
                cluster=cluster, kind=row["object_kind"], namespace=row["namespace"], name=row["object_name"]
            )
            .values_list("application_id", flat=True)
            .first()
        )
        return app
    return None
