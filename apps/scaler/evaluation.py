"""One evaluation of a scaling policy: gather inputs, decide (pure engine), write the decision row, then act.

Inputs (:mod:`apps.scaler.evaluation_inputs`): pushed signals newer than ``SIGNAL_FRESH_SECONDS`` win; otherwise
Prometheus (per-metric templates over the workload's pods). A Prometheus failure leaves replicas untouched and
marks the policy degraded. Writes happen only for ``active`` policies with neither the application's kill switch
nor the global pause on, and only when no other writer (HPA, GitOps manager) owns the replica count — unless the
policy drives that HPA instead.
Single-flight per policy (advisory lock); a request arriving meanwhile makes the holder evaluate once more.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.clusters import gateway as gateways
from apps.clusters.models import Workload
from apps.clusters.services import workload_audit_scope
from apps.core import calendar
from apps.core.access import Scope, ScopeKind
from apps.core.locks import advisory_lock
from apps.scaler import actuation, engine, metrics, notify, ownership, schedules, services
from apps.scaler.evaluation_inputs import (
    Gathered,
    gather,
    history,
    learned_startup_seconds,
    pod_names,
    predict,
    target_workload,
)
from apps.scaler.models import ConflictMode, Decision, Mode, Outcome, PolicyStatus, ScalingPolicy

logger = logging.getLogger(__name__)


def _rerun_key(policy_id: int) -> str:
    return f"icc:scaler:rerun:{policy_id}"


def evaluate(policy_id: int, trigger: str = "periodic") -> Decision | None:
    """Evaluate the policy now (None when it is disabled, gone, or another evaluation holds it: that one reruns)."""
    with advisory_lock(f"scaler-evaluate:{policy_id}") as got:
        if not got:
            cache.set(_rerun_key(policy_id), trigger, 60)
            return None
        decision = None
        for _ in range(3):
            decision = _evaluate_once(policy_id, trigger)
            if not cache.delete(_rerun_key(policy_id)):
                break
        return decision


# --- one evaluation ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One evaluation in progress: what the decision row will say."""

    policy: ScalingPolicy
    trigger: str
    now: datetime
    started: float
    current: int = 0
    desired: int = 0
    inputs: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    forecast: dict[str, Any] | None = None


def _evaluate_once(policy_id: int, trigger: str) -> Decision | None:
    started = time.perf_counter()
    policy = (
        ScalingPolicy.objects.select_related("application__cluster", "workload__cluster").filter(pk=policy_id).first()
    )
    if policy is None or not policy.enabled:
        return None
    run = Run(policy, trigger, timezone.now(), started)
    try:
        workload = target_workload(policy)
    except LookupError as exc:
        return _degraded(run, str(exc), str(exc))
    return _evaluate(run, workload)


def _evaluate(run: Run, workload: Workload) -> Decision:
    """Read the workload and the metrics, ask the engine, then do what the policy's mode says."""
    policy = run.policy
    gateway = gateways.for_cluster(policy.application.cluster)
    live, kube_error = _read_replicas(run, gateway, workload)
    pods = pod_names(workload)
    behavior = policy.engine_behavior()
    gathered = gather(policy, workload, pods, run.now)
    limits = _limits(run, workload, pods, gathered)
    if gathered.error:
        return _degraded(
            run, f"metrics unavailable, replicas untouched: {gathered.error}", gathered.error, outcome=Outcome.DEGRADED
        )
    forecast_values: dict[str, float] | None = None
    if policy.predictive:
        horizon = learned_startup_seconds(gateway, workload)
        forecast_values, run.forecast = predict(
            policy, gathered, workload=workload, pods=pods, now=run.now, horizon=horizon
        )
    targets = [engine.MetricTarget(m["name"], m["kind"], float(m["target"])) for m in policy.metrics]
    try:
        result = engine.decide(
            run.now.timestamp(),
            run.current,
            gathered.samples,
            targets,
            behavior,
            limits=limits,
            history=history(policy, run.now, behavior),
            forecast=forecast_values or None,
        )
    except ValueError as exc:
        return _degraded(run, f"the engine refused the inputs: {exc}", str(exc))
    run.inputs.update(raw=result.raw, proposed=result.proposed, limited_by=result.limited_by)
    run.reasons, run.desired = result.reasons, result.desired
    return _carry_out(run, workload, gateway, live=live, kube_error=kube_error, limits=limits)


