"""Reads for the policy pages and API: the policy library, a policy's checks, and the bindings the viewer may read.

Rule: policies are global definitions (like the built-in checks' documentation), so anyone who may read somewhere
reads the library; only global ``configure`` changes it. Bindings are read where their scope is readable (a
namespace admin sees the bindings of that namespace, not a global one's).
"""

from __future__ import annotations

from typing import Any, TypedDict

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from apps.clusters.models import Workload
from apps.compliance.checks import checks_for_policy
from apps.compliance.models import Binding, Policy, PolicyKind
from apps.core.access import Action, restrict


class CheckInfo(TypedDict):
    id: str
    title: str
    severity: str
    category: str
    description: str
    remediation: str
    parameters: dict[str, Any]


def policies(viewer: Any, *, kind: str = "", enabled: bool | None = None, search: str = "") -> QuerySet[Policy]:
    """The policy library with ``bindings_count``: the bindings of each policy the viewer may read (one query)."""
    visible = restrict(viewer, Action.READ, Binding.objects.filter(policy=OuterRef("pk")))
    counted = visible.order_by().values("policy").annotate(n=Count("pk")).values("n")
    rows = restrict(viewer, Action.READ, Policy.objects.all()).annotate(bindings_count=Subquery(counted))
    if kind:
        rows = rows.filter(kind=kind)
    if enabled is not None:
        rows = rows.filter(enabled=enabled)
    if search.strip():
        rows = rows.filter(Q(key__icontains=search.strip()) | Q(name__icontains=search.strip()))
    return rows.order_by("kind", "key")


def policy(viewer: Any, pk: Any) -> Policy | None:
    try:
        return policies(viewer).filter(pk=int(pk)).first()
    except (TypeError, ValueError):
        return None


def bindings(
    viewer: Any,
    *,
    policy: int | None = None,
    mode: str = "",
    scope_kind: str = "",
    cluster: str = "",
    namespace: str = "",
    application: str = "",
) -> QuerySet[Binding]:
    rows = restrict(viewer, Action.READ, Binding.objects.select_related("policy"))
    if policy:
        rows = rows.filter(policy_id=policy)
    if mode:
        rows = rows.filter(mode=mode)
    if scope_kind:
        rows = rows.filter(scope_kind=scope_kind)
    if cluster:
        rows = rows.filter(scope_cluster=cluster)
    if namespace:
        rows = rows.filter(scope_namespace=namespace)
    if application:
        rows = rows.filter(scope_application=application)
    return rows.order_by("policy__key", "id")


def binding(viewer: Any, pk: Any) -> Binding | None:
    try:
        return bindings(viewer).filter(pk=int(pk)).first()
    except (TypeError, ValueError):
        return None


def policy_checks(policy: Policy) -> list[CheckInfo]:
    """A policy's checks as the library shows them: the built-in documentation, or one per CEL validation."""
    if policy.kind == PolicyKind.BUILTIN:
        return [
            {
                "id": c.id,
                "title": c.title,
                "severity": str(c.severity),
                "category": c.category,
                "description": c.description,
                "remediation": c.remediation,
                "parameters": c.parameters_schema() if c.parameters else {},
            }
            for c in checks_for_policy(policy.key)
        ]
    found: list[CheckInfo] = []
    for index, given in enumerate(policy.validations or []):
        validation = given if isinstance(given, dict) else {}
        expression = str(validation.get("expression", ""))
        message = str(validation.get("message") or validation.get("messageExpression") or "")
        found.append(
            {
                "id": f"{policy.key}.validations[{index}]",
                "title": message or expression[:120],
                "severity": policy.severity,
                "category": "custom",
                "description": expression,
                "remediation": message,
                "parameters": {},
            }
        )
    return found


def workloads(viewer: Any) -> QuerySet[Workload]:
    """Observed workloads the viewer may read that carry a pod template (what a test or a dry run can judge)."""
    rows = restrict(viewer, Action.READ, Workload.objects.select_related("cluster", "application"))
    return rows.exclude(pod_template={}).order_by("cluster__name", "namespace", "kind", "name")
