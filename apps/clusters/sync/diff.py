"""The guarded bulk diff of a listing: listed rows of one kind against the database, the difference applied.

The diff is computed from a snapshot read without locks, so the watcher may write the same rows meanwhile.
The writes therefore re-check, under row locks, that each row still holds the resourceVersion of the
snapshot (or an older one than the list): a row the watcher moved forward is never put back, a row it
created is not created twice, and a row it deleted is not revived."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from apps.clusters.kinds import KINDS, Kind, Row, newer
from apps.clusters.metrics import SYNC_CHANGES
from apps.clusters.models import ApplicationVersion, Cluster, Pod, Workload
from apps.clusters.sync.links import LINKERS
from apps.clusters.sync.versions import BULK, latest_versions, new_version, rolled_out

Key = tuple[str, ...]


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


@dataclass
class _Plan:
    """What a listing changes. Updates remember the resourceVersion each row held in the snapshot; a workload
    that rolled out gets a version, one whose labels name another application moves its pods along."""

    creates: dict[Key, Model] = field(default_factory=dict)
    updates: dict[int, Model] = field(default_factory=dict)
    snapshot_rv: dict[int, str] = field(default_factory=dict)
    update_keys: dict[int, Key] = field(default_factory=dict)
    gone: dict[int, Key] = field(default_factory=dict)
    rollouts: dict[Key, tuple[int, Row]] = field(default_factory=dict)
    versions: dict[Key, ApplicationVersion] = field(default_factory=dict)
    moved: dict[int, tuple[int, int]] = field(default_factory=dict)  # workload pk -> (old app, new app)

    def drop_update(self, pk: int) -> None:
        del self.updates[pk]
        self.versions.pop(self.update_keys[pk], None)
        self.moved.pop(pk, None)

    def drop_create(self, key: Key) -> None:
        del self.creates[key]
        self.versions.pop(key, None)


def _rows_of(cluster: Cluster, spec: Kind) -> QuerySet[Any]:
    rows = spec.model._default_manager.filter(cluster=cluster)
    return rows.filter(kind=spec.workload) if spec.workload else rows


def _fields(model: type[Model]) -> list[str]:
    skip = {"id", "cluster", "created_at", "application", "workload"}
    return [f.name for f in model._meta.concrete_fields if f.name not in skip]


def apply_rows(
    cluster: Cluster, kind: str, rows: list[Row], list_rv: str, *, result: SyncResult, touched: set[int]
) -> None:
    """Diff listed ``rows`` of one kind against the database and apply the difference (see the module)."""
    spec = KINDS[kind]
    base = _rows_of(cluster, spec)
    extra = ("uid", "revision", "application_id") if spec.workload else ()
    existing: dict[Key, dict[str, Any]] = {
        tuple(str(v[k]) for k in spec.key_fields): v
        for v in base.values("id", "resource_version", *spec.key_fields, *extra)
    }
    plan = _plan(cluster, spec, rows, list_rv, existing)
    if not (plan.creates or plan.updates or plan.gone):
        result.changes.setdefault(kind, {"created": 0, "updated": 0, "deleted": 0})
        return
    with transaction.atomic():
        _recheck(base, spec, plan, list_rv)
        gone_rows = _gone_rows(spec, plan) if spec.on_change is not None else []
        _write(spec, plan, touched)
        if spec.on_change is not None:
            _announce(cluster.pk, spec.on_change, plan, gone_rows)
    _touch(spec, plan, touched)
    _count(cluster, kind, plan, result)


def _not_newer(listed: str, stored: str) -> bool:
    return listed == stored or newer(stored, listed)


def _plan(cluster: Cluster, spec: Kind, rows: list[Row], list_rv: str, existing: dict[Key, dict[str, Any]]) -> _Plan:
    """Compare the listing with the snapshot: what to create, update and delete, and the versions to record."""
    plan = _Plan()
    now = timezone.now()
    linker = LINKERS.get(spec.link)
    links = linker.many(cluster, rows) if linker is not None else None
    seen: set[Key] = set()
    for row in rows:
        key = spec.key_of(row)
        seen.add(key)
        before = existing.get(key)
        if before is not None and _not_newer(row["resource_version"], before["resource_version"]):
            continue
        obj = spec.model(cluster=cluster, **{k: v for k, v in row.items() if not k.startswith("_")})
        linked = links(row) if links is not None else {}
        for name, value in linked.items():
            setattr(obj, name, value)
        if spec.workload:
            _follow_workload(plan, key, row, before, linked["application_id"])
        if before is None:
            plan.creates[key] = obj
            continue
        obj.pk = before["id"]
        obj.updated_at = now  # type: ignore[attr-defined]
        plan.updates[before["id"]] = obj
        plan.snapshot_rv[before["id"]] = before["resource_version"]
        plan.update_keys[before["id"]] = key
    plan.gone = {
        v["id"]: key for key, v in existing.items() if key not in seen and not newer(v["resource_version"], list_rv)
    }
    _versions(cluster, spec, plan, now)
    return plan


def _follow_workload(plan: _Plan, key: Key, row: Row, before: dict[str, Any] | None, app_id: Any) -> None:
    if before is not None and before["application_id"] != app_id:
        plan.moved[before["id"]] = (before["application_id"], app_id)
    if rolled_out(row, before):
        plan.rollouts[key] = (app_id, row)


def _versions(cluster: Cluster, spec: Kind, plan: _Plan, now: Any) -> None:
    if not plan.rollouts:
        return
    previous = latest_versions(cluster, spec.workload, {(r["namespace"], r["name"]) for _, r in plan.rollouts.values()})
    for key, (app_id, row) in plan.rollouts.items():
        version = new_version(app_id, row, previous.get((row["namespace"], row["name"])), now)
        if version is not None:
            plan.versions[key] = version


def _recheck(base: QuerySet[Any], spec: Kind, plan: _Plan, list_rv: str) -> None:
    """Lock the rows about to change (in id order, as every writer does) and drop what the watcher changed since
    the snapshot: the watcher wins."""
    current: dict[int, str] = {}
    ids = sorted([*plan.updates, *plan.gone])
    for start in range(0, len(ids), BULK):
        current.update(
            base.filter(pk__in=ids[start : start + BULK])
            .order_by("pk")
            .select_for_update()
            .values_list("id", "resource_version")
        )
    for pk in list(plan.updates):
        listed = plan.updates[pk].resource_version  # type: ignore[attr-defined]
        held = current.get(pk)
        if held is None or (held != plan.snapshot_rv[pk] and not newer(listed, held)):
            plan.drop_update(pk)  # deleted or moved on by the watcher since the snapshot
    plan.gone = {pk: key for pk, key in plan.gone.items() if pk in current and not newer(current[pk], list_rv)}
    if plan.creates:
        present = {tuple(str(v) for v in values) for values in base.values_list(*spec.key_fields)}
        for key in [k for k in plan.creates if k in present]:
            plan.drop_create(key)  # the watcher created it since the snapshot


def _write(spec: Kind, plan: _Plan, touched: set[int]) -> None:
    manager = spec.model._default_manager
    if plan.creates:
        # ignore_conflicts: a watch event may still insert the same row between the check and this insert.
        manager.bulk_create(list(plan.creates.values()), batch_size=BULK, ignore_conflicts=True)
    if plan.updates:
        linker = LINKERS.get(spec.link)
        update_fields = [f for f in _fields(spec.model) if f not in spec.key_fields] + ["updated_at"]
        update_fields += linker.fields if linker is not None else ()
        manager.bulk_update(list(plan.updates.values()), update_fields, batch_size=BULK)
    for workload_pk, (_, app_id) in plan.moved.items():
        Pod.objects.filter(workload_id=workload_pk).update(application_id=app_id)
    if plan.gone:
        gone_ids = list(plan.gone)
        if spec.workload:
            touched.update(Workload.objects.filter(pk__in=gone_ids).values_list("application_id", flat=True).distinct())
        for start in range(0, len(gone_ids), BULK):
            manager.filter(pk__in=gone_ids[start : start + BULK]).delete()
    if plan.versions:
        ApplicationVersion.objects.bulk_create(list(plan.versions.values()), batch_size=BULK)


def _row_of(obj: Model) -> Row:
    return {f.name: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def _gone_rows(spec: Kind, plan: _Plan) -> list[Row]:
    """The stored rows about to be deleted (read under the recheck's locks), for ``Kind.on_change``."""
    ids = list(plan.gone)
    rows: list[Row] = []
    for start in range(0, len(ids), BULK):
        rows.extend(spec.model._default_manager.filter(pk__in=ids[start : start + BULK]).values())
    return rows


def _announce(cluster_id: int, on_change: Callable[[int, Row, bool], None], plan: _Plan, gone: list[Row]) -> None:
    """Tell ``Kind.on_change`` of every row written, once the transaction commits."""
    changes = [(_row_of(obj), False) for obj in [*plan.creates.values(), *plan.updates.values()]]
    changes += [(row, True) for row in gone]

    def announce() -> None:
        for row, deleted in changes:
            on_change(cluster_id, row, deleted)

    if changes:
        transaction.on_commit(announce)


def _touch(spec: Kind, plan: _Plan, touched: set[int]) -> None:
    """Collect the applications whose page the written rows change."""
    linker = LINKERS.get(spec.link)
    if linker is not None and linker.touches_on_sync:
        for obj in [*plan.creates.values(), *plan.updates.values()]:
            app = getattr(obj, "application_id", None)
            if app:
                touched.add(app)
    touched.update(old_app for old_app, _ in plan.moved.values())


def _count(cluster: Cluster, kind: str, plan: _Plan, result: SyncResult) -> None:
    counts = {"created": len(plan.creates), "updated": len(plan.updates), "deleted": len(plan.gone)}
    total = result.changes.setdefault(kind, {"created": 0, "updated": 0, "deleted": 0})
    for change, count in counts.items():
        total[change] += count
        if count:
            SYNC_CHANGES.labels(cluster.name, kind, change).inc(count)
