"""Before saving: what an unsaved CEL policy says of one workload, and what a binding (or enabling a policy) would do.

Reads only, from what ICC observed (:func:`apps.compliance.evaluation.manifest`), never the cluster. A dry run lists
every observed workload in scope that would fail (``audit``/``warn``) or be denied (``enforce``), with the failing
checks and their messages; failures an active exception covers are counted, not listed. It covers only the
workloads the viewer may read and is bounded: at most ``MAX_WORKLOADS`` are judged and ``SHOWN`` listed, the rest
counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet

from apps.clusters.models import Workload
from apps.compliance import cel, evaluation
from apps.compliance.checks import Severity
from apps.compliance.models import Binding, Mode, Policy, PolicyKind, ResultStatus
from apps.compliance.policy_selectors import workloads as readable_workloads
from apps.compliance.services.policies import clean_binding, clean_match
from apps.core.access import Action, Scope, ScopeKind, can
from apps.core.errors import DomainError, NotFoundError

logger = logging.getLogger(__name__)

SHOWN = 100
MAX_WORKLOADS = 5000
DENY, FAIL = "deny", "fail"


@dataclass(frozen=True)
class FailedCheck:
    check_id: str
    severity: str
    message: str
    mode: str


@dataclass(frozen=True)
class Finding:
    workload: Workload
    outcome: str  # deny (an enforce binding fails it) or fail (audit or warn)
    checks: tuple[FailedCheck, ...]


@dataclass
class DryRun:
    bindings: int = 0
    evaluated: int = 0
    failing: int = 0  # workloads that would fail or be denied, shown or not
    denied: int = 0
    excepted: int = 0  # failures an active exception covers (not listed)
    errors: int = 0  # checks that could not be judged
    complete: bool = True  # False when more than MAX_WORKLOADS were in scope
    findings: list[Finding] = field(default_factory=list)

    @property
    def more(self) -> int:
        return self.failing - len(self.findings)


def _scope_q(scope: Scope) -> Q:
    q = Q(cluster_id=int(scope.cluster)) if scope.cluster.isdigit() else Q(pk__in=[])
    if scope.kind == ScopeKind.NAMESPACE:
        q &= Q(namespace=scope.namespace)
    elif scope.kind == ScopeKind.APPLICATION:
        q &= Q(application__name=scope.application)
    return q


def _in_scope(viewer: Any, bindings: Sequence[Binding]) -> QuerySet[Workload]:
    rows = readable_workloads(viewer)
    if any(b.scope().kind == ScopeKind.GLOBAL for b in bindings):
        return rows  # (an empty Q would vanish from an OR)
    condition = Q(pk__in=[])
    for binding in bindings:
        condition |= _scope_q(binding.scope())
    return rows.filter(condition)


def _judge(workload: Workload, bindings: Sequence[Binding], exceptions: list[Any], run: DryRun) -> Finding | None:
    obj = evaluation.manifest(workload)
    application = workload.application.name if workload.application_id else ""
    failing: dict[str, FailedCheck] = {}
    for binding in bindings:
        if not binding.applies_to(workload.cluster_id, workload.namespace, application):
            continue
        try:
            verdicts = evaluation.verdicts(binding, obj)
        except Exception:  # one odd workload must not stop the dry run
            logger.exception("dry run of %s on workload %s failed", binding.policy, workload.pk)
            run.errors += 1
            continue
        for verdict in verdicts:
            status = str(verdict.status)
            if status == ResultStatus.ERROR:
                run.errors += 1
                continue
            if status != ResultStatus.FAIL:
                continue
            if evaluation.excepted_by(workload, verdict, exceptions) is not None:
                run.excepted += 1
                continue
            known = failing.get(verdict.check_id)
            if known is None or evaluation.MODE_RANK[Mode(binding.mode)] > evaluation.MODE_RANK[Mode(known.mode)]:
                failing[verdict.check_id] = FailedCheck(
                    verdict.check_id, str(verdict.severity), verdict.message, binding.mode
                )
    if not failing:
        return None
    outcome = DENY if any(c.mode == Mode.ENFORCE for c in failing.values()) else FAIL
    return Finding(workload, outcome, tuple(failing.values()))


def dry_run(viewer: Any, bindings: Sequence[Binding], *, shown: int = SHOWN) -> DryRun:
    """What ``bindings`` (saved or not; their policies saved) would say of every workload the viewer may read."""
    run = DryRun(bindings=len(bindings))
    if not bindings:
        return run
    exceptions = evaluation.active_exceptions()
    rows = _in_scope(viewer, bindings)
    for workload in _bounded(rows, run):
        run.evaluated += 1
        finding = _judge(workload, bindings, exceptions, run)
        if finding is None:
            continue
        run.failing += 1
        run.denied += finding.outcome == DENY
        if len(run.findings) < shown:
            run.findings.append(finding)
    run.findings.sort(key=lambda f: (f.outcome != DENY, f.workload.cluster.name, f.workload.namespace))
    return run


def _bounded(rows: QuerySet[Workload], run: DryRun) -> Iterable[Workload]:
    for index, workload in enumerate(rows.iterator(chunk_size=200)):
        if index >= MAX_WORKLOADS:
            run.complete = False
            return
        yield workload


def binding_dry_run(*, viewer: Any, policy: Policy, shown: int = SHOWN, **values: Any) -> DryRun:
    """A binding about to be created, or changed (e.g. switched to ``enforce``), given as unsaved values."""
    cleaned = clean_binding(policy, values)
    cleaned["enabled"] = True
    return dry_run(viewer, [Binding(policy=policy, **cleaned)], shown=shown)


def policy_dry_run(*, viewer: Any, policy: Policy, shown: int = SHOWN) -> DryRun:
    """A policy about to be enabled: every enabled binding of it, as if the policy were on."""
    bindings = list(policy.bindings.filter(enabled=True).order_by("id"))
    for binding in bindings:
        binding.policy = policy
    return dry_run(viewer, bindings, shown=shown)


def policy_test(
    *,
    validations: Any,
    workload: Workload,
    variables: Any = None,
    match: Any = None,
    params: Any = None,
    severity: str = Severity.MEDIUM,
    key: str = "custom",
    by: Any = None,
) -> dict[str, Any]:
    """An unsaved CEL policy judged against one observed workload the caller may read (nothing is written).

    A compile error raises (a 400 naming the field, with its position); a runtime error on the object is an
    ``error`` verdict. Answers ``{"matched": bool, "verdicts": [...]}``; a workload the match rules leave out has
    no verdicts."""
    if by is not None and not can(by, Action.READ, workload):
        raise NotFoundError("no such workload (or you cannot see it)", field="workload")
    if severity not in Severity.__members__.values():
        raise DomainError(f"severity is one of {', '.join(Severity)}", field="severity")
    if params is not None and not isinstance(params, Mapping):
        raise DomainError("params is an object", field="params")
    compiled = cel.compile_policy(
        validations if validations is not None else [],
        variables=variables if variables is not None else [],
        name=key,
        severity=Severity(severity),
    )
    rules = clean_match(match)
    obj = evaluation.manifest(workload)
    if not cel.matches(obj, rules.get("kinds"), rules.get("namespaces"), rules.get("labels")):
        return {"matched": False, "verdicts": []}
    return {"matched": True, "verdicts": [r.as_dict() for r in compiled.evaluate(obj, params=params)]}


def stored_test(*, policy: Policy, workload: Workload, by: Any = None, **overrides: Any) -> dict[str, Any]:
    """:func:`policy_test` with the stored policy's values, each replaced by the unsaved one given."""
    if policy.kind == PolicyKind.BUILTIN:
        raise DomainError("only a custom (CEL) policy is tested here", field="kind")
    values = {
        "validations": policy.validations,
        "variables": policy.variables,
        "match": policy.match,
        "severity": policy.severity,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return policy_test(workload=workload, key=policy.key, by=by, **values)
