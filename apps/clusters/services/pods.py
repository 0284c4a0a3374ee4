"""Deleting one pod (``kubectl delete pod``): the operator's way to recycle a stuck or misbehaving pod, which its
controller (ReplicaSet, StatefulSet, DaemonSet) replaces. Audited; during a change freeze only with an override."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.db import transaction

from apps.audit.services import audit_record
from apps.clusters import gateway as gateways
from apps.clusters.models import Pod
from apps.clusters.services.clusters import check_caller
from apps.clusters.services.workloads import _reason
from apps.core.access import Action, Scope, ScopeKind
from apps.core.errors import ConflictError, NotFoundError
from apps.core.freeze import freeze_check


def pod_freeze_scope(pod: Pod) -> Scope:
    """Where a change freeze is looked up for an action on ``pod``: its application, else its namespace."""
    if pod.application is not None:
        return Scope(ScopeKind.APPLICATION, str(pod.cluster_id), pod.namespace, pod.application.name)
    return Scope(ScopeKind.NAMESPACE, str(pod.cluster_id), pod.namespace)


def pod_delete(*, pod: Pod, reason: str, override: bool = False, by: Any = None) -> dict[str, Any]:
    """Delete ``pod`` in its cluster with a UID precondition (a pod recreated under the same name since ICC saw it,
    as a StatefulSet does, is not deleted: 409). Rule: who may act on the pod's workload (on the pod itself when it
    has none) deletes it, with a reason; during a change freeze only with ``override`` (see
    :func:`apps.core.freeze.freeze_check`)."""
    target = pod.workload if pod.workload is not None else pod
    check_caller(by, Action.ACT, target, "deleting this pod")
    reason = _reason(reason)
    overridden = freeze_check(pod_freeze_scope(pod), target, override=override, reason=reason, by=by)
    path = f"/api/v1/namespaces/{quote(pod.namespace)}/pods/{quote(pod.name)}"
    options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
    if pod.uid:
        options["preconditions"] = {"uid": pod.uid}
    outcome, answer = "success", "deleted"
    try:
        gateways.for_cluster(pod.cluster).raw("DELETE", path, body=options, retries=2)
    except gateways.NotFound:
        outcome, answer = "failure", "gone"
        raise NotFoundError(f"{pod} is already gone", field="pod") from None
    except gateways.Conflict:
        outcome, answer = "failure", "replaced"
        raise ConflictError(f"{pod} was replaced by a new pod of the same name since ICC saw it", field="pod") from None
    finally:
        with transaction.atomic():
            audit_record(
                action="clusters.pod.delete",
                target=pod,
                outcome=outcome,
                message=reason,
                metadata={
                    "uid": pod.uid,
                    "workload": str(pod.workload) if pod.workload is not None else "",
                    "answer": answer,
                    **overridden,
                },
                scope={
                    "cluster": str(pod.cluster_id),
                    "namespace": pod.namespace,
                    "application": pod.application.name if pod.application is not None else "",
                },
            )
    Pod.objects.filter(pk=pod.pk).update(deleting=True)  # the watch confirms it; the page shows it at once
    return {"pod": pod.pk, "name": pod.name, "deleting": True}
