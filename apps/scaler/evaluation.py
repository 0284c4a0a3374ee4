"""One evaluation of a scaling policy: gather inputs, decide (pure engine), write the decision row, then act.

Inputs: pushed signals newer than ``SIGNAL_FRESH_SECONDS`` win; otherwise Prometheus (per-metric templates over
the workload's pods). A Prometheus failure leaves replicas untouched and marks the policy degraded. Writes happen
only for ``active`` policies with neither the application's kill switch nor the global pause on, and only when no
other writer (HPA, GitOps manager) owns the replica count — unless the policy drives that HPA instead.
Single-flight per policy (advisory lock); a request arriving meanwhile makes the holder evaluate once more.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.audit.services import audit_record
from apps.clusters import gateway as gateways
from apps.clusters.models import Pod, Workload
from apps.core.locks import advisory_lock
from apps.scaler import actuation, engine, forecast, metrics, ownership, prometheus, schedules, services
from apps.scaler.models import ConflictMode, Decision, Mode, Outcome, PolicyStatus, ScalingPolicy, Signal

logger = logging.getLogger(__name__)

SIGNAL_FRESH_SECONDS = 30.0
FORECAST_WINDOW_SECONDS = 300
FORECAST_STEP_SECONDS = 5.0
# The replayed default (apps.scaler.replay.IccPolicy): smoothing per second, and only the trend it is
# confident about (the lower bound, z = 3) is extrapolated, so noise does not buy pods.
HOLT_ALPHA, HOLT_BETA, HOLT_GAMMA, HOLT_Z = 0.3, 0.05, 0.02, 3.0
STARTUP_CACHE_SECONDS = 300


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


# --- inputs -----------------------------------------------------------------------------------------------------


@dataclass
class Gathered:
    samples: list[engine.MetricSample] = field(default_factory=list)
    snapshot: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def target_workload(policy: ScalingPolicy) -> Workload:
    """The workload the policy scales: its own, else the application's only Deployment/StatefulSet."""
    if policy.workload_id is not None and policy.workload is not None:
        return policy.workload
    candidates = list(
        Workload.objects.select_related("cluster").filter(
            application_id=policy.application_id, kind__in=("Deployment", "StatefulSet")
        )[:3]
    )
    if len(candidates) != 1:
        raise LookupError(
            f"application {policy.application} has {len(candidates) if len(candidates) < 3 else 'several'} scalable "
            "workloads; name the workload in the policy"
        )
    return candidates[0]


def _pod_names(workload: Workload) -> list[str]:
    return list(Pod.objects.filter(workload=workload, deleting=False).values_list("name", flat=True))


def _application_pods(policy: ScalingPolicy) -> set[str]:
    return set(Pod.objects.filter(application_id=policy.application_id, deleting=False).values_list("name", flat=True))


def _query_for(metric: dict[str, Any], workload: Workload, pods: list[str]) -> str:
    template = (
        metric["query"] if metric["source"] == prometheus.CUSTOM else prometheus.TEMPLATES[metric["source"]].promql
    )
    return prometheus.render(template, namespace=workload.namespace, pods=prometheus.pods_regex(pods, [workload.name]))


