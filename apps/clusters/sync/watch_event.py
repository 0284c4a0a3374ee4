"""One watch event (ADDED, MODIFIED, DELETED) applied in one transaction, live updates published after commit.

An event never goes backwards: a stored row whose resourceVersion is newer than the event's is left alone."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Model
from django.utils import timezone

from apps.clusters import events
from apps.clusters.kinds import KINDS, Kind, Row, newer
from apps.clusters.models import Cluster, Pod
from apps.clusters.sync.full import cap_events
from apps.clusters.sync.links import LINKERS
from apps.clusters.sync.versions import latest_versions, new_version, refresh_active_one, rolled_out
from apps.core.events import publish_many

Topics = list[tuple[str, dict[str, Any]]]


def apply_event(cluster: Cluster, kind: str, event_type: str, obj: dict[str, Any]) -> bool:
    """Apply one watch event (ADDED, MODIFIED, DELETED) in one transaction. False when it changed nothing.

    A relist or full sync may insert the same row between this event's read and its insert; the event is then
    applied again, as an update guarded by resourceVersion."""
    for attempt in range(3):
        try:
            return _apply_event(cluster, KINDS[kind], event_type, obj)
        except IntegrityError:
            if attempt == 2:
                raise
    return False


def _apply_event(cluster: Cluster, spec: Kind, event_type: str, obj: dict[str, Any]) -> bool:
    row = spec.row(obj)
    key = dict(zip(spec.key_fields, spec.key_of(row), strict=True))
    with transaction.atomic():
        current = spec.model._default_manager.select_for_update().filter(cluster=cluster, **key).first()
        stored_rv = getattr(current, "resource_version", None)
        if stored_rv is not None and newer(stored_rv, row["resource_version"]):
            return False
        if event_type == "DELETED":
            if current is None:
                return False
            topics = _delete(spec, current, row)
        else:
            if stored_rv == row["resource_version"]:
                return False
            topics = _upsert(cluster, spec, event_type, row, current)
        if event_type in spec.clusters_list_on:
            topics.append(events.list_changed(events.CLUSTERS, cluster.pk))
        if event_type in spec.applications_list_on:  # the list shows replicas and pods ready / total
            topics.append(events.list_changed(events.APPLICATIONS, cluster.pk))
        topics.append(
            events.object_changed(
                events.cluster(cluster.pk), {"kind": spec.key, "name": row["name"], "event": event_type}
            )
        )
        publish_many(topics)
        if spec.on_change is not None:
            on_change, deleted = spec.on_change, event_type == "DELETED"
            transaction.on_commit(lambda: on_change(cluster.pk, row, deleted))
    return True


def _delete(spec: Kind, current: Model, row: Row) -> Topics:
    app_id = getattr(current, "application_id", None)
    current.delete()
    if spec.workload and app_id:
        refresh_active_one(app_id)
    if not app_id:
        return []
    return [
        events.object_changed(events.application(app_id), {"kind": spec.key, "name": row["name"], "event": "DELETED"})
    ]


def _upsert(cluster: Cluster, spec: Kind, event_type: str, row: Row, current: Model | None) -> Topics:
    topics: Topics = []
    values = {k: v for k, v in row.items() if not k.startswith("_")}
    linker = LINKERS.get(spec.link)
    if linker is not None:
        values.update(linker.one(cluster, row))
    app_id = values.get("application_id")
    if spec.workload:
        _record_version(cluster, row, current, app_id)
    if current is None:
        current = spec.model._default_manager.create(cluster=cluster, **values)
        if spec.workload:
            _adopt_pods(cluster, row, current, app_id)
    else:
        old_app = getattr(current, "application_id", None)
        for name, value in values.items():
            setattr(current, name, value)
        current.save()
        if spec.workload and old_app and old_app != app_id:  # its labels name another application
            topics += _move(cluster, spec, row, current, old_app=old_app, app_id=app_id)
    if spec.capped:
        cap_events_lazily(cluster)
    if app_id:
        topics.append(
            events.object_changed(
                events.application(app_id), {"kind": spec.key, "name": row["name"], "event": event_type}
            )
        )
    return topics


def _record_version(cluster: Cluster, row: Row, current: Model | None, app_id: Any) -> None:
    before = {"revision": current.revision, "uid": current.uid} if current is not None else None  # type: ignore[attr-defined]
    if not rolled_out(row, before):
        return
    workload_key = (row["namespace"], row["name"])
    previous = latest_versions(cluster, row["kind"], {workload_key}).get(workload_key)
    version = new_version(app_id, row, previous, timezone.now())
    if version is not None:
        version.save()


def _adopt_pods(cluster: Cluster, row: Row, workload: Model, app_id: Any) -> None:
    """Link the pods that arrived before their workload."""
    Pod.objects.filter(
        cluster=cluster,
        namespace=row["namespace"],
        owner_kind=row["kind"],
        owner_name=row["name"],
        workload__isnull=True,
    ).update(workload=workload, application_id=app_id)


def _move(cluster: Cluster, spec: Kind, row: Row, workload: Model, *, old_app: int, app_id: Any) -> Topics:
    """A workload whose labels now name another application takes its pods along."""
    Pod.objects.filter(workload_id=workload.pk).update(application_id=app_id)
    refresh_active_one(old_app)
    return [
        events.object_changed(events.application(old_app), {"kind": spec.key, "name": row["name"], "event": "MOVED"}),
        events.list_changed(events.APPLICATIONS, cluster.pk),
    ]


_event_counts: dict[int, int] = defaultdict(int)


def cap_events_lazily(cluster: Cluster) -> None:
    """Trim Warning events every 50 inserts per cluster (the full sync trims too)."""
    _event_counts[cluster.pk] += 1
    if _event_counts[cluster.pk] % 50 == 0:
        cap_events(cluster)
