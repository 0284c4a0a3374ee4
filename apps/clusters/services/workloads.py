"""Actions on workloads and pods: scale, restart, read logs. Each write checks its caller and is audited."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.clusters import gateway as gateways
from apps.clusters.kinds import workload_path
from apps.clusters.models import Pod, Workload
from apps.clusters.services.clusters import check_caller
from apps.core.access import Action, Scope, ScopeKind
from apps.core.errors import ConflictError, DomainError
from apps.core.freeze import freeze_check

logger = logging.getLogger(__name__)


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("say why (it goes into the audit trail)", field="reason")
    if len(reason) > 500:
        raise DomainError("at most 500 characters", field="reason")
    return reason


def workload_audit_scope(workload: Workload) -> dict[str, str]:
    """Where an action on a workload is recorded in the audit trail: its cluster, namespace and application."""
    return {
        "cluster": str(workload.cluster_id),
        "namespace": workload.namespace,
        "application": workload.application.name,
    }


def freeze_scope(workload: Workload) -> Scope:
    """The coordinates a change freeze is looked up at for an action on ``workload``."""
    return Scope(ScopeKind.APPLICATION, str(workload.cluster_id), workload.namespace, workload.application.name)


def workload_scale(
    workload: Workload,
    *,
    replicas: int,
    reason: str,
    resource_version: str = "",
    override: bool = False,
    by: Any = None,
) -> dict[str, Any]:
    """Set a workload's replicas through the scale subresource with a resourceVersion precondition (the
    caller's, or the one just read): a concurrent change answers 409 instead of being overwritten.
    Rule: operators of the workload (act) scale it; during a change freeze only with ``override`` (the reason is
    the override's, see :func:`apps.core.freeze.freeze_check`)."""
    check_caller(by, Action.ACT, workload, "scaling this workload")
    reason = _reason(reason)
    overridden = freeze_check(freeze_scope(workload), workload, override=override, reason=reason, by=by)
    if workload.kind == "DaemonSet":
        raise DomainError("a DaemonSet runs one pod per node; it cannot be scaled", field="replicas")
    if not isinstance(replicas, int) or replicas < 0 or replicas > 10000:
        raise DomainError("a whole number from 0 to 10000", field="replicas")
    gateway = gateways.for_cluster(workload.cluster)
    path = workload_path(workload.kind, workload.namespace, workload.name)
    current = gateway.get_scale(path)
    previous = int((current.get("spec") or {}).get("replicas") or 0)
    precondition = resource_version or str((current.get("metadata") or {}).get("resourceVersion") or "")
    outcome = "success"
    try:
        result = gateway.put_scale(path, current, replicas, precondition)
    except gateways.Conflict:
        outcome = "failure"
        raise ConflictError(
            f"{workload} changed since resourceVersion {precondition}; read it again and retry",
            field="resource_version",
        ) from None
    finally:
        with transaction.atomic():
            audit_record(
                action="clusters.workload.scale",
                target=workload,
                outcome=outcome,
                message=reason,
                changes={"replicas": [previous, replicas]},
                metadata={"resource_version": precondition, **overridden},
                scope=workload_audit_scope(workload),
            )
    return {"replicas": replicas, "previous": previous, "resource_version": result["metadata"]["resourceVersion"]}


def workload_restart(workload: Workload, *, reason: str, override: bool = False, by: Any = None) -> dict[str, Any]:
    """A rollout restart, as ``kubectl rollout restart`` does: stamp the pod template with the time (act); during
    a change freeze only with ``override``."""
    check_caller(by, Action.ACT, workload, "restarting this workload")
    reason = _reason(reason)
    overridden = freeze_check(freeze_scope(workload), workload, override=override, reason=reason, by=by)
    gateway = gateways.for_cluster(workload.cluster)
    stamp = timezone.now().isoformat()
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}
    result = gateway.patch(workload_path(workload.kind, workload.namespace, workload.name), patch)
    with transaction.atomic():
        audit_record(
            action="clusters.workload.restart",
            target=workload,
            message=reason,
            changes={"restartedAt": [None, stamp]},
            metadata=overridden,
            scope=workload_audit_scope(workload),
        )
    return {"restarted_at": stamp, "generation": (result.get("metadata") or {}).get("generation")}


def pod_logs(pod: Pod, *, container: str = "", tail_lines: int = 100) -> list[str]:
    """The last ``tail_lines`` lines of a container's log (reading logs is audited: they may hold data)."""
    names = [c.get("name") for c in pod.containers]
    if container and container not in names:
        raise DomainError(
            f"no container {container!r} in {pod}; it has {', '.join(map(str, names))}", field="container"
        )
    if not 1 <= tail_lines <= 10000:
        raise DomainError("from 1 to 10000", field="tail_lines")
    container = container or str(names[0] if names else "")
    response = gateways.for_cluster(pod.cluster).pod_log(
        pod.namespace, pod.name, container=container, tail_lines=tail_lines
    )
    try:
        text = response.read().decode(errors="replace")
    finally:
        response.release_conn()
    with transaction.atomic():
        audit_record(
            action="clusters.pod.logs",
            target=pod,
            metadata={"container": container, "tail_lines": tail_lines},
            scope={
                "cluster": str(pod.cluster_id),
                "namespace": pod.namespace,
                "application": pod.application.name if pod.application else "",
            },
        )
    return text.splitlines()