def gather(policy: ScalingPolicy, workload: Workload, pods: list[str], now: datetime) -> Gathered:
    """The metrics' current values. Rule: only values of the application's own pods are inputs — pushed
    signals of other pods are ignored, and Prometheus series whose ``pod`` label is not one of the application's
    pods are dropped (counted in the snapshot, not named: they belong to someone else)."""
    out = Gathered()
    alive = set(pods)
    own = _application_pods(policy)
    since = now - timedelta(seconds=SIGNAL_FRESH_SECONDS)
    for metric in policy.metrics:
        name = metric["name"]
        latest: dict[str, tuple[float, datetime]] = {}
        for pod, value, at in (
            Signal.objects.filter(application_id=policy.application_id, metric=name, at__gte=since)
            .order_by("-at", "-id")
            .values_list("pod", "value", "at")[:5000]
        ):
            if pod in alive and pod not in latest:
                latest[pod] = (value, at)
        if latest:
            oldest = min(at for _, at in latest.values())
            age = max(0.0, (now - oldest).total_seconds())
            out.samples.append(engine.MetricSample(name, [v for v, _ in latest.values()], age))
            out.snapshot[name] = {"source": "signal", "values": {p: v for p, (v, _) in latest.items()},
                                  "age_s": round(age, 3)}  # fmt: skip
            continue
        if not prometheus.configured():
            out.snapshot[name] = {"source": "none", "note": "no fresh signal and PROMETHEUS_URL is not set"}
            continue
        promql = _query_for(metric, workload, pods)
        try:
            series = prometheus.query(promql)
        except (prometheus.PrometheusUnavailable, prometheus.PromQLRejected) as exc:
            out.error = f"{name}: {exc.message}"
            out.snapshot[name] = {"source": "prometheus", "query": promql, "error": exc.message}
            continue
        custom = metric["source"] == prometheus.CUSTOM
        values = prometheus.per_pod(series, pods=own, unlabelled=custom)
        out.snapshot[name] = {"source": "prometheus", "query": promql, "values": values}
        dropped = sum(
            1
            for item in series
            if not isinstance(item, dict) or not prometheus.belongs(item.get("metric"), own, unlabelled=custom)
        )
        if dropped:
            out.snapshot[name]["dropped_series"] = dropped
        if values:
            out.samples.append(engine.MetricSample(name, list(values.values()), 0.0))
    return out


def learned_startup_seconds(gateway: gateways.Gateway, workload: Workload) -> float:
    """Median creation-to-Ready time of the workload's pods (asked of the cluster, cached 5 min), default 30 s."""
    key = f"icc:scaler:startup:{workload.pk}"
    cached = cache.get(key)
    if isinstance(cached, (int, float)):
        return float(cached)
    samples: list[float] = []
    selector = ",".join(f"{k}={v}" for k, v in sorted((workload.selector or {}).items()))
    try:
        data = gateway.get(f"/api/v1/namespaces/{workload.namespace}/pods", query={"labelSelector": selector})
    except gateways.KubeError:
        data = {}
    for pod in data.get("items") or []:
        created = parse_datetime(str((pod.get("metadata") or {}).get("creationTimestamp") or ""))
        for condition in (pod.get("status") or {}).get("conditions") or []:
            ready_at = parse_datetime(str(condition.get("lastTransitionTime") or ""))
            if condition.get("type") == "Ready" and condition.get("status") == "True" and created and ready_at:
                samples.append((ready_at - created).total_seconds())
    learned = forecast.learn_startup_seconds(samples)
    cache.set(key, learned, STARTUP_CACHE_SECONDS)
    return learned


def _series(policy: ScalingPolicy, metric: dict[str, Any], gathered: Gathered, *, workload: Workload, pods: list[str],
            now: datetime) -> list[tuple[float, float]]:  # fmt: skip
    mean = metric["kind"] != "value"
    source = (gathered.snapshot.get(metric["name"]) or {}).get("source")
    start = now - timedelta(seconds=FORECAST_WINDOW_SECONDS)
    if source == "signal":
        buckets: dict[float, list[float]] = {}
        for value, at in Signal.objects.filter(
            application_id=policy.application_id, metric=metric["name"], at__gte=start
        ).values_list("value", "at")[:20000]:
            buckets.setdefault(float(int(at.timestamp() / FORECAST_STEP_SECONDS) * FORECAST_STEP_SECONDS), []).append(
                value
            )
        return [(t, (sum(v) / len(v)) if mean else sum(v)) for t, v in sorted(buckets.items())]
    if source == "prometheus":
        series = prometheus.query_range(_query_for(metric, workload, pods), start=start, end=now,
                                        step=FORECAST_STEP_SECONDS)  # fmt: skip
        return prometheus.aggregate_range(
            series, mean=mean, pods=_application_pods(policy), unlabelled=metric["source"] == prometheus.CUSTOM
        )
    return []


