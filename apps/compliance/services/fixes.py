"""Fixes: a failing result's JSON Patch (RFC 6902), shown as the equivalent ``kubectl patch`` command and applied to
the workload through the cluster gateway.

``result_fix_apply`` needs the operator role (act) on the workload, a reason, a failing (or excepted) result that
carries a fix; it judges the check again on the workload as last observed and sends that fix with the observed
resourceVersion as a precondition, so a workload changed since answers 409 instead of being patched on a stale view.
It is audited (``compliance.result.fix``, failures too). Nothing else follows by hand: the watcher sees the change
and the workload is re-evaluated.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from django.db import transaction

from apps.audit.services import audit_record
from apps.clusters import gateway as gateways
from apps.clusters.kinds import workload_path
from apps.clusters.models import Workload
from apps.clusters.services.clusters import check_caller
from apps.clusters.services.workloads import freeze_scope, workload_audit_scope
from apps.compliance import evaluation
from apps.compliance.models import Result, ResultStatus
from apps.core.access import Action
from apps.core.errors import ConflictError, DomainError
from apps.core.freeze import freeze_check

FIXABLE = (ResultStatus.FAIL, ResultStatus.EXCEPTED)
PATCH_OPS = frozenset({"add", "remove", "replace", "test", "move", "copy"})
MAX_OPS = 100


def fix_patch(result: Result) -> list[dict[str, Any]]:
    """The result's fix as JSON Patch operations ([] when it has none or it is not a well-formed patch)."""
    fix = result.fix
    if not isinstance(fix, list) or not fix or len(fix) > MAX_OPS:
        return []
    for op in fix:
        if not isinstance(op, dict) or op.get("op") not in PATCH_OPS:
            return []
        if not isinstance(op.get("path"), str) or not op["path"].startswith("/"):
            return []
    return fix


def kubectl_patch(result: Result) -> str:
    """The ``kubectl patch`` command that applies the result's fix by hand, quoted for a POSIX shell ("" without a
    fix)."""
    patch = fix_patch(result)
    if not patch:
        return ""
    workload = result.workload
    body = json.dumps(patch, separators=(",", ":"), ensure_ascii=False)
    args = ["kubectl", "patch", workload.kind.lower(), workload.name, "-n", workload.namespace, "--type=json", "-p"]
    return shlex.join([*args, body])


def _reason(reason: Any) -> str:
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        raise DomainError("say why (it goes into the audit trail)", field="reason")
    if len(reason) > 500:
        raise DomainError("at most 500 characters", field="reason")
    return reason


def result_fix_apply(*, result: Result, reason: str, by: Any, override: bool = False) -> dict[str, Any]:
    """Apply a failing result's fix to its workload (act on the workload; a reason; during a change freeze only
    with ``override``). Returns the workload's new ``resource_version`` and ``generation``."""
    workload = Workload.objects.select_related("cluster", "application").get(pk=result.workload_id)
    check_caller(by, Action.ACT, workload, "applying a compliance fix to this workload")
    reason = _reason(reason)
    overridden = freeze_check(freeze_scope(workload), workload, override=override, reason=reason, by=by)
    # Judged again from the observed object whose resourceVersion is the precondition: the stored fix may predate
    # the latest observation (evaluation follows the watcher), and a fix is only safe against what it was made for.
    fresh = next((r for r in evaluation.evaluate_workload(workload) if r.check_id == result.check_id), None)
    if fresh is None:
        raise ConflictError(f"{result.check_id} no longer applies to {workload}", field="status")
    result = fresh
    if result.status not in FIXABLE:
        raise ConflictError(f"this check is {result.status} now; only a failing one is fixed", field="status")
    patch = fix_patch(result)
    if not patch:
        raise DomainError(f"{result.check_id} offers no fix to apply: see its remediation", field="fix")
    precondition = workload.resource_version
    # The resourceVersion in the patched object makes the API server refuse (409) a workload changed since ICC saw it.
    guarded = [{"op": "replace", "path": "/metadata/resourceVersion", "value": precondition}] if precondition else []
    outcome = "failure"
    try:
        answer = gateways.for_cluster(workload.cluster).patch(
            workload_path(workload.kind, workload.namespace, workload.name), [*guarded, *patch], patch_type="json"
        )
        outcome = "success"
    except gateways.Conflict:
        raise ConflictError(
            f"{workload} changed since ICC observed it (resourceVersion {precondition}); wait for its re-evaluation "
            "and try again",
            field="resource_version",
        ) from None
    finally:
        with transaction.atomic():
            audit_record(
                action="compliance.result.fix",
                target=workload,
                outcome=outcome,
                message=reason,
                metadata={
                    "result": result.pk,
                    "policy": result.policy,
                    "check_id": result.check_id,
                    "patch": patch,
                    "resource_version": precondition,
                    **overridden,
                },
                scope=workload_audit_scope(workload),
            )
    meta = answer.get("metadata") or {}
    return {"resource_version": str(meta.get("resourceVersion") or ""), "generation": meta.get("generation")}
