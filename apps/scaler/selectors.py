"""Reads for the scaling pages: every query is restricted to what the viewer may read.

The fleet shows each policy with its latest decision (a correlated subquery over the viewer's restricted
decisions); the application page reads the policies, the decisions timeline and the Prometheus history of the
policy's metrics (last hour, ``query_range``), plus the replicas the decisions recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from apps.clusters.models import Application, Cluster, Pod, Workload
from apps.core.access import GLOBAL, Action, can_at, restrict
from apps.core.selectors import matching
from apps.scaler import engine, prometheus, replay, replay_traces
from apps.scaler.models import Decision, ScalerSettings, ScalingPolicy

CHART_MINUTES = 60
CHART_STEP_SECONDS = 30.0


def fleet(
    viewer: Any, *, status: str = "", mode: str = "", cluster: int | None = None, search: str = ""
) -> QuerySet[ScalingPolicy]:
    """The policies the viewer may read, each with the fields of its latest decision (``last_*``)."""
    latest = restrict(viewer, Action.READ, Decision.objects.all()).filter(policy=OuterRef("pk")).order_by("-at", "-id")
    policies = (
        restrict(viewer, Action.READ, ScalingPolicy.objects.all())
        .select_related("application__cluster", "workload")
        .annotate(
            last_at=Subquery(latest.values("at")[:1]),
            last_current=Subquery(latest.values("current_replicas")[:1]),
            last_desired=Subquery(latest.values("desired_replicas")[:1]),
            last_outcome=Subquery(latest.values("outcome")[:1]),
            last_reason=Subquery(latest.values("reason")[:1]),
        )
        .order_by("application__cluster__name", "application__namespace", "application__name", "name")
    )
    if status == "disabled":
        policies = policies.filter(Q(enabled=False) | Q(status=status))
    elif status:
        policies = policies.filter(enabled=True, status=status)
    return matching(
        policies,
        mode=mode,
        application__cluster_id=cluster,
        search=search,
        search_fields=("name", "application__name", "application__namespace"),
    )


def fleet_clusters(viewer: Any) -> list[tuple[int, str]]:
    """Clusters holding a policy the viewer may read (for the filter)."""
    ids = restrict(viewer, Action.READ, ScalingPolicy.objects.all()).values("application__cluster_id")
    return list(restrict(viewer, Action.READ, Cluster.objects.filter(pk__in=ids)).values_list("pk", "name"))


def pause_state(viewer: Any) -> ScalerSettings | None:
    """The global pause row, when the viewer may read it (global grants only)."""
    return restrict(viewer, Action.READ, ScalerSettings.objects.filter(pk=1)).first()


def application(viewer: Any, pk: int) -> Application | None:
    return restrict(viewer, Action.READ, Application.objects.select_related("cluster")).filter(pk=pk).first()


def policies(viewer: Any, app: Application) -> list[ScalingPolicy]:
    return list(
        restrict(viewer, Action.READ, ScalingPolicy.objects.filter(application=app))
        .select_related("workload")
        .prefetch_related("schedules")
    )


def workloads(viewer: Any, app: Application) -> list[Workload]:
    """The application's workloads a policy may scale (Deployments and StatefulSets)."""
    scalable = Workload.objects.filter(application=app, kind__in=("Deployment", "StatefulSet")).order_by("kind", "name")
    return list(restrict(viewer, Action.READ, scalable))


def decisions(viewer: Any, app: Application, *, policy: ScalingPolicy | None = None) -> QuerySet[Decision]:
    """The decisions timeline, newest first."""
    rows = restrict(viewer, Action.READ, Decision.objects.filter(application=app)).select_related("policy")
    return rows.filter(policy=policy) if policy is not None else rows


def latest_decision(viewer: Any, app: Application, policy: ScalingPolicy | None) -> Decision | None:
    return decisions(viewer, app, policy=policy).order_by("-at", "-id").first()


@dataclass
class Chart:
    """Data for one uPlot chart: ``data`` is [x (unix seconds), y1, y2, ...], ``series`` their labels."""

    key: str
    title: str
    series: list[str]
    data: list[list[float | None]]
    unit: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "series": self.series, "data": self.data, "unit": self.unit}


@dataclass
class MetricsHistory:
    """The last hour: one chart per metric from Prometheus (or why there is none) and the replicas chart."""

    charts: list[Chart] = field(default_factory=list)
    unavailable: str = ""  # PROMETHEUS_URL unset or Prometheus down: said instead of drawing
    errors: list[str] = field(default_factory=list)
    replicas: Chart | None = None