def predict(policy: ScalingPolicy, gathered: Gathered, *, workload: Workload, pods: list[str], now: datetime,
            horizon: float) -> tuple[dict[str, float], dict[str, Any]]:  # fmt: skip
    values: dict[str, float] = {}
    detail: dict[str, Any] = {"horizon_s": horizon, "metrics": {}}
    for metric in policy.metrics:
        try:
            series = _series(policy, metric, gathered, workload=workload, pods=pods, now=now)
        except (prometheus.PrometheusUnavailable, prometheus.PromQLRejected) as exc:
            detail["metrics"][metric["name"]] = {"error": exc.message}
            continue
        if len(series) < 3:
            detail["metrics"][metric["name"]] = {"points": len(series), "note": "too few points to forecast"}
            continue
        result = forecast.holt(series, HOLT_ALPHA, HOLT_BETA, horizon, step_s=1.0, gamma=HOLT_GAMMA)
        values[metric["name"]] = max(0.0, result.lower_bound(HOLT_Z))
        detail["metrics"][metric["name"]] = {"points": len(series), "level": result.level, "trend": result.trend,
                                             "value": values[metric["name"]]}  # fmt: skip
    return values, detail


def history(policy: ScalingPolicy, now: datetime, behavior: engine.Behavior) -> engine.History:
    window = max(600.0, behavior.scale_down_stabilization_s, behavior.scale_up_stabilization_s,
                 behavior.cooldown_up_s, behavior.cooldown_down_s, behavior.flap_guard_window_s)  # fmt: skip
    rows = (
        Decision.objects.filter(policy=policy, at__gte=now - timedelta(seconds=window))
        .exclude(outcome__in=(Outcome.DEGRADED, Outcome.FAILED))
        .order_by("at")
        .values_list("at", "current_replicas", "desired_replicas", "outcome", "inputs")
    )
    recommendations: list[tuple[float, int]] = []
    actions: list[tuple[float, int, int]] = []
    for at, current, desired, outcome, inputs in rows:
        t = at.timestamp()
        recommendations.append((t, int((inputs or {}).get("proposed", desired))))
        if outcome == Outcome.APPLIED and desired != current:
            actions.append((t, current, desired))
    return engine.History(recommendations=recommendations, actions=actions)


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


def _evaluate_once(policy_id: int, trigger: str) -> Decision | None:  # noqa: PLR0911 - one return per outcome
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
        return _record(run, Outcome.FAILED, str(exc), status=PolicyStatus.DEGRADED, status_message=str(exc))
    gateway = gateways.for_cluster(policy.application.cluster)
    live: dict[str, Any] | None = None
    kube_error = ""
    try:
        live = actuation.read_workload(gateway, kind=workload.kind, namespace=workload.namespace, name=workload.name)
        run.current = int((live.get("spec") or {}).get("replicas") or 0)
    except gateways.KubeError as exc:
        kube_error = exc.message
        run.current = workload.desired_replicas
    run.desired = run.current
    pods = _pod_names(workload)
    behavior = policy.engine_behavior()
    gathered = gather(policy, workload, pods, run.now)
    hard = engine.Limits(policy.min_replicas, policy.max_replicas)
    window = schedules.active_limits(policy.schedules.all(), run.now)
    limits = engine.intersect(hard, engine.Limits(window.min, window.max) if window else None)
    run.inputs = {
        "trigger": trigger, "workload": {"id": workload.pk, "kind": workload.kind, "name": workload.name},
        "pods": len(pods), "metrics": gathered.snapshot, "targets": policy.metrics,
        "limits": {"hard": [hard.min, hard.max], "effective": [limits.min, limits.max],
                   "schedule": window.as_dict() if window else None},
        "behavior": policy.behavior, "mode": policy.mode,
    }  # fmt: skip
    if gathered.error:
        return _record(run, Outcome.DEGRADED, f"metrics unavailable, replicas untouched: {gathered.error}",
                       status=PolicyStatus.DEGRADED, status_message=gathered.error)  # fmt: skip
    forecast_values: dict[str, float] | None = None
    if policy.predictive:
        horizon = learned_startup_seconds(gateway, workload)
        forecast_values, run.forecast = predict(policy, gathered, workload=workload, pods=pods, now=run.now,
                                                horizon=horizon)  # fmt: skip
    targets = [engine.MetricTarget(m["name"], m["kind"], float(m["target"])) for m in policy.metrics]
    try:
        result = engine.decide(run.now.timestamp(), run.current, gathered.samples, targets, behavior, limits,
                               history(policy, run.now, behavior), forecast_values or None)  # fmt: skip
    except ValueError as exc:
        return _record(run, Outcome.FAILED, f"the engine refused the inputs: {exc}", status=PolicyStatus.DEGRADED,
                       status_message=str(exc))  # fmt: skip
    run.inputs.update(raw=result.raw, proposed=result.proposed, limited_by=result.limited_by)
    run.reasons, run.desired = result.reasons, result.desired
    if policy.mode == Mode.RECOMMEND:
        return _record(run, Outcome.RECOMMENDED, f"recommend mode: would set {run.desired}")
    if policy.mode == Mode.SHADOW:
        return _record(run, Outcome.SHADOW, f"shadow mode: would set {run.desired}")
    stop = _stopped(policy)
    if stop is not None:
        return _record(run, stop[0], stop[1], status=PolicyStatus.PAUSED, status_message=stop[1])
    if live is None:
        return _record(run, Outcome.FAILED, f"cannot read the workload: {kube_error}", status=PolicyStatus.DEGRADED,
                       status_message=kube_error)  # fmt: skip
    return _act(run, workload, gateway, live, limits)


