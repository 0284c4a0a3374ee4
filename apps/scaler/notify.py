"""The scaler's domain events about a policy's health, announced when its status changes (never on every
evaluation): ``scaler.conflict`` when another writer (an HPA, a GitOps field manager) owns the replica count ICC
would set, ``scaler.degraded`` when an evaluation cannot decide or act (signals missing or stale, Prometheus down,
the workload unreadable, the write refused), and the resolving ``scaler.conflict_resolved`` / ``scaler.recovered``
once the policy leaves that status. One condition per policy and kind. (The kill switch and the global pause are
announced by :mod:`apps.scaler.services.switches`.)"""

from __future__ import annotations

from apps.core.access import Scope, ScopeKind
from apps.core.domain_events import DomainEvent, Severity, emit
from apps.scaler.models import PolicyStatus, ScalingPolicy

# status -> (kind when it starts, severity, kind when it ends)
CONDITIONS = {
    PolicyStatus.CONFLICT: ("scaler.conflict", Severity.WARNING, "scaler.conflict_resolved"),
    PolicyStatus.DEGRADED: ("scaler.degraded", Severity.ERROR, "scaler.recovered"),
}


def policy_scope(policy: ScalingPolicy) -> Scope:
    application = policy.application
    return Scope(ScopeKind.APPLICATION, str(application.cluster_id), application=application.name)


def condition_key(policy: ScalingPolicy, status: str) -> str:
    return f"{CONDITIONS[PolicyStatus(status)][0]}:{policy.pk}"


def status_changed(policy: ScalingPolicy, *, before: str, after: str, message: str = "") -> None:
    """Announce the policy's move from ``before`` to ``after`` (after commit): the condition it leaves resolves,
    the one it enters opens. The same status again announces nothing."""
    if before == after:
        return
    application = policy.application
    subject = f"scaling policy {policy.name} of {application.name}"
    link = f"/scaler/applications/{application.pk}/"
    if before in CONDITIONS:
        _, _, ended = CONDITIONS[PolicyStatus(before)]
        emit(
            DomainEvent(
                kind=ended,
                severity=Severity.INFO,
                subject=subject,
                text=f"Scaling policy {policy.name} of {application.name} is no longer {before} (now {after}).",
                scope=policy_scope(policy),
                link=link,
                dedup_key=condition_key(policy, before),
                resolves=True,
            )
        )
    if after in CONDITIONS:
        started, severity, _ = CONDITIONS[PolicyStatus(after)]
        what = (
            "another writer owns the replica count; ICC does not fight it and writes nothing"
            if after == PolicyStatus.CONFLICT
            else "ICC cannot decide or act; replicas are left as they are"
        )
        emit(
            DomainEvent(
                kind=started,
                severity=severity,
                subject=subject,
                text=(
                    f"Scaling policy {policy.name} of {application.name}: {what}" + (f": {message}" if message else ".")
                )[:1000],
                scope=policy_scope(policy),
                link=link,
                dedup_key=condition_key(policy, after),
            )
        )