def _target_workload(viewer: Any, policy: ScalingPolicy) -> Workload | None:
    if policy.workload_id is not None:
        return restrict(viewer, Action.READ, Workload.objects.filter(pk=policy.workload_id)).first()
    candidates = workloads(viewer, policy.application)
    return candidates[0] if len(candidates) == 1 else None


def _query(metric: dict[str, Any], workload: Workload, pods: list[str]) -> str:
    source = metric.get("source") or metric.get("name")
    template = metric["query"] if source == prometheus.CUSTOM else prometheus.TEMPLATES[str(source)].promql
    return prometheus.render(template, namespace=workload.namespace, pods=prometheus.pods_regex(pods, [workload.name]))


def metrics_history(viewer: Any, policy: ScalingPolicy, *, now: datetime | None = None) -> MetricsHistory:
    """Each metric of the policy over the last hour (mean across pods, or the sum for workload-wide values)."""
    now = now or timezone.now()
    start = now - timedelta(minutes=CHART_MINUTES)
    out = MetricsHistory(replicas=replica_history(viewer, policy, since=start))
    if not prometheus.configured():
        out.unavailable = "PROMETHEUS_URL is not set: ICC has no metric history to draw."
        return out
    workload = _target_workload(viewer, policy)
    if workload is None:
        out.unavailable = "The policy names no workload and the application has several: no metrics to query."
        return out
    pods = list(
        restrict(viewer, Action.READ, Pod.objects.filter(workload=workload, deleting=False)).values_list(
            "name", flat=True
        )
    )
    for metric in policy.metrics:
        try:
            series = prometheus.query_range(
                _query(metric, workload, pods), start=start, end=now, step=CHART_STEP_SECONDS
            )
        except prometheus.PrometheusUnavailable as exc:
            out.unavailable = f"Prometheus is unavailable: {exc.message}"
            out.charts = []
            return out
        except (prometheus.PromQLRejected, KeyError) as exc:
            out.errors.append(f"{metric.get('name')}: {getattr(exc, 'message', exc)}")
            continue
        points = prometheus.aggregate_range(series, mean=metric.get("kind") != "value", pods=set(pods))
        xs = [t for t, _ in points]
        target = float(metric.get("target") or 0)
        out.charts.append(
            Chart(
                key=f"metric-{metric.get('name')}",
                title=f"{metric.get('name')} ({metric.get('source')})",
                series=["value", "target"],
                data=[list[float | None](xs), [round(v, 6) for _, v in points], [target for _ in xs]],
            )
        )
    return out


def replica_history(viewer: Any, policy: ScalingPolicy, *, since: datetime) -> Chart | None:
    """Current and desired replicas as the decisions recorded them since ``since``."""
    rows = list(
        decisions(viewer, policy.application, policy=policy)
        .filter(at__gte=since)
        .order_by("at", "id")
        .values_list("at", "current_replicas", "desired_replicas")[:2000]
    )
    if not rows:
        return None
    return Chart(
        key="replicas",
        title="Replicas (from decisions)",
        series=["current", "desired"],
        data=[[at.timestamp() for at, _, _ in rows], [float(c) for _, c, _ in rows], [float(d) for _, _, d in rows]],
    )


# --- replay ---------------------------------------------------------------------------------------------------

RECORDED_WINDOWS = {"recorded_24h": timedelta(hours=24), "recorded_7d": timedelta(days=7)}
MAX_RECORDED_DECISIONS = 50_000
MAX_SIMULATION_STEPS = 20_000  # bounds one replay's work (three policies): a week runs at 30 s steps
MAX_CHART_POINTS = 600
POLICY_LABELS = {"icc": "ICC (this policy)", "hpa": "HPA default", "reactive": "Reactive baseline"}


@dataclass
class Comparison:
    trace: str
    results: list[tuple[str, replay.ReplayResult]]
    chart: Chart
    simulation: replay.Simulation
    note: str = ""


def _needed_pods(decision_inputs: dict[str, Any]) -> float | None:
    """Pods' worth of work a decision saw: per metric, the sum of its per-pod values over its target (the HPA's
    ``ceil(current * mean / target)`` without the ceiling); the largest over the metrics."""
    targets = {str(m.get("name")): float(m.get("target") or 0) for m in decision_inputs.get("targets") or []}
    needed: list[float] = []
    for name, snapshot in (decision_inputs.get("metrics") or {}).items():
        values = (snapshot or {}).get("values") if isinstance(snapshot, dict) else None
        target = targets.get(str(name), 0.0)
        if not isinstance(values, dict) or not values or target <= 0:
            continue
        numbers = [float(v) for v in values.values() if isinstance(v, (int, float))]
        if numbers:
            needed.append(sum(numbers) / target)
    return max(needed) if needed else None


