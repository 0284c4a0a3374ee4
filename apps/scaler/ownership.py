"""Who else writes a workload's replica count: an HPA targeting it, or a field manager owning ``spec.replicas``.

Rule: ICC never fights another controller. A manager counts as a writer of ``spec.replicas`` when it owns that
field through server-side apply (operation ``Apply``: Argo CD, Flux, ``kubectl apply --server-side``) or is a
known deploy tool writing with client-side updates (Helm, ``kubectl apply``). Creating a Deployment with a
replica count (``kubectl create``, a client library) also records ownership, but those one-off writers do not
come back, so they are not a conflict; ICC's own writes use the field manager ``icc``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.clusters import gateway as gateways

FIELD_MANAGER = "icc"
# Update-operation managers that re-apply manifests (their owning spec.replicas means they will set it again).
DEPLOY_TOOLS = (
    "helm",
    "kubectl-client-side-apply",
    "argocd",
    "argo-rollouts",
    "kustomize-controller",
    "helm-controller",
    "flux",
    "pulumi",
    "terraform",
    "spinnaker",
)
NEVER_WRITERS = frozenset({FIELD_MANAGER, "kube-controller-manager"})


@dataclass(frozen=True)
class OtherWriter:
    kind: str  # "hpa" or "manager"
    name: str
    detail: str
    hpa: dict[str, Any] | None = field(default=None, compare=False)

    def describe(self) -> str:
        if self.kind == "hpa":
            return f"HorizontalPodAutoscaler {self.name} targets this workload ({self.detail})"
        return f"field manager {self.name!r} owns spec.replicas ({self.detail})"


def replica_managers(obj: dict[str, Any]) -> list[OtherWriter]:
    """The managers (other than ICC) that own ``spec.replicas`` and will write it again."""
    found: list[OtherWriter] = []
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        manager = str(entry.get("manager") or "")
        fields = entry.get("fieldsV1") or {}
        if manager in NEVER_WRITERS or "f:replicas" not in (fields.get("f:spec") or {}):
            continue
        operation = str(entry.get("operation") or "")
        known_tool = manager.lower().startswith(DEPLOY_TOOLS)
        if operation == "Apply" or known_tool:
            found.append(OtherWriter("manager", manager, f"{operation or 'Update'} at {entry.get('time') or '?'}"))
    return found


def targeting_hpas(gateway: gateways.Gateway, *, kind: str, namespace: str, name: str) -> list[dict[str, Any]]:
    """HorizontalPodAutoscalers of the namespace whose scaleTargetRef is the workload."""
    data = gateway.get(f"/apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers")
    return [
        hpa
        for hpa in data.get("items") or []
        if ((hpa.get("spec") or {}).get("scaleTargetRef") or {}).get("kind") == kind
        and ((hpa.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == name
    ]


def other_writers(gateway: gateways.Gateway, obj: dict[str, Any], *, kind: str) -> list[OtherWriter]:
    """Every other writer of the workload's replica count: HPAs first, then field managers."""
    metadata = obj.get("metadata") or {}
    writers = []
    namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
    for hpa in targeting_hpas(gateway, kind=kind, namespace=namespace, name=name):
        spec = hpa.get("spec") or {}
        detail = f"min {spec.get('minReplicas', 1)}, max {spec.get('maxReplicas')}"
        writers.append(OtherWriter("hpa", (hpa.get("metadata") or {}).get("name", "?"), detail, hpa))
    writers.extend(replica_managers(obj))
    return writers