def _read_replicas(run: Run, gateway: gateways.Gateway, workload: Workload) -> tuple[dict[str, Any] | None, str]:
    """The workload as the cluster has it now, and its replicas (the stored count when it cannot be read)."""
    try:
        live = actuation.read_workload(gateway, kind=workload.kind, namespace=workload.namespace, name=workload.name)
    except gateways.KubeError as exc:
        run.current = run.desired = workload.desired_replicas
        return None, exc.message
    run.current = run.desired = int((live.get("spec") or {}).get("replicas") or 0)
    return live, ""


def _limits(run: Run, workload: Workload, pods: list[str], gathered: Gathered) -> engine.Limits:
    """The policy's limits narrowed by the active schedule window; records the decision's inputs."""
    policy = run.policy
    hard = engine.Limits(policy.min_replicas, policy.max_replicas)
    window = schedules.active_limits(policy.schedules.all(), run.now)
    limits = engine.intersect(hard, engine.Limits(window.min, window.max) if window else None)
    run.inputs = {
        "trigger": run.trigger,
        "workload": {"id": workload.pk, "kind": workload.kind, "name": workload.name},
        "pods": len(pods),
        "metrics": gathered.snapshot,
        "targets": policy.metrics,
        "limits": {
            "hard": [hard.min, hard.max],
            "effective": [limits.min, limits.max],
            "schedule": window.as_dict() if window else None,
        },
        "behavior": policy.behavior,
        "mode": policy.mode,
    }
    return limits


def _carry_out(
    run: Run,
    workload: Workload,
    gateway: gateways.Gateway,
    *,
    live: dict[str, Any] | None,
    kube_error: str,
    limits: engine.Limits,
) -> Decision:
    """Recommend and shadow modes only say what they would do; the kill switch and the global pause stop writes."""
    policy = run.policy
    if policy.mode == Mode.RECOMMEND:
        return _record(run, Outcome.RECOMMENDED, f"recommend mode: would set {run.desired}")
    if policy.mode == Mode.SHADOW:
        return _record(run, Outcome.SHADOW, f"shadow mode: would set {run.desired}")
    stop = _stopped(policy)
    if stop is not None:
        return _record(run, stop[0], stop[1], status=PolicyStatus.PAUSED, status_message=stop[1])
    if live is None:
        return _degraded(run, f"cannot read the workload: {kube_error}", kube_error)
    return _act(run, workload, gateway, live, limits)


def _stopped(policy: ScalingPolicy) -> tuple[str, str] | None:
    """The kill switch or the global pause, read fresh (they stop writes at once)."""
    if services.kill_switch_on(policy.application_id):
        return Outcome.KILLED, f"kill switch of {policy.application} is on: nothing written"
    if services.globally_paused():
        return Outcome.PAUSED, "the scaler is paused globally: nothing written"
    return None


def _act(
    run: Run, workload: Workload, gateway: gateways.Gateway, live: dict[str, Any], limits: engine.Limits
) -> Decision:
    """Scale, unless another writer owns the replicas (then drive the HPA, or record the conflict)."""
    conflict = _other_writers(run, workload, gateway, live, limits)
    if conflict is not None:
        return conflict
    if run.desired == run.current:
        return _record(run, Outcome.UNCHANGED, f"holding {run.current}")
    if run.desired < run.current:
        held = _freeze_hold(run, workload)
        if held is not None:
            return held
    return _scale(run, workload, gateway, live)


