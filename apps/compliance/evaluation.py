"""Evaluating observed workloads against the bound policies, and keeping one current result per check.

The workload is rebuilt from its observed row (kind, metadata, replicas and the stored pod template), so an
evaluation never calls the cluster. Every enabled binding whose scope covers the workload contributes its checks
(a check bound more than once is evaluated once, with the first binding's parameters, and carries the strictest
mode). Results are upserted: a status that changes gets a new ``since``; checks no longer bound are removed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.db import transaction

from apps.clusters.models import Workload
from apps.compliance import cel
from apps.compliance.checks import Severity, checks_for_policy, evaluate
from apps.compliance.models import Binding, Mode, Policy, PolicyException, PolicyKind, Result, ResultStatus

logger = logging.getLogger(__name__)

API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1"}
MODE_RANK = {Mode.AUDIT: 0, Mode.WARN: 1, Mode.ENFORCE: 2}


def manifest(workload: Workload) -> dict[str, Any]:
    """The workload as the checks read it, from what ICC observed."""
    spec: dict[str, Any] = {"template": workload.pod_template or {}}
    if workload.kind != "DaemonSet":
        spec["replicas"] = workload.desired_replicas
    return {
        "apiVersion": API_VERSIONS.get(workload.kind, "apps/v1"),
        "kind": workload.kind,
        "metadata": {
            "name": workload.name,
            "namespace": workload.namespace,
            "labels": workload.labels or {},
            "annotations": workload.annotations or {},
        },
        "spec": spec,
    }


def active_bindings() -> list[Binding]:
    return list(Binding.objects.filter(enabled=True, policy__enabled=True).select_related("policy").order_by("id"))


@lru_cache(maxsize=256)
def _compiled(policy_id: int, version: int) -> cel.CompiledPolicy:
    policy = Policy.objects.get(pk=policy_id)
    return cel.compile_policy(
        policy.validations, variables=policy.variables, name=policy.key, severity=Severity(policy.severity)
    )


def verdicts(binding: Binding, obj: dict[str, Any]) -> list[Any]:
    policy = binding.policy
    if policy.kind == PolicyKind.BUILTIN:
        checks = [c for c in checks_for_policy(policy.key) if not binding.check_id or c.id == binding.check_id]
        return evaluate(obj, checks, binding.params or None)
    match = policy.match or {}
    if not cel.matches(obj, match.get("kinds") or None, match.get("namespaces") or None, match.get("labels") or None):
        return []
    results = _compiled(policy.pk, policy.version).evaluate(obj, params=binding.params or None)
    return [r for r in results if not binding.check_id or r.check_id == binding.check_id]


def active_exceptions(now: datetime | None = None) -> list[PolicyException]:
    """Approved, not revoked, not expired: the exceptions that apply now."""
    now = now or datetime.now(UTC)
    return list(
        PolicyException.objects.filter(approved_at__isnull=False, revoked_at__isnull=True, expires_at__gt=now)
        .select_related("policy")
        .order_by("expires_at", "id")
    )


def excepted_by(workload: Workload, verdict: Any, exceptions: Iterable[PolicyException]) -> PolicyException | None:
    """The first active exception covering a failing ``verdict`` on ``workload`` (None when none does)."""
    if str(verdict.status) != ResultStatus.FAIL:
        return None
    images = [str(i.get("image", "")) for i in (workload.images or []) if isinstance(i, dict)]
    for exception in exceptions:
        if exception.covers(
            check_id=verdict.check_id,
            policy=verdict.policy,
            cluster_id=workload.cluster_id,
            namespace=workload.namespace,
            application=workload.application.name if workload.application_id else "",
            name=workload.name,
            labels=workload.labels or {},
            images=images,
        ):
            return exception
    return None


def evaluate_workload(
    workload: Workload,
    bindings: Iterable[Binding] | None = None,
    exceptions: Iterable[PolicyException] | None = None,
) -> list[Result]:
    """Evaluate one workload now and store its current results (returned)."""
    if not workload.pod_template:
        return []  # observed before templates were stored: the next sync fills it in
    application = workload.application.name if workload.application_id else ""
    applicable = [
        b
        for b in (active_bindings() if bindings is None else bindings)
        if b.applies_to(workload.cluster_id, workload.namespace, application)
    ]
    obj = manifest(workload)
    chosen: dict[str, tuple[Any, str]] = {}
    for binding in applicable:
        for verdict in verdicts(binding, obj):
            known = chosen.get(verdict.check_id)
            if known is None:
                chosen[verdict.check_id] = (verdict, binding.mode)
            elif MODE_RANK[Mode(binding.mode)] > MODE_RANK[Mode(known[1])]:
                chosen[verdict.check_id] = (known[0], binding.mode)
    return _store(workload, chosen, active_exceptions() if exceptions is None else list(exceptions))


def _store(workload: Workload, chosen: dict[str, tuple[Any, str]], exceptions: list[PolicyException]) -> list[Result]:
    now = datetime.now(UTC)
    with transaction.atomic():
        existing = {r.check_id: r for r in Result.objects.select_for_update().filter(workload=workload)}
        Result.objects.filter(workload=workload).exclude(check_id__in=list(chosen)).delete()
        created, changed = [], []
        for check_id, (verdict, mode) in chosen.items():
            excepted = excepted_by(workload, verdict, exceptions)
            message = verdict.message
            if excepted is not None:
                message = f"excepted until {excepted.expires_at:%Y-%m-%d %H:%M} UTC (owner {excepted.owner}): {message}"
            values = {
                "policy": verdict.policy,
                "severity": str(verdict.severity),
                "status": ResultStatus.EXCEPTED if excepted is not None else str(verdict.status),
                "message": message[:1024],
                "fix": verdict.fix,
                "mode": mode,
                "exception": excepted,
                "evaluated_at": now,
            }
            row = existing.get(check_id)
            if row is None:
                created.append(
                    Result(
                        workload=workload,
                        cluster_id=workload.cluster_id,
                        namespace=workload.namespace,
                        application_id=workload.application_id,
                        check_id=check_id,
                        since=now,
                        **values,
                    )
                )
                continue
            if row.status != values["status"]:
                row.since = now
            for key, value in values.items():
                setattr(row, key, value)
            changed.append(row)
        Result.objects.bulk_create(created)
        fields = ["policy", "severity", "status", "message", "fix", "mode", "exception", "evaluated_at", "since"]
        Result.objects.bulk_update(changed, fields)
    return [*created, *changed]


def scan(batch: int = 200) -> int:
    """Evaluate every observed workload (the periodic and on-demand scan); returns how many."""
    bindings = active_bindings()
    exceptions = active_exceptions()
    count = 0
    queryset = Workload.objects.select_related("application").order_by("pk")
    last = 0
    while True:
        chunk = list(queryset.filter(pk__gt=last)[:batch])
        if not chunk:
            return count
        for workload in chunk:
            try:
                evaluate_workload(workload, bindings, exceptions)
            except Exception:  # one odd workload must not stop the scan
                logger.exception("compliance evaluation of workload %s failed", workload.pk)
            count += 1
        last = chunk[-1].pk
