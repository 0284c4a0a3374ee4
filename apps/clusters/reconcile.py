"""Reconciliation: make the database mirror the cluster.

* :func:`full_sync` lists every kind (paginated), diffs against the rows and applies the difference in bulk.
  It is idempotent (a second run changes nothing) and single-flight per cluster (an advisory lock).
* :func:`relist_apply` applies a fresh list of one kind the same way (the watcher, after 410 Gone).
* :func:`apply_event` applies one watch event in one transaction.

They run concurrently (the watcher applies events while the periodic sync runs) and never go backwards: a row
whose stored resourceVersion is newer than the listed object is left alone; a bulk write re-checks, under row
locks, that no watch event changed or removed the row since the diff was read; a row is deleted by a sync only
when it is missing from the list and not newer than the list itself (the watcher may have created it after
the list was taken). Live views learn of changes through :func:`apps.core.events.publish` after commit.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, Model, OuterRef, Subquery
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
    WatchState,
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


def _version(
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
    """Diff listed ``rows`` of one kind against the database and apply the difference.

    The diff is computed from a snapshot read without locks, so the watcher may write the same rows meanwhile.
    The writes therefore re-check, under row locks, that each row still holds the resourceVersion of the
    snapshot (or an older one than the list): a row the watcher moved forward is never put back, a row it
    created is not created twice, and a row it deleted is not revived."""
    model = MODELS[kind]
    keys = KEY_FIELDS[kind]
    base = model._default_manager.filter(cluster=cluster)
    if kind in WORKLOAD_KINDS:
        base = base.filter(kind=WORKLOAD_KINDS[kind])
    extra = ("uid", "revision", "application_id") if kind in WORKLOAD_KINDS else ()
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

    creates: dict[tuple[str, ...], Model] = {}
    updates: dict[int, Model] = {}
    snapshot_rv: dict[int, str] = {}
    update_keys: dict[int, tuple[str, ...]] = {}
    versions: dict[tuple[str, ...], ApplicationVersion] = {}
    moved: dict[int, tuple[int, int]] = {}  # workload pk -> (old application, new application)
    rollouts: dict[tuple[str, ...], tuple[int, Row]] = {}
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
            if before is not None and before["application_id"] != app_id:
                moved[before["id"]] = (before["application_id"], app_id)
            if rolled_out(row, before):
                rollouts[key] = (app_id, row)
        elif kind == "pods":
            owner = owners.get((row["owner_kind"], row["namespace"], row["owner_name"]))
            obj.workload_id, obj.application_id = owner or (None, None)  # type: ignore[attr-defined]
        elif kind == "events":
            app = pod_apps.get((row["namespace"], row["object_name"])) if row["object_kind"] == "Pod" else None
            app = app or work_apps.get((row["object_kind"], row["namespace"], row["object_name"]))
            obj.application_id = app  # type: ignore[attr-defined]
        if before is None:
            creates[key] = obj
        else:
            obj.pk = before["id"]
            obj.updated_at = now  # type: ignore[attr-defined]
            updates[before["id"]] = obj
            snapshot_rv[before["id"]] = before["resource_version"]
            update_keys[before["id"]] = key
    gone = {
        v["id"]: key for key, v in existing.items() if key not in seen and not newer(v["resource_version"], list_rv)
    }
    if rollouts:
        previous = latest_versions(
            cluster, WORKLOAD_KINDS[kind], {(r["namespace"], r["name"]) for _, r in rollouts.values()}
        )
        for key, (app_id, row) in rollouts.items():
            version = _version(app_id, row, previous.get((row["namespace"], row["name"])), now)
            if version is not None:
                versions[key] = version
    if not (creates or updates or gone):
        result.changes.setdefault(kind, {"created": 0, "updated": 0, "deleted": 0})
        return
    with transaction.atomic():
        # Lock the rows about to change (in id order, as every writer does) and read what they hold now.
        current: dict[int, str] = {}
        ids = sorted([*updates, *gone])
        for start in range(0, len(ids), BULK):
            current.update(
                base.filter(pk__in=ids[start : start + BULK])
                .order_by("pk")
                .select_for_update()
                .values_list("id", "resource_version")
            )
        for pk in list(updates):
            listed = updates[pk].resource_version  # type: ignore[attr-defined]
            held = current.get(pk)
            if held is None or (held != snapshot_rv[pk] and not newer(listed, held)):
                del updates[pk]  # deleted or moved on by the watcher since the snapshot: the watcher wins
                versions.pop(update_keys[pk], None)
                moved.pop(pk, None)
        gone = {pk: key for pk, key in gone.items() if pk in current and not newer(current[pk], list_rv)}
        if creates:
            present = {tuple(str(v) for v in values) for values in base.values_list(*keys)}
            for key in [k for k in creates if k in present]:
                del creates[key]  # the watcher created it since the snapshot
                versions.pop(key, None)
        if creates:
            # ignore_conflicts: a watch event may still insert the same row between the check and this insert.
            model._default_manager.bulk_create(list(creates.values()), batch_size=BULK, ignore_conflicts=True)
        if updates:
            model._default_manager.bulk_update(list(updates.values()), update_fields, batch_size=BULK)
        for workload_pk, (_, app_id) in moved.items():
            Pod.objects.filter(workload_id=workload_pk).update(application_id=app_id)
        if gone:
            if kind in WORKLOAD_KINDS:
                touched_apps.update(
                    Workload.objects.filter(pk__in=list(gone)).values_list("application_id", flat=True).distinct()
                )
            gone_ids = list(gone)
            for start in range(0, len(gone_ids), BULK):
                model._default_manager.filter(pk__in=gone_ids[start : start + BULK]).delete()
        if versions:
            ApplicationVersion.objects.bulk_create(list(versions.values()), batch_size=BULK)
    for obj in [*creates.values(), *updates.values()]:
        app = getattr(obj, "application_id", None)
        if app and kind != "events":
            touched_apps.add(app)
    for old_app, _ in moved.values():
        touched_apps.add(old_app)
    counts = {"created": len(creates), "updated": len(updates), "deleted": len(gone)}
    total = result.changes.setdefault(kind, {"created": 0, "updated": 0, "deleted": 0})
    for change, count in counts.items():
        total[change] += count
        if count:
            SYNC_CHANGES.labels(cluster.name, kind, change).inc(count)


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


def cap_events(cluster: Cluster) -> None:
    keep = settings.CLUSTER_WARNING_EVENTS_KEEP
    stale = list(
        WarningEvent.objects.filter(cluster=cluster).order_by("-last_seen", "-id").values_list("id", flat=True)[keep:]
    )
    for start in range(0, len(stale), BULK):
        WarningEvent.objects.filter(pk__in=stale[start : start + BULK]).delete()


def list_kind(gateway: gateways.Gateway, kind: str) -> tuple[list[Row], str]:
    """Every object of one kind, listed page by page: (rows, the list's resourceVersion)."""
    spec = KINDS[kind]
    rows: list[Row] = []
    list_rv = ""
    for items, page_rv in gateway.list_pages(spec.path, query=spec.params):
        rows.extend(spec.row(obj) for obj in items)
        list_rv = page_rv
    return rows, list_rv


def list_all(gateway: gateways.Gateway) -> dict[str, tuple[list[Row], str]]:
    """Every observed kind, listed page by page: {kind: (rows, list resourceVersion)}."""
    return {key: list_kind(gateway, key) for key in KINDS}


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
            link_orphan_pods(cluster)
            refresh_active(cluster)
            cap_events(cluster)
        result.seconds = time.monotonic() - started
        SYNC_SECONDS.labels(cluster.name).observe(result.seconds)
        failing = failing_watches(cluster.pk)
        set_health(
            cluster.pk,
            ClusterStatus.DEGRADED if failing else ClusterStatus.CONNECTED,
            failing,
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


def relist_apply(cluster: Cluster, kind: str, rows: list[Row], list_rv: str) -> SyncResult:
    """Apply a fresh list of one kind (the watcher's relist after 410 Gone or a broken stream): the same
    guarded diff as a full sync, then the follow-ups that kind needs, and live updates for what changed."""
    result = SyncResult(cluster_id=cluster.pk, objects=len(rows), resource_versions={kind: list_rv})
    touched: set[int] = set()
    _apply_rows(cluster, kind, rows, list_rv, result, touched)
    counts = result.changes.get(kind, {})
    if not any(counts.values()):
        return result
    with transaction.atomic():
        if kind in WORKLOAD_KINDS:
            link_orphan_pods(cluster)
            refresh_active(cluster)
        elif kind == "events":
            cap_events(cluster)
        items: list[tuple[str, dict[str, Any]]] = [(f"cluster.{cluster.pk}", {"kind": kind, "event": "RELIST"})]
        if kind in WORKLOAD_KINDS or kind in ("namespaces", "nodes"):
            items.append(("clusters", {"cluster": cluster.pk}))
        if kind in WORKLOAD_KINDS:
            items.append(("applications", {"cluster": cluster.pk}))
        items += [(f"application.{pk}", {"reason": "relist", "kind": kind}) for pk in sorted(touched)[:200]]
        publish_many(items)
    return result


# --- one watch event ----------------------------------------------------------------------------------------


def apply_event(cluster: Cluster, kind: str, event_type: str, obj: dict[str, Any]) -> bool:
    """Apply one watch event (ADDED, MODIFIED, DELETED) in one transaction. False when it changed nothing.

    A relist or full sync may insert the same row between this event's read and its insert; the event is then
    applied again, as an update guarded by resourceVersion."""
    for attempt in range(3):
        try:
            return _apply_event(cluster, kind, event_type, obj)
        except IntegrityError:
            if attempt == 2:
                raise
    return False


def _apply_event(cluster: Cluster, kind: str, event_type: str, obj: dict[str, Any]) -> bool:  # noqa: PLR0912, PLR0915 - one path per event type
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
                before = {"revision": current.revision, "uid": current.uid} if current is not None else None  # type: ignore[attr-defined]
                if rolled_out(row, before):
                    workload_key = (row["namespace"], row["name"])
                    previous = latest_versions(cluster, row["kind"], {workload_key}).get(workload_key)
                    version = _version(app_id, row, previous, timezone.now())
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
                old_app = getattr(current, "application_id", None)
                for name, value in values.items():
                    setattr(current, name, value)
                current.save()
                if kind in WORKLOAD_KINDS and old_app and old_app != app_id:  # its labels name another application
                    Pod.objects.filter(workload_id=current.pk).update(application_id=app_id)
                    Application.objects.filter(pk=old_app).update(
                        active=Exists(Workload.objects.filter(application=OuterRef("pk")))
                    )
                    topics.append((f"application.{old_app}", {"kind": kind, "name": row["name"], "event": "MOVED"}))
                    topics.append(("applications", {"cluster": cluster.pk}))
            if kind == "events":
                cap_events_lazily(cluster)
            if app_id:
                topics.append((f"application.{app_id}", {"kind": kind, "name": row["name"], "event": event_type}))
        if kind in ("namespaces", "nodes") or (kind in WORKLOAD_KINDS and event_type != "MODIFIED"):
            topics.append(("clusters", {"cluster": cluster.pk}))
        if kind in WORKLOAD_KINDS or kind == "pods":  # the list shows replicas and pods ready / total
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