def _stopped(policy: ScalingPolicy) -> tuple[str, str] | None:
    """The kill switch or the global pause, read fresh (they stop writes at once)."""
    if services.kill_switch_on(policy.application_id):
        return Outcome.KILLED, f"kill switch of {policy.application} is on: nothing written"
    if services.globally_paused():
        return Outcome.PAUSED, "the scaler is paused globally: nothing written"
    return None


def _act(run: Run, workload: Workload, gateway: gateways.Gateway, live: dict[str, Any],  # noqa: PLR0911
         limits: engine.Limits) -> Decision:  # fmt: skip
    policy = run.policy
    try:
        writers = ownership.other_writers(gateway, live, kind=workload.kind)
    except gateways.KubeError as exc:
        return _record(run, Outcome.FAILED, f"cannot check other writers: {exc.message}",
                       status=PolicyStatus.DEGRADED, status_message=exc.message)  # fmt: skip
    if writers:
        hpas = [w for w in writers if w.kind == "hpa"]
        managers = [w for w in writers if w.kind == "manager"]
        if policy.conflict_mode == ConflictMode.DRIVE_HPA and len(hpas) == 1 and not managers and hpas[0].hpa:
            return _drive(run, workload, gateway, hpas[0], limits)
        message = "; ".join(w.describe() for w in writers) + ": ICC does not fight it, nothing written"
        return _record(run, Outcome.CONFLICT, message, status=PolicyStatus.CONFLICT, status_message=message)
    if run.desired == run.current:
        return _record(run, Outcome.UNCHANGED, f"holding {run.current}")
    # Decisions are rows first, actions second: a crash mid-write leaves a "failed" row, never an unexplained scale.
    decision = _record(run, Outcome.FAILED, "scale in progress (interrupted)", count=False)
    stop = _stopped(policy)
    if stop is not None:
        return _finish(run, decision, stop[0], stop[1], status=PolicyStatus.PAUSED, status_message=stop[1])
    resource_version = str((live.get("metadata") or {}).get("resourceVersion") or "")
    try:
        outcome = actuation.scale_to(gateway, kind=workload.kind, namespace=workload.namespace, name=workload.name,
                                     replicas=run.desired, resource_version=resource_version,
                                     expected=run.current)  # fmt: skip
    except gateways.KubeError as exc:
        return _finish(run, decision, Outcome.FAILED, f"scale to {run.desired} failed: {exc.message}",
                       status=PolicyStatus.DEGRADED, status_message=exc.message)  # fmt: skip
    reason = f"scaled {run.current} -> {run.desired}"
    if outcome.attempts > 1:
        reason += " (after a conflict, on a fresh read)"
    return _finish(run, decision, Outcome.APPLIED, reason, audit_scale=(workload, outcome))


