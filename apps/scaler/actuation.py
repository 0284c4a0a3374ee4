"""Writing replica counts: the scale subresource with a resourceVersion precondition, or an HPA's min/max.

Writes carry ``fieldManager=icc`` so ownership (``managedFields``) shows who set the count. A conflict (409:
someone changed the workload since it was read) is retried once on a fresh read; nothing else is retried here
(the gateway already retries transient failures of idempotent calls).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.clusters import gateway as gateways
from apps.clusters.kinds import workload_path
from apps.scaler.ownership import FIELD_MANAGER


@dataclass(frozen=True)
class ScaleOutcome:
    previous: int
    replicas: int
    resource_version: str
    attempts: int


def read_workload(gateway: gateways.Gateway, *, kind: str, namespace: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = gateway.get(workload_path(kind, namespace, name))
    return data


def _put(gateway: gateways.Gateway, path: str, scale: dict[str, Any], replicas: int, resource_version: str) -> Any:
    body = {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {**(scale.get("metadata") or {}), "resourceVersion": resource_version},
        "spec": {"replicas": replicas},
    }
    return gateway.json("PUT", f"{path}/scale", body=body, query={"fieldManager": FIELD_MANAGER}, retries=2)


def scale_to(
    gateway: gateways.Gateway,
    *,
    kind: str,
    namespace: str,
    name: str,
    replicas: int,
    resource_version: str,
    expected: int,
) -> ScaleOutcome:
    """Set replicas if the workload still has ``resource_version``; on 409, re-read once and retry only if the
    count is still the ``expected`` one the decision was based on (else the decision is stale: raise Conflict)."""
    path = workload_path(kind, namespace, name)
    scale = {"metadata": {"name": name, "namespace": namespace}}
    try:
        result = _put(gateway, path, scale, replicas, resource_version)
        return ScaleOutcome(expected, replicas, str(result["metadata"]["resourceVersion"]), 1)
    except gateways.Conflict:
        fresh = gateway.get_scale(path)
    now = int((fresh.get("spec") or {}).get("replicas") or 0)
    if now == replicas:
        return ScaleOutcome(expected, replicas, str(fresh["metadata"]["resourceVersion"]), 1)
    if now != expected:
        raise gateways.Conflict(
            f"replicas changed to {now} by someone else since the decision (based on {expected}); not overwritten",
            kube_status=409,
        )
    result = _put(gateway, path, fresh, replicas, str(fresh["metadata"]["resourceVersion"]))
    return ScaleOutcome(expected, replicas, str(result["metadata"]["resourceVersion"]), 2)


def drive_hpa(
    gateway: gateways.Gateway, hpa: dict[str, Any], *, min_replicas: int, max_replicas: int
) -> dict[str, Any]:
    """Set an HPA's minReplicas/maxReplicas (a merge patch; the HPA keeps scaling within them)."""
    metadata = hpa.get("metadata") or {}
    path = (
        f"/apis/autoscaling/v1/namespaces/{metadata.get('namespace')}/horizontalpodautoscalers/{metadata.get('name')}"
    )
    body = {
        "metadata": {"resourceVersion": metadata.get("resourceVersion")},
        "spec": {"minReplicas": max(1, min_replicas), "maxReplicas": max(1, min_replicas, max_replicas)},
    }
    data: dict[str, Any] = gateway.json(
        "PATCH",
        path,
        body=body,
        content_type="application/merge-patch+json",
        query={"fieldManager": FIELD_MANAGER},
        retries=1,
    )
    return data
