"""Replay: run scaling policies over a load trace on a simulated workload and compare what they cost and miss.

Pure and deterministic (seeded noise, simulated time). The simulated workload:
- each pod serves `capacity_per_pod` load units at utilisation 1.0; utilisation = load / (ready pods x capacity);
- a pod asked for at t becomes ready at t + `startup_s`; a scale-down removes not-ready pods first, then ready ones,
  at once;
- time advances in `dt_s` steps (1 s); the trace's load is held constant between its points.

Policies share one interface, `step(now, observation) -> desired replicas`, called every step; each keeps its own
cadence and state. Three are provided: ICC's default (`IccPolicy`), the HPA's default algorithm (`HpaPolicy`) and
a reactive baseline (`ReactivePolicy`).

Where ICC's default stands (30 s start-up, target 0.7; tests/scaler/test_replay.py holds it to these):
- spike and ramp: about 0.35-0.65x the HPA's overloaded pod-seconds at 0.5-1.05x its pod-seconds, with 30 s and
  60 s start-ups;
- ±20 % noise on a daily cycle: 0.1-0.7 reversals per 10 minutes at 1.0-1.1x the HPA's pod-seconds;
- noisy ramps are the weak case: median 0.3x the HPA's overloaded pod-seconds, but about one seed in ten is
  overloaded slightly longer with more pods ready (up to 1.2x) while still leaving less load unserved.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from apps.scaler.engine import DEFAULT_BEHAVIOR, Behavior, History, Limits, MetricSample, MetricTarget, decide
from apps.scaler.forecast import HoltState, learn_startup_seconds
from apps.scaler.replay_traces import Trace

TEN_MINUTES_S = 600.0


# ---------------------------------------------------------------- simulation


@dataclass(frozen=True)
class Simulation:
    """The simulated workload. `initial_replicas` None: sized for the first load at the target, all ready."""

    capacity_per_pod: float = 100.0
    startup_s: float = 30.0
    target_utilization: float = 0.7
    limits: Limits = field(default_factory=lambda: Limits(1, 200))
    initial_replicas: int | None = None
    dt_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.capacity_per_pod > 0 or not self.target_utilization > 0 or not self.dt_s > 0:
            raise ValueError("capacity_per_pod, target_utilization and dt_s must be > 0")
        if self.startup_s < 0:
            raise ValueError("startup_s must be >= 0")


@dataclass(frozen=True)
class Observation:
    """What a policy sees at one step. `utilization` is per ready pod (inf with load and no ready pod)."""

    now: float
    replicas: int
    ready: int
    load: float
    utilization: float
    capacity_per_pod: float
    target_utilization: float
    limits: Limits
    startup_durations: tuple[float, ...]


class Policy(Protocol):
    name: str

    def step(self, now: float, observation: Observation) -> int: ...


@dataclass(frozen=True)
class ReplayPoint:
    t: float
    replicas: int
    ready: int
    load: float
    utilization: float


@dataclass(frozen=True)
class ReplayResult:
    """What a policy did over a trace.

    - `overloaded_pod_seconds`: the sum over simulation steps where utilisation > 1.0 (load above what the ready
      pods serve) of ready pods x dt - pod-time spent overloaded. With no ready pod it adds nothing, so
      `unserved_load_seconds` (sum of max(0, load - ready x capacity) x dt) and `overloaded_seconds` are kept too.
    - `pod_seconds`: the sum of replicas (ready or starting) x dt - the cost.
    - `actions`: changes of the replica count; `reversals`: consecutive actions in opposite directions;
      `reversals_per_10min`: reversals / duration x 600 s; `max_reversals_in_10min`: the most in any 600 s window.
    """

    policy: str
    trace: str
    series: tuple[ReplayPoint, ...]
    overloaded_pod_seconds: float
    overloaded_seconds: float
    unserved_load_seconds: float
    pod_seconds: float
    actions: int
    reversals: int
    reversals_per_10min: float
    max_reversals_in_10min: int
    duration_s: float


class _Pods:
    """Pods of the simulated workload, each with the time it becomes ready.

    The initial pods are ready and count as having started in `startup_s`: a real workload has a start-up history
    to learn from before the replay begins.
    """

    def __init__(self, replicas: int, now: float, startup_s: float) -> None:
        self.ready_at: deque[float] = deque([now] * replicas)  # sorted: startup delay is constant
        self.startups: deque[float] = deque([startup_s] * min(replicas, 20), maxlen=20)
        self._started: deque[tuple[float, float]] = deque()  # (ready_at, asked_at) of pods not yet ready

    def ready(self, now: float) -> int:
        while self._started and self._started[0][0] <= now:
            ready_at, asked_at = self._started.popleft()
            self.startups.append(ready_at - asked_at)
        return bisect.bisect_right(self.ready_at, now)

    def scale(self, desired: int, now: float, startup_s: float) -> None:
        while len(self.ready_at) < desired:
            self.ready_at.append(now + startup_s)
            self._started.append((now + startup_s, now))
        while len(self.ready_at) > desired:
            removed = self.ready_at.pop()  # the newest: not ready first
            if self._started and self._started[-1][0] == removed:
                self._started.pop()


def run_replay(trace: Trace, policy: Policy, sim: Simulation) -> ReplayResult:
    """Run `policy` over `trace` on the simulated workload, one `dt_s` step at a time.

    At each step: the policy observes the state at t, its (clamped) answer is applied at once (a scale-down
    takes effect now, a scale-up after `startup_s`), and the interval [t, t + dt) is accounted with the new state.
    """
    dt = sim.dt_s
    limits = sim.limits
    first_load = trace.points[0][1]
    initial = sim.initial_replicas
    if initial is None:
        initial = math.ceil(first_load / sim.capacity_per_pod / sim.target_utilization - 1e-9)
    pods = _Pods(limits.clamp(initial), trace.start, sim.startup_s)
    series: list[ReplayPoint] = []
    overloaded_pod_s = overloaded_s = unserved = pod_s = 0.0
    action_times: list[tuple[float, int]] = []
    startups: tuple[float, ...] = ()
    index = 0
    steps = max(1, round(trace.duration_s / dt))
    for i in range(steps):
        now = trace.start + i * dt
        while index + 1 < len(trace.points) and trace.points[index + 1][0] <= now:
            index += 1
        load = trace.points[index][1]
        replicas = len(pods.ready_at)
        ready = pods.ready(now)
        if len(pods.startups) != len(startups) or (pods.startups and pods.startups[-1] != startups[-1]):
            startups = tuple(pods.startups)
        observation = Observation(
            now,
            replicas,
            ready,
            load,
            _utilization(load, ready, sim.capacity_per_pod),
            sim.capacity_per_pod,
            sim.target_utilization,
            limits,
            startups,
        )
        desired = limits.clamp(policy.step(now, observation))
        if desired != replicas:
            action_times.append((now, 1 if desired > replicas else -1))
            pods.scale(desired, now, sim.startup_s)
            replicas = desired
            ready = pods.ready(now)
        utilization = _utilization(load, ready, sim.capacity_per_pod)
        series.append(ReplayPoint(now, replicas, ready, load, utilization))
        pod_s += replicas * dt
        if utilization > 1.0:
            overloaded_pod_s += ready * dt
            overloaded_s += dt
            unserved += (load - ready * sim.capacity_per_pod) * dt
    reversal_times = [t for (_, previous), (t, d) in itertools.pairwise(action_times) if d != previous]
    duration = steps * dt
    return ReplayResult(
        policy=policy.name,
        trace=trace.name,
        series=tuple(series),
        overloaded_pod_seconds=overloaded_pod_s,
        overloaded_seconds=overloaded_s,
        unserved_load_seconds=unserved,
        pod_seconds=pod_s,
        actions=len(action_times),
        reversals=len(reversal_times),
        reversals_per_10min=len(reversal_times) / duration * TEN_MINUTES_S,
        max_reversals_in_10min=_max_in_window(reversal_times, TEN_MINUTES_S),
        duration_s=duration,
    )


def _utilization(load: float, ready: int, capacity: float) -> float:
    if ready > 0:
        return load / (ready * capacity)
    return math.inf if load > 0 else 0.0


def _max_in_window(times: Sequence[float], window_s: float) -> int:
    best = 0
    start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


# ---------------------------------------------------------------- policies

UTILIZATION = "utilization"


class IccPolicy:
    """ICC's default policy: `engine.decide` with `DEFAULT_BEHAVIOR` every second on fresh per-pod utilisation.

    Predictive on: Holt's smoothing (alpha 0.3, beta 0.05 per second) of the demand - utilisation x ready pods,
    i.e. pods' worth of load at utilisation 1.0 - forecast over the learned pod start-up time
    (`learn_startup_seconds` of the observed start-ups). Only the trend beyond `z` (3) times its downside
    deviation is extrapolated (`Forecast.lower_bound`, gamma 0.02): the plain forecast turned ±20 % noise on 15 s
    steps into about 25 % more pods than the HPA, and a symmetric deviation also distrusted the start of every ramp.
    The forecast is offered to `decide` as the utilisation the current replicas would have at the horizon, so it
    can only raise the proposal.
    """

    def __init__(
        self,
        behavior: Behavior = DEFAULT_BEHAVIOR,
        *,
        predictive: bool = True,
        alpha: float = 0.3,
        beta: float = 0.05,
        gamma: float = 0.02,
        z: float = 3.0,
        evaluate_every_s: float = 1.0,
        name: str = "icc",
    ) -> None:
        self.behavior = behavior
        self.predictive = predictive
        self.z = z
        self.evaluate_every_s = evaluate_every_s
        self.name = name
        self._holt = HoltState(alpha, beta, step_s=1.0, gamma=gamma)
        self._recommendations: deque[tuple[float, int]] = deque()
        self._actions: deque[tuple[float, int, int]] = deque()
        self._next_evaluation = -math.inf
        self.last_decision_reasons: list[str] = []

    def step(self, now: float, observation: Observation) -> int:
        if now < self._next_evaluation:
            return observation.replicas
        self._next_evaluation = now + self.evaluate_every_s
        current, ready = observation.replicas, observation.ready
        target = MetricTarget(UTILIZATION, "utilization", observation.target_utilization)
        metrics: list[MetricSample] = []
        forecast: dict[str, float] | None = None
        if ready > 0:
            metrics.append(MetricSample(UTILIZATION, (observation.utilization,) * ready))
            self._holt.update(now, observation.utilization * ready)
        if self.predictive and self._holt.ready and current > 0:
            horizon = learn_startup_seconds(observation.startup_durations)
            demand = max(0.0, self._holt.forecast(horizon).lower_bound(self.z))
            forecast = {UTILIZATION: demand / current}
        keep = max(self.behavior.scale_down_stabilization_s, self.behavior.scale_up_stabilization_s)
        while self._recommendations and self._recommendations[0][0] <= now - keep:
            self._recommendations.popleft()
        keep = max(self.behavior.flap_guard_window_s, self.behavior.cooldown_up_s, self.behavior.cooldown_down_s)
        while len(self._actions) > 1 and self._actions[0][0] <= now - keep:
            self._actions.popleft()  # the newest action stays: cooldowns and the guard look at the last one
        decision = decide(
            now,
            current,
            metrics,
            [target],
            self.behavior,
            limits=observation.limits,
            history=History(tuple(self._recommendations), tuple(self._actions)),
            forecast=forecast,
        )
        self.last_decision_reasons = decision.reasons
        self._recommendations.append((now, decision.proposed))
        if decision.desired != current:
            self._actions.append((now, current, decision.desired))
        return decision.desired


class HpaPolicy:
    """The HorizontalPodAutoscaler's default algorithm on CPU utilisation (autoscaling/v2 defaults).

    Every `sync_period_s` (15 s, first sync `phase_s` after the start): utilisation averaged over the previous
    `metric_window_s` (30 s, standing in for metrics-server's stale-ish window); ratio = average / target; within
    `tolerance` (0.1) hold; on a scale-up, not-ready pods count as 0 utilisation (and the direction must survive
    that); on a scale-down they are ignored (desired = ceil(ratio x ready)). Then scale-down stabilisation: the
    highest recommendation of the last 300 s; scale-up policy max(4 pods, 100 %) per 15 s; scale-down 100 % per
    15 s; then min/max.
    """

    def __init__(
        self,
        *,
        sync_period_s: float = 15.0,
        phase_s: float = 7.0,
        metric_window_s: float = 30.0,
        tolerance: float = 0.1,
        scale_down_stabilization_s: float = 300.0,
        name: str = "hpa",
    ) -> None:
        self.sync_period_s = sync_period_s
        self.phase_s = phase_s
        self.metric_window_s = metric_window_s
        self.tolerance = tolerance
        self.scale_down_stabilization_s = scale_down_stabilization_s
        self.name = name
        self._samples: deque[tuple[float, float]] = deque()
        self._sum = 0.0
        self._recommendations: deque[tuple[float, int]] = deque()
        self._next_sync: float | None = None

    def step(self, now: float, observation: Observation) -> int:
        if observation.ready > 0:
            self._samples.append((now, observation.utilization))
            self._sum += observation.utilization
        while self._samples and self._samples[0][0] <= now - self.metric_window_s:
            self._sum -= self._samples.popleft()[1]
        if self._next_sync is None:
            self._next_sync = now + self.phase_s
        if now < self._next_sync or not self._samples:
            return observation.replicas
        self._next_sync += self.sync_period_s
        current, ready = observation.replicas, observation.ready
        ratio = (self._sum / len(self._samples)) / observation.target_utilization
        unready = current - ready
        if abs(ratio - 1) <= self.tolerance:
            recommendation = current
        elif ratio > 1 and unready > 0:
            adjusted = ratio * ready / current
            if adjusted < 1 or abs(adjusted - 1) <= self.tolerance:
                recommendation = current
            else:
                recommendation = math.ceil(adjusted * current - 1e-9)
        else:
            recommendation = math.ceil(ratio * ready - 1e-9)
        while self._recommendations and self._recommendations[0][0] <= now - self.scale_down_stabilization_s:
            self._recommendations.popleft()
        self._recommendations.append((now, recommendation))
        highest = max(r for _, r in self._recommendations)
        desired = current
        if recommendation > current:
            desired = min(recommendation, max(current + 4, 2 * current))
        elif highest < current:
            desired = highest
        return observation.limits.clamp(desired)


class ReactivePolicy:
    """The simple baseline: every `period_s`, ceil(load / capacity / target), no tolerance, no stabilisation."""

    def __init__(self, *, period_s: float = 15.0, phase_s: float = 7.0, name: str = "reactive") -> None:
        self.period_s = period_s
        self.phase_s = phase_s
        self.name = name
        self._next: float | None = None

    def step(self, now: float, observation: Observation) -> int:
        if self._next is None:
            self._next = now + self.phase_s
        if now < self._next:
            return observation.replicas
        self._next += self.period_s
        wanted = observation.load / observation.capacity_per_pod / observation.target_utilization
        return observation.limits.clamp(math.ceil(wanted - 1e-9))


def default_policies() -> list[Policy]:
    """Fresh instances of the three compared policies (policies keep state, so one set per replay)."""
    return [IccPolicy(), HpaPolicy(), ReactivePolicy()]


def compare(trace: Trace, sim: Simulation) -> dict[str, ReplayResult]:
    """ICC's default policy, the HPA's default algorithm and the reactive baseline over the same trace."""
    return {policy.name: run_replay(trace, policy, sim) for policy in default_policies()}


def ratios(results: dict[str, ReplayResult], policy: str = "icc", baseline: str = "hpa") -> dict[str, float]:
    """`policy` relative to `baseline`: overloaded pod-seconds and pod-seconds ratios (inf when the baseline is 0)."""

    def ratio(a: float, b: float) -> float:
        if b == 0:
            return 0.0 if a == 0 else math.inf
        return a / b

    mine, theirs = results[policy], results[baseline]
    return {
        "overloaded_pod_seconds": ratio(mine.overloaded_pod_seconds, theirs.overloaded_pod_seconds),
        "pod_seconds": ratio(mine.pod_seconds, theirs.pod_seconds),
    }