def recorded_points(viewer: Any, app: Application, *, since: datetime) -> list[tuple[float, float]]:
    """(t, pods' worth of work) from the application's decisions since ``since``, oldest first."""
    rows = (decisions(viewer, app).filter(at__gte=since).order_by("at", "id").values_list("at", "inputs"))[
        :MAX_RECORDED_DECISIONS
    ]
    points = []
    for at, inputs in rows:
        needed = _needed_pods(inputs or {})
        if needed is not None:
            points.append((at.timestamp(), needed))
    return points


def _thin(series: tuple[replay.ReplayPoint, ...], start: float, most: int) -> list[tuple[float, int]]:
    step = max(1, len(series) // most)
    kept = [(p.t - start, p.replicas) for p in series[::step]]
    if series and kept[-1][0] != series[-1].t - start:
        kept.append((series[-1].t - start, series[-1].replicas))
    return kept


def replay_comparison(
    viewer: Any, app: Application, policy: ScalingPolicy | None, trace_key: str, *, now: datetime | None = None
) -> Comparison:
    """Run the policy (its behaviour and limits), the HPA's default algorithm and the reactive baseline over a
    synthetic trace sized to the policy's replica range, or over the application's recorded decisions."""
    from apps.core.errors import DomainError

    low = max(policy.min_replicas, 1) if policy else 1
    high = max(policy.max_replicas, low + 1) if policy else 20
    base = replay.Simulation()
    per_pod = base.capacity_per_pod * base.target_utilization  # load one pod serves at the target
    note = ""
    if trace_key in RECORDED_WINDOWS:
        since = (now or timezone.now()) - RECORDED_WINDOWS[trace_key]
        points = recorded_points(viewer, app, since=since)
        if len(points) < 2:
            raise DomainError(
                f"fewer than two decisions with metric values in that period ({len(points)}): nothing to replay",
                field="trace",
            )
        origin = points[0][0]
        trace = replay_traces.recorded(
            f"recorded {trace_key[-3:]} of {app.name}", [(t - origin, needed * per_pod) for t, needed in points]
        )
        note = f"{len(points)} decisions"
    elif trace_key == "ramp":
        trace = replay_traces.ramp(low=low * per_pod, high=high * per_pod * 0.9)
    elif trace_key == "spike":
        trace = replay_traces.spike(base=low * per_pod, peak=max(high * 0.6, low * 5) * per_pod)
    elif trace_key == "daily":
        trace = replay_traces.daily_cycle(low=low * per_pod, high=high * per_pod * 0.8, period_s=3600.0)
    else:
        raise DomainError(f"unknown trace {trace_key!r}", field="trace")
    dt = max(1.0, trace.duration_s / MAX_SIMULATION_STEPS)
    sim = replay.Simulation(limits=engine.Limits(low, high), dt_s=dt)
    icc = replay.IccPolicy(policy.engine_behavior(), predictive=policy.predictive) if policy else replay.IccPolicy()
    results = [(p.name, replay.run_replay(trace, p, sim)) for p in (icc, replay.HpaPolicy(), replay.ReactivePolicy())]
    start = trace.start
    thinned = {name: dict(_thin(result.series, start, MAX_CHART_POINTS)) for name, result in results}
    xs = sorted({t for series in thinned.values() for t in series})
    columns: list[list[float | None]] = [[float(x) for x in xs]]
    for name, _ in results:
        series, last, column = thinned[name], None, []
        for x in xs:
            last = series.get(x, last)
            column.append(None if last is None else float(last))
        columns.append(column)
    load = [round(trace.load_at(start + x) / per_pod, 3) for x in xs]
    chart = Chart(
        key="replay",
        title=f"Replicas over time: {trace.name}",
        series=[*(POLICY_LABELS.get(n, n) for n, _ in results), "pods needed at target"],
        data=[*columns, [float(v) for v in load]],
        unit="s",
    )
    return Comparison(trace.name, results, chart, sim, note)


def pause_context(user: Any) -> dict[str, Any]:
    """The global pause as ``user`` sees it, and whether they may change it."""
    return {"pause": pause_state(user), "may_pause": can_at(user, Action.CONFIGURE, GLOBAL)}


def summary_context(user: Any, app: Application) -> dict[str, Any]:
    """What the summary panel shows: each policy with its latest decision, and the kill switch."""
    found = policies(user, app)
    rows = [{"policy": p, "decision": latest_decision(user, app, p)} for p in found]
    return {
        "app": app,
        "rows": rows,
        "kill_switch": any(p.kill_switch for p in found),
        **pause_context(user),
    }
