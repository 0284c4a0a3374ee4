"""The Kubernetes kinds ICC observes: how each object becomes a row (pure functions, no database), where the rows
are stored and what else a change of one touches (data the reconciler reads instead of asking which kind it has)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from django.db.models import Model
from django.utils.dateparse import parse_datetime

from apps.clusters import signals
from apps.clusters.models import JobState, KubeJob, Namespace, Node, Pod, WarningEvent, Workload

PART_OF = "app.kubernetes.io/part-of"
APP_NAME = "app.kubernetes.io/name"
MANAGED_BY = "app.kubernetes.io/managed-by"
# The label of the Jobs ICC creates; they are the only Jobs it observes (a cluster may hold thousands of others).
ICC_MANAGED = {MANAGED_BY: "icc"}
ICC_MANAGED_SELECTOR = f"{MANAGED_BY}=icc"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
Row = dict[str, Any]
# A pod template larger than this (as JSON) is not stored: a row stays small enough to read in bulk.
POD_TEMPLATE_MAX_BYTES = 256 * 1024

logger = logging.getLogger(__name__)


def ts(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) and value else None


def application_of(name: str, labels: dict[str, str]) -> tuple[str, str]:
    """Rule: an application is named by app.kubernetes.io/part-of, else app.kubernetes.io/name, else the
    workload's own name. Returns (name, which label named it)."""
    if labels.get(PART_OF):
        return labels[PART_OF], PART_OF
    if labels.get(APP_NAME):
        return labels[APP_NAME], APP_NAME
    return name, "workload"


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = obj.get("metadata") or {}
    return meta


def _common(obj: dict[str, Any]) -> Row:
    meta = _meta(obj)
    return {
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "resource_version": meta.get("resourceVersion", ""),
    }


def _annotations(meta: dict[str, Any]) -> dict[str, str]:
    """An object's annotations without kubectl's copy of the whole object."""
    return {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}


def namespace_row(obj: dict[str, Any]) -> Row:
    meta = _meta(obj)
    return {
        **_common(obj),
        "phase": (obj.get("status") or {}).get("phase", ""),
        "labels": meta.get("labels") or {},
        "k8s_created_at": ts(meta.get("creationTimestamp")),
    }


def _condition(conditions: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == kind), None)