def _drive(run: Run, workload: Workload, gateway: gateways.Gateway, writer: ownership.OtherWriter,
           limits: engine.Limits) -> Decision:  # fmt: skip
    hpa = writer.hpa or {}
    spec = hpa.get("spec") or {}
    want = (max(1, run.desired), max(1, run.desired, limits.max))
    if (spec.get("minReplicas", 1), spec.get("maxReplicas")) == want:
        return _record(run, Outcome.UNCHANGED, f"HPA {writer.name} already at min {want[0]}, max {want[1]}")
    decision = _record(run, Outcome.FAILED, "HPA update in progress (interrupted)", count=False)
    stop = _stopped(run.policy)
    if stop is not None:
        return _finish(run, decision, stop[0], stop[1], status=PolicyStatus.PAUSED, status_message=stop[1])
    try:
        actuation.drive_hpa(gateway, hpa, min_replicas=want[0], max_replicas=want[1])
    except gateways.KubeError as exc:
        return _finish(run, decision, Outcome.FAILED, f"HPA {writer.name}: {exc.message}",
                       status=PolicyStatus.DEGRADED, status_message=exc.message)  # fmt: skip
    reason = f"drove HPA {writer.name}: min {spec.get('minReplicas', 1)} -> {want[0]}, max -> {want[1]}"
    with transaction.atomic():
        audit_record(action="scaler.hpa.drive", target=workload, actor=services.system_actor(), message=reason,
                     scope=_scope(workload),
                     changes={"minReplicas": [spec.get("minReplicas", 1), want[0]],
                              "maxReplicas": [spec.get("maxReplicas"), want[1]]},
                     metadata={"policy": run.policy.pk, "decision": decision.pk, "hpa": writer.name})  # fmt: skip
    return _finish(run, decision, Outcome.APPLIED, reason)


def _scope(workload: Workload) -> dict[str, str]:
    return {"cluster": str(workload.cluster_id), "namespace": workload.namespace,
            "application": workload.application.name}  # fmt: skip


def _record(run: Run, outcome: str, reason: str, *, status: str = PolicyStatus.OK, status_message: str = "",
            count: bool = True) -> Decision:  # fmt: skip
    policy = run.policy
    with transaction.atomic():
        decision = Decision.objects.create(
            policy=policy, application_id=policy.application_id, at=run.now, trigger=run.trigger,
            current_replicas=run.current, desired_replicas=run.desired, outcome=outcome, reason=reason[:2000],
            reasons=run.reasons, inputs=run.inputs, forecast=run.forecast, policy_version=policy.version,
            duration_ms=(time.perf_counter() - run.started) * 1000,
        )  # fmt: skip
        ScalingPolicy.objects.filter(pk=policy.pk).update(status=status, status_message=status_message[:2000],
                                                          last_evaluated_at=run.now)  # fmt: skip
    if count:
        _count(decision)
    return decision


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
        if audit_scale is not None:
            workload, result = audit_scale
            audit_record(
                action="scaler.scale", target=workload, actor=services.system_actor(), message=reason,
                scope=_scope(workload), changes={"replicas": [result.previous, result.replicas]},
                metadata={"policy": policy.pk, "policy_version": policy.version, "decision": decision.pk,
                          "trigger": decision.trigger, "resource_version": result.resource_version},
            )  # fmt: skip
    _count(decision)
    return decision


def _count(decision: Decision) -> None:
    metrics.DECISIONS.labels(trigger=decision.trigger, outcome=decision.outcome).inc()
    metrics.EVALUATION_SECONDS.observe(decision.duration_ms / 1000)