def _freeze_hold(run: Run, workload: Workload) -> Decision | None:
    """Rule: during a change freeze at the application's scope, scale-downs are held (scale-ups still happen)."""
    scope = Scope(ScopeKind.APPLICATION, str(workload.cluster_id), workload.namespace, run.policy.application.name)
    window = calendar.frozen(scope, run.now)
    if window is None:
        return None
    reason = (
        f"scale-down {run.current} -> {run.desired} held: change freeze until {window.ends.isoformat()} "
        f"({window.reason})"
    )
    run.inputs["freeze"] = {"entry": window.entry_id, "ends_at": window.ends.isoformat(), "wanted": run.desired}
    run.reasons = [*run.reasons, reason]
    run.desired = run.current
    return _record(run, Outcome.UNCHANGED, reason)


def _other_writers(
    run: Run, workload: Workload, gateway: gateways.Gateway, live: dict[str, Any], limits: engine.Limits
) -> Decision | None:
    """The decision when something else writes the replicas (None when nothing does)."""
    try:
        writers = ownership.other_writers(gateway, live, kind=workload.kind)
    except gateways.KubeError as exc:
        return _degraded(run, f"cannot check other writers: {exc.message}", exc.message)
    if not writers:
        return None
    hpas = [w for w in writers if w.kind == "hpa"]
    managers = [w for w in writers if w.kind == "manager"]
    if run.policy.conflict_mode == ConflictMode.DRIVE_HPA and len(hpas) == 1 and not managers and hpas[0].hpa:
        return _drive(run, workload, gateway, hpas[0], limits)
    message = "; ".join(w.describe() for w in writers) + ": ICC does not fight it, nothing written"
    return _record(run, Outcome.CONFLICT, message, status=PolicyStatus.CONFLICT, status_message=message)


def _halted(run: Run, decision: Decision) -> Decision | None:
    """When the kill switch or the global pause came on since the decision row was written: that row, finished
    as stopped before anything is written to the cluster."""
    stop = _stopped(run.policy)
    if stop is None:
        return None
    return _finish(run, decision, stop[0], stop[1], status=PolicyStatus.PAUSED, status_message=stop[1])


def _failed(run: Run, decision: Decision, reason: str, exc: gateways.KubeError) -> Decision:
    """The decision row, finished as failed because the cluster refused the write (the policy is degraded)."""
    return _finish(run, decision, Outcome.FAILED, reason, status=PolicyStatus.DEGRADED, status_message=exc.message)


def _scale(run: Run, workload: Workload, gateway: gateways.Gateway, live: dict[str, Any]) -> Decision:
    # Decisions are rows first, actions second: a crash mid-write leaves a "failed" row, never an unexplained scale.
    decision = _record(run, Outcome.FAILED, "scale in progress (interrupted)", count=False)
    halted = _halted(run, decision)
    if halted is not None:
        return halted
    resource_version = str((live.get("metadata") or {}).get("resourceVersion") or "")
    try:
        outcome = actuation.scale_to(
            gateway,
            kind=workload.kind,
            namespace=workload.namespace,
            name=workload.name,
            replicas=run.desired,
            resource_version=resource_version,
            expected=run.current,
        )
    except gateways.KubeError as exc:
        return _failed(run, decision, f"scale to {run.desired} failed: {exc.message}", exc)
    reason = f"scaled {run.current} -> {run.desired}"
    if outcome.attempts > 1:
        reason += " (after a conflict, on a fresh read)"
    return _finish(run, decision, Outcome.APPLIED, reason, audit_scale=(workload, outcome))