def _slim_conditions(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = ("type", "status", "reason", "message", "lastTransitionTime")
    return [{k: c.get(k, "") for k in keep} for c in conditions]


def node_row(obj: dict[str, Any]) -> Row:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    conditions = status.get("conditions") or []
    ready = _condition(conditions, "Ready")
    return {
        **_common(obj),
        "labels": meta.get("labels") or {},
        "capacity": status.get("capacity") or {},
        "allocatable": status.get("allocatable") or {},
        "conditions": _slim_conditions(conditions),
        "ready": bool(ready and ready.get("status") == "True"),
        "cordoned": bool(spec.get("unschedulable")),
        "kubelet_version": (status.get("nodeInfo") or {}).get("kubeletVersion", ""),
        "k8s_created_at": ts(meta.get("creationTimestamp")),
    }


def _images(template: dict[str, Any]) -> list[dict[str, str]]:
    containers = ((template.get("spec") or {}).get("containers")) or []
    return [{"container": c.get("name", ""), "image": c.get("image", "")} for c in containers]


def pod_template(obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A workload's ``spec.template``: its labels, annotations and pod spec (no other metadata, no status), what
    the compliance checks read. Returns (template, oversized); an oversized template is stored as ``{}``."""
    template = (obj.get("spec") or {}).get("template") or {}
    meta = template.get("metadata") or {}
    kept = {
        "metadata": {"labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {}},
        "spec": template.get("spec") or {},
    }
    size = len(orjson.dumps(kept))
    if size <= POD_TEMPLATE_MAX_BYTES:
        return kept, False
    owner = _meta(obj)
    logger.warning(
        "pod template of %s/%s not stored: %d bytes of JSON, more than %d",
        owner.get("namespace", ""),
        owner.get("name", ""),
        size,
        POD_TEMPLATE_MAX_BYTES,
    )
    return {}, True


def rollout_state(kind: str, obj: dict[str, Any]) -> str:
    """Rule: failed when Progressing=False (deadline exceeded); paused when the spec says so; complete when
    the controller saw the latest generation and every replica is updated and available; else progressing."""
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    conditions = status.get("conditions") or []
    progressing = _condition(conditions, "Progressing")
    if progressing and progressing.get("status") == "False":
        return "failed"
    if spec.get("paused"):
        return "paused"
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return "progressing"
    if kind == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled") or 0)
        done = (
            int(status.get("updatedNumberScheduled") or 0) >= desired
            and int(status.get("numberAvailable") or 0) >= desired
        )
    else:
        desired = int(spec["replicas"] if spec.get("replicas") is not None else 1)
        updated = int(status.get("updatedReplicas") or 0)
        available = int(status.get("availableReplicas") or status.get("readyReplicas") or 0)
        current = int(status.get("replicas") or 0)
        done = updated >= desired and available >= desired and current <= desired
        if kind == "StatefulSet" and status.get("updateRevision") != status.get("currentRevision"):
            done = done and not status.get("updateRevision")
    return "complete" if done else "progressing"


def workload_row(kind: str, obj: dict[str, Any]) -> Row:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    annotations = meta.get("annotations") or {}
    if kind == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled") or 0)
        current = int(status.get("currentNumberScheduled") or 0)
        ready = int(status.get("numberReady") or 0)
        available = int(status.get("numberAvailable") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        revision = str(meta.get("generation") or "")
    else:
        desired = int(spec["replicas"] if spec.get("replicas") is not None else 1)
        current = int(status.get("replicas") or 0)
        ready = int(status.get("readyReplicas") or 0)
        available = int(status.get("availableReplicas") or (ready if kind == "StatefulSet" else 0))
        updated = int(status.get("updatedReplicas") or 0)
        if kind == "Deployment":
            revision = str(annotations.get("deployment.kubernetes.io/revision") or "")
        else:
            revision = str(status.get("updateRevision") or status.get("currentRevision") or "")
    labels = meta.get("labels") or {}
    template = spec.get("template") or {}
    app_labels = {**((template.get("metadata") or {}).get("labels") or {}), **labels}
    app_name, app_source = application_of(meta.get("name", ""), app_labels)
    stored_template, oversized = pod_template(obj)
    return {
        **_common(obj),
        "kind": kind,
        "namespace": meta.get("namespace", ""),
        "labels": labels,
        "annotations": _annotations(meta),
        "selector": (spec.get("selector") or {}).get("matchLabels") or {},
        "desired_replicas": desired,
        "current_replicas": current,
        "ready_replicas": ready,
        "available_replicas": available,
        "updated_replicas": updated,
        "images": _images(template),
        "pod_template": stored_template,
        "pod_template_oversized": oversized,
        "conditions": _slim_conditions(status.get("conditions") or []),
        "generation": int(meta.get("generation") or 0),
        "observed_generation": int(status.get("observedGeneration") or 0),
        "rollout_state": rollout_state(kind, obj),
        "revision": revision,
        "k8s_created_at": ts(meta.get("creationTimestamp")),
        "_application": (app_name, app_source),
    }


def _container(status: dict[str, Any], image: str) -> dict[str, Any]:
    state = status.get("state") or {}
    name = next(iter(state), "waiting") if state else "waiting"
    last = (status.get("lastState") or {}).get("terminated") or {}
    return {
        "name": status.get("name", ""),
        "image": status.get("image") or image,
        "ready": bool(status.get("ready")),
        "state": name,
        "reason": (state.get(name) or {}).get("reason", "") if state else "",
        "restarts": int(status.get("restartCount") or 0),
        "last_reason": last.get("reason", ""),
    }


def pod_owner(obj: dict[str, Any]) -> tuple[str, str]:
    """(workload kind, workload name) owning a pod: a ReplicaSet's pods belong to its Deployment, whose name
    is the ReplicaSet's minus the ``-<pod-template-hash>`` suffix."""
    meta = _meta(obj)
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    if not owner:
        return "", ""
    kind, name = owner.get("kind", ""), owner.get("name", "")
    if kind == "ReplicaSet":
        template_hash = (meta.get("labels") or {}).get("pod-template-hash", "")
        if template_hash and name.endswith(f"-{template_hash}"):
            return "Deployment", name[: -len(template_hash) - 1]
        return "ReplicaSet", name
    return kind, name


def pod_row(obj: dict[str, Any]) -> Row:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    images = {c.get("name"): c.get("image", "") for c in spec.get("containers") or []}
    statuses = {s.get("name"): s for s in status.get("containerStatuses") or []}
    containers = [_container(statuses.get(name) or {"name": name}, image) for name, image in images.items()]
    conditions = status.get("conditions") or []
    ready = _condition(conditions, "Ready")
    reason = ""
    for c in containers:  # the most telling problem first
        if c["reason"] in ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError"):
            reason = c["reason"]
            break
        if c["last_reason"] == "OOMKilled" or c["reason"] == "OOMKilled":
            reason = "OOMKilled"
    if not reason:
        reason = status.get("reason", "")
        if not reason and (status.get("phase") == "Pending"):
            scheduled = _condition(conditions, "PodScheduled")
            if scheduled and scheduled.get("status") == "False":
                reason = scheduled.get("reason", "") or "Unschedulable"
    owner_kind, owner_name = pod_owner(obj)
    return {
        **_common(obj),
        "namespace": meta.get("namespace", ""),
        "labels": meta.get("labels") or {},
        "owner_kind": owner_kind,
        "owner_name": owner_name,
        "node_name": spec.get("nodeName", ""),
        "phase": status.get("phase", ""),
        "ready": bool(ready and ready.get("status") == "True"),
        "restarts": sum(c["restarts"] for c in containers),
        "reason": reason[:64],
        "containers": containers,
        "pod_ip": status.get("podIP", ""),
        "service_account": spec.get("serviceAccountName", ""),
        "started_at": ts(status.get("startTime")),
        "deleting": bool(meta.get("deletionTimestamp")),
    }


def event_row(obj: dict[str, Any]) -> Row:
    meta = _meta(obj)
    involved = obj.get("involvedObject") or {}
    last = obj.get("lastTimestamp") or obj.get("eventTime") or meta.get("creationTimestamp")
    return {
        **_common(obj),
        "namespace": meta.get("namespace", ""),
        "object_kind": involved.get("kind", ""),
        "object_name": involved.get("name", ""),
        "reason": (obj.get("reason") or "")[:128],
        "message": (obj.get("message") or "")[:2000],
        "count": int(obj.get("count") or 1),
        "first_seen": ts(obj.get("firstTimestamp") or last),
        "last_seen": ts(last),
    }


def job_state(obj: dict[str, Any]) -> tuple[str, str]:
    """Rule: a Job has succeeded once its Complete condition is True, failed once its Failed condition is True
    (the reason says why: BackoffLimitExceeded, DeadlineExceeded), and is running until then.
    Returns (state, failure reason)."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    complete, failed = _condition(conditions, "Complete"), _condition(conditions, "Failed")
    if complete and complete.get("status") == "True":
        return JobState.SUCCEEDED, ""
    if failed and failed.get("status") == "True":
        return JobState.FAILED, str(failed.get("reason") or "Failed")[:64]
    return JobState.RUNNING, ""


def job_row(obj: dict[str, Any]) -> Row:
    meta, status = _meta(obj), obj.get("status") or {}
    state, failure_reason = job_state(obj)
    return {
        **_common(obj),
        "namespace": meta.get("namespace", ""),
        "labels": meta.get("labels") or {},
        "annotations": _annotations(meta),
        "active": int(status.get("active") or 0),
        "succeeded": int(status.get("succeeded") or 0),
        "failed": int(status.get("failed") or 0),
        "conditions": _slim_conditions(status.get("conditions") or []),
        "start_time": ts(status.get("startTime")),
        "completion_time": ts(status.get("completionTime")),
        "state": state,
        "failure_reason": failure_reason,
        "k8s_created_at": ts(meta.get("creationTimestamp")),
    }


WATCH_EVENTS = frozenset({"ADDED", "MODIFIED", "DELETED"})
ANY_CHANGE = WATCH_EVENTS | {"RELIST"}


@dataclass(frozen=True)
class Kind:
    key: str  # the watch/list name, e.g. "deployments"
    path: str  # the cluster-wide list path
    row: Callable[[dict[str, Any]], Row]
    model: type[Model]  # where its rows are stored
    key_fields: tuple[str, ...]  # what names a row within a cluster
    query: tuple[tuple[str, str], ...] = ()  # list and watch parameters: a fieldSelector or labelSelector
    workload: str = ""  # the workload kind ("Deployment" ...): the row names its application and has versions
    link: str = ""  # how a row finds its application: "labels" (its own), "owner" (its workload's), "involved"
    capped: bool = False  # only the newest CLUSTER_WARNING_EVENTS_KEEP rows are kept
    clusters_list_on: frozenset[str] = frozenset()  # the changes ("RELIST" too) the clusters list shows
    applications_list_on: frozenset[str] = frozenset()  # and those the applications list shows
    # Called after commit for each row a sync, relist or watch event created, changed or deleted:
    # (cluster id, the row, deleted). How other apps hear of a kind without clusters importing them.
    on_change: Callable[[int, Mapping[str, Any], bool], None] | None = None

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)

    def key_of(self, row: Row) -> tuple[str, ...]:
        return tuple(str(row[name]) for name in self.key_fields)


def _workload_kind(key: str, workload: str) -> Kind:
    return Kind(
        key,
        f"/apis/apps/v1/{key}",
        lambda o: workload_row(workload, o),
        Workload,
        ("kind", "namespace", "name"),
        workload=workload,
        link="labels",
        clusters_list_on=frozenset({"ADDED", "DELETED", "RELIST"}),  # its counts, not its state
        applications_list_on=ANY_CHANGE,
        on_change=signals.workload_changed,
    )


KINDS: dict[str, Kind] = {
    k.key: k
    for k in (
        Kind("namespaces", "/api/v1/namespaces", namespace_row, Namespace, ("name",), clusters_list_on=ANY_CHANGE),
        Kind("nodes", "/api/v1/nodes", node_row, Node, ("name",), clusters_list_on=ANY_CHANGE),
        _workload_kind("deployments", "Deployment"),
        _workload_kind("statefulsets", "StatefulSet"),
        _workload_kind("daemonsets", "DaemonSet"),
        Kind(
            "pods",
            "/api/v1/pods",
            pod_row,
            Pod,
            ("namespace", "name"),
            link="owner",
            applications_list_on=WATCH_EVENTS,  # ready / total pods; a relist is followed by a full page reload
        ),
        Kind(
            "events",
            "/api/v1/events",
            event_row,
            WarningEvent,
            ("uid",),
            (("fieldSelector", "type=Warning"),),
            link="involved",
            capped=True,
        ),
        Kind(
            "jobs",
            "/apis/batch/v1/jobs",
            job_row,
            KubeJob,
            ("namespace", "name"),
            (("labelSelector", ICC_MANAGED_SELECTOR),),
            on_change=signals.job_changed,
        ),
    )
}
WORKLOAD_KINDS = {"deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet"}
WORKLOAD_PATHS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}


def workload_path(kind: str, namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/{WORKLOAD_PATHS[kind]}/{name}"


def newer(a: str, b: str) -> bool:
    """Is resourceVersion ``a`` newer than ``b``? (etcd revisions: integers; unknown forms never are.)"""
    return a.isdigit() and b.isdigit() and int(a) > int(b)
