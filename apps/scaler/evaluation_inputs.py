"""The inputs of one evaluation: the target workload and its pods, metric values (pushed signals newer than
``SIGNAL_FRESH_SECONDS`` win, else Prometheus), the forecast of a predictive policy, and the decision history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.utils.dateparse import parse_datetime

from apps.clusters import gateway as gateways
from apps.clusters.models import Pod, Workload
from apps.scaler import engine, forecast, prometheus
from apps.scaler.models import Decision, Outcome, ScalingPolicy, Signal

SIGNAL_FRESH_SECONDS = 30.0
FORECAST_WINDOW_SECONDS = 300
FORECAST_STEP_SECONDS = 5.0
# The replayed default (apps.scaler.replay.IccPolicy): smoothing per second, and only the trend it is
# confident about (the lower bound, z = 3) is extrapolated, so noise does not buy pods.
HOLT_ALPHA, HOLT_BETA, HOLT_GAMMA, HOLT_Z = 0.3, 0.05, 0.02, 3.0
STARTUP_CACHE_SECONDS = 300


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


def pod_names(workload: Workload) -> list[str]:
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
            out.snapshot[name] = {
                "source": "signal",
                "values": {p: v for p, (v, _) in latest.items()},
                "age_s": round(age, 3),
            }
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


def _series(
    policy: ScalingPolicy,
    metric: dict[str, Any],
    gathered: Gathered,
    *,
    workload: Workload,
    pods: list[str],
    now: datetime,
) -> list[tuple[float, float]]:
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
        series = prometheus.query_range(
            _query_for(metric, workload, pods), start=start, end=now, step=FORECAST_STEP_SECONDS
        )
        return prometheus.aggregate_range(
            series, mean=mean, pods=_application_pods(policy), unlabelled=metric["source"] == prometheus.CUSTOM
        )
    return []


def predict(
    policy: ScalingPolicy, gathered: Gathered, *, workload: Workload, pods: list[str], now: datetime, horizon: float
) -> tuple[dict[str, float], dict[str, Any]]:
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
        detail["metrics"][metric["name"]] = {
            "points": len(series),
            "level": result.level,
            "trend": result.trend,
            "value": values[metric["name"]],
        }
    return values, detail


def history(policy: ScalingPolicy, now: datetime, behavior: engine.Behavior) -> engine.History:
    window = max(
        600.0,
        behavior.scale_down_stabilization_s,
        behavior.scale_up_stabilization_s,
        behavior.cooldown_up_s,
        behavior.cooldown_down_s,
        behavior.flap_guard_window_s,
    )
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