def _drive(
    run: Run, workload: Workload, gateway: gateways.Gateway, writer: ownership.OtherWriter, limits: engine.Limits
) -> Decision:
    hpa = writer.hpa or {}
    spec = hpa.get("spec") or {}
    want = (max(1, run.desired), max(1, run.desired, limits.max))
    if (spec.get("minReplicas", 1), spec.get("maxReplicas")) == want:
        return _record(run, Outcome.UNCHANGED, f"HPA {writer.name} already at min {want[0]}, max {want[1]}")
    decision = _record(run, Outcome.FAILED, "HPA update in progress (interrupted)", count=False)
    halted = _halted(run, decision)
    if halted is not None:
        return halted
    try:
        actuation.drive_hpa(gateway, hpa, min_replicas=want[0], max_replicas=want[1])
    except gateways.KubeError as exc:
        return _failed(run, decision, f"HPA {writer.name}: {exc.message}", exc)
    reason = f"drove HPA {writer.name}: min {spec.get('minReplicas', 1)} -> {want[0]}, max -> {want[1]}"
    with transaction.atomic():
        _audit_write(
            "scaler.hpa.drive",
            workload,
            reason,
            changes={
                "minReplicas": [spec.get("minReplicas", 1), want[0]],
                "maxReplicas": [spec.get("maxReplicas"), want[1]],
            },
            metadata={"policy": run.policy.pk, "decision": decision.pk, "hpa": writer.name},
        )
    return _finish(run, decision, Outcome.APPLIED, reason)


def _record(
    run: Run, outcome: str, reason: str, *, status: str = PolicyStatus.OK, status_message: str = "", count: bool = True
) -> Decision:
    policy = run.policy
    with transaction.atomic():
        decision = Decision.objects.create(
            policy=policy,
            application_id=policy.application_id,
            at=run.now,
            trigger=run.trigger,
            current_replicas=run.current,
            desired_replicas=run.desired,
            outcome=outcome,
            reason=reason[:2000],
            reasons=run.reasons,
            inputs=run.inputs,
            forecast=run.forecast,
            policy_version=policy.version,
            duration_ms=(time.perf_counter() - run.started) * 1000,
        )
        ScalingPolicy.objects.filter(pk=policy.pk).update(
            status=status, status_message=status_message[:2000], last_evaluated_at=run.now
        )
        if count:  # a final outcome (not the row written before acting): announce a change of status
            notify.status_changed(policy, before=policy.status, after=status, message=status_message)
    if count:
        _count(decision)
    return decision


def _degraded(run: Run, reason: str, why: str, *, outcome: str = Outcome.FAILED) -> Decision:
    """A decision that writes nothing because something it needs failed; the policy shows ``why``, degraded."""
    return _record(run, outcome, reason, status=PolicyStatus.DEGRADED, status_message=why)


def _finish(
    run: Run,
    decision: Decision,
    outcome: str,
    reason: str,
    *,
    status: str = PolicyStatus.OK,
    status_message: str = "",
    audit_scale: tuple[Workload, actuation.ScaleOutcome] | None = None,
) -> Decision:
    policy = run.policy
    decision.outcome, decision.reason = outcome, reason[:2000]
    decision.duration_ms = (time.perf_counter() - run.started) * 1000
    with transaction.atomic():
        decision.save(update_fields=["outcome", "reason", "duration_ms"])
        ScalingPolicy.objects.filter(pk=policy.pk).update(status=status, status_message=status_message[:2000])
        notify.status_changed(policy, before=policy.status, after=status, message=status_message)
        if audit_scale is not None:
            workload, result = audit_scale
            _audit_write(
                "scaler.scale",
                workload,
                reason,
                changes={"replicas": [result.previous, result.replicas]},
                metadata={
                    "policy": policy.pk,
                    "policy_version": policy.version,
                    "decision": decision.pk,
                    "trigger": decision.trigger,
                    "resource_version": result.resource_version,
                },
            )
    _count(decision)
    return decision


def _audit_write(
    action: str, workload: Workload, reason: str, *, changes: dict[str, Any], metadata: dict[str, Any]
) -> None:
    """Record a write the scaler made (to the workload or its HPA): by ICC itself, in the workload's scope."""
    audit_record(
        action=action,
        target=workload,
        actor=services.system_actor(),
        message=reason,
        scope=workload_audit_scope(workload),
        changes=changes,
        metadata=metadata,
    )


def _count(decision: Decision) -> None:
    metrics.DECISIONS.labels(trigger=decision.trigger, outcome=decision.outcome).inc()
    metrics.EVALUATION_SECONDS.observe(decision.duration_ms / 1000)
