"""The scaling decision engine: metrics, behaviour, limits and history in; desired replicas and reasons out.

Pure and typed on purpose (no Django, no database, no clock, no I/O): the same function drives live evaluations,
the replay simulator and the property-based tests, and a decision can be recomputed from its stored inputs.

Pipeline of `decide`, each step explained by a reason when it changes the number:
raw proposal (max over metrics) -> predictive (max with the forecast) -> stabilisation -> step limits -> cooldowns
-> flap guard -> clamp to limits (always last: the result is never outside the limits).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

MetricKind = Literal["utilization", "value", "per_pod", "latency"]
METRIC_KINDS: tuple[MetricKind, ...] = ("utilization", "value", "per_pod", "latency")

# Guards ceil() and the tolerance against float noise: 3 x 0.7 / 0.7 is 3, and 0.77 / 0.7 is inside a 0.1 tolerance.
_EPSILON = 1e-9


def _finite_non_negative(value: float, what: str) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class MetricTarget:
    """The value one metric should have, in the metric's own unit.

    - `utilization`: per-pod utilisation of requests (a ratio, 0.7 = 70 %); pods are averaged.
    - `per_pod`: a per-pod quantity such as requests/s per pod; pods are averaged.
    - `value`: one workload-wide quantity (queue depth, total requests/s); per-pod values are summed.
    - `latency`: a latency objective (p95 seconds); pods are averaged. Latency is not proportional to replicas,
      so the proportional rule is an approximation that errs towards scaling up when the objective is missed.
    """

    name: str
    kind: MetricKind
    target: float

    def __post_init__(self) -> None:
        if self.kind not in METRIC_KINDS:
            raise ValueError(f"unknown metric kind {self.kind!r}; expected one of {', '.join(METRIC_KINDS)}")
        if not math.isfinite(self.target) or self.target <= 0:
            raise ValueError(f"target of {self.name!r} must be a finite number > 0, got {self.target!r}")


@dataclass(frozen=True)
class MetricSample:
    """Observed values of one metric: one value per pod that reported, or a single (already aggregated) value.

    A list is stored as a tuple so that samples stay immutable. Values must be finite and non-negative.
    """

    name: str
    per_pod_values: Sequence[float] | float
    age_seconds: float = 0.0

    def __post_init__(self) -> None:
        values = self.per_pod_values
        if isinstance(values, int | float):
            _finite_non_negative(float(values), f"value of {self.name!r}")
        else:
            values = tuple(float(v) for v in values)
            for value in values:
                _finite_non_negative(value, f"per-pod value of {self.name!r}")
            object.__setattr__(self, "per_pod_values", values)
        _finite_non_negative(self.age_seconds, f"age of {self.name!r}")

    @property
    def is_per_pod(self) -> bool:
        return not isinstance(self.per_pod_values, int | float)


@dataclass(frozen=True)
class Behavior:
    """How fast and how nervously replicas may move.

    - Stabilisation: a scale-down goes no lower than the HIGHEST recommendation inside the last
      `scale_down_stabilization_s`; a scale-up goes no higher than the LOWEST inside `scale_up_stabilization_s`
      (the HPA's rule; a window of 0 uses the current recommendation only).
    - Step limits (per decision): up by at most max(`max_step_up_pods`, `max_step_up_percent` % of current),
      down by at most max(`max_step_down_pods`, `max_step_down_percent` % of current) - the HPA's
      `selectPolicy: Max`. None for both values of a direction means unlimited; 0 pods alone disables the direction.
    - Cooldowns: an action in a direction waits `cooldown_up_s` / `cooldown_down_s` after the most recent action of
      EITHER direction, so a repeat and a reversal both wait.
    - Tolerance: no change while |value / target - 1| <= `tolerance`.
    - Flap guard: a scale-down that would reverse the last action is held when the last `flap_guard_window_s`
      already hold `flap_guard_max_reversals` reversals (None disables the guard). Only scale-downs are held:
      holding a scale-up would trade availability for calm, and holding the down side alone breaks the oscillation.
    - `max_metric_age_s`: samples older than this are ignored (None: no limit).

    The defaults are ICC's default behaviour, tuned on the replay (`apps.scaler.replay`): scale up at once (no up
    stabilisation or cooldown, up to max(4 pods, 100 %) per decision), scale down after 120 s of lower
    recommendations (60 s still reversed about once per 10 minutes under ±20 % noise), by at most half per decision
    and 30 s apart, with at most one reversal per 10 minutes caused by a scale-down.
    """

    scale_up_stabilization_s: float = 0.0
    scale_down_stabilization_s: float = 120.0
    max_step_up_pods: int | None = 4
    max_step_up_percent: float | None = 100.0
    max_step_down_pods: int | None = None
    max_step_down_percent: float | None = 50.0
    cooldown_up_s: float = 0.0
    cooldown_down_s: float = 30.0
    tolerance: float = 0.1
    flap_guard_window_s: float = 600.0
    flap_guard_max_reversals: int | None = 1
    max_metric_age_s: float | None = None

    def __post_init__(self) -> None:
        for name in (
            "scale_up_stabilization_s",
            "scale_down_stabilization_s",
            "cooldown_up_s",
            "cooldown_down_s",
            "flap_guard_window_s",
            "tolerance",
        ):
            _finite_non_negative(getattr(self, name), name)
        if self.tolerance >= 1:
            raise ValueError(f"tolerance must be < 1, got {self.tolerance!r}")
        for name in ("max_step_up_pods", "max_step_down_pods", "flap_guard_max_reversals"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        for name in ("max_step_up_percent", "max_step_down_percent", "max_metric_age_s"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class Limits:
    """Inclusive bounds on the replica count."""

    min: int
    max: int

    def __post_init__(self) -> None:
        if self.min < 0:
            raise ValueError(f"min replicas must be >= 0, got {self.min}")
        if self.max < self.min:
            raise ValueError(f"max replicas ({self.max}) must be >= min replicas ({self.min})")

    def clamp(self, replicas: int) -> int:
        return min(max(replicas, self.min), self.max)


def intersect(hard: Limits, schedule: Limits | None) -> Limits:
    """Hard limits narrowed by a schedule window: floors only rise, ceilings only fall, never outside the hard bounds.

    A schedule floor above the hard maximum becomes the hard maximum; a schedule ceiling below the hard minimum
    becomes the hard minimum.
    """
    if schedule is None:
        return hard
    return Limits(min=hard.clamp(max(hard.min, schedule.min)), max=hard.clamp(min(hard.max, schedule.max)))


@dataclass(frozen=True)
class History:
    """Recent recommendations `(t, replicas)` (earlier decisions' `proposed`) and actions `(t, from, to)`."""

    recommendations: Sequence[tuple[float, int]] = ()
    actions: Sequence[tuple[float, int, int]] = ()


@dataclass(frozen=True)
class MetricProposal:
    """What one metric asks for (None: it could not say), with the reason."""

    name: str
    replicas: int | None
    reason: str


@dataclass(frozen=True)
class Recommendation:
    """The maximum over the metrics' proposals (None when no metric could propose)."""

    replicas: int | None
    proposals: tuple[MetricProposal, ...]

    @property
    def reasons(self) -> list[str]:
        return [proposal.reason for proposal in self.proposals]


@dataclass(frozen=True)
class Decision:
    """The outcome of one evaluation.

    `raw` is the proposal from current metrics; `proposed` adds the forecast (store it in
    `History.recommendations` for later stabilisation); `desired` is what to apply.
    """

    desired: int
    raw: int
    proposed: int
    reasons: list[str] = field(default_factory=list)
    limited_by: list[str] = field(default_factory=list)
    stabilized: bool = False
    cooldown_active: bool = False
    flap_guarded: bool = False


def hpa_replicas(current: int, value: float, target: float, tolerance: float) -> int:
    """The HPA's base rule: ceil(current x value / target), or `current` while |value / target - 1| <= tolerance.

    With zero current replicas the ratio says nothing, so any positive value asks for one replica.
    """
    if target <= 0:
        raise ValueError(f"target must be > 0, got {target!r}")
    ratio = value / target
    if abs(ratio - 1.0) <= tolerance + _EPSILON:
        return current
    if current <= 0:
        return 1 if value > 0 else 0
    return max(0, math.ceil(current * ratio - _EPSILON))


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def metric_proposal(current: int, sample: MetricSample, target: MetricTarget, tolerance: float) -> MetricProposal:
    """One metric's proposal with the HPA's handling of pods that did not report.

    For `utilization` and `per_pod`, when fewer pods reported than `current`, the missing ones count as 0 on a
    scale-up and as exactly on target on a scale-down (so a pod that is starting or silent never causes a scale-up,
    nor makes a scale-down deeper); if that flips the direction or lands inside the tolerance, the metric holds.
    """
    name = target.name
    values = sample.per_pod_values
    if isinstance(values, int | float):
        value = float(values)
        detail = f"{_fmt(value)}"
    elif not values:
        return MetricProposal(name, None, f"{name}: no pod reported a value")
    elif target.kind == "value":
        value = sum(values)
        detail = f"{_fmt(value)} summed over {len(values)} pods"
    else:
        value = sum(values) / len(values)
        detail = f"mean {_fmt(value)} over {len(values)} pods"
        missing = current - len(values)
        ratio = value / target.target
        if target.kind != "latency" and missing > 0 and abs(ratio - 1.0) > tolerance + _EPSILON:
            fill = 0.0 if ratio > 1.0 else target.target
            adjusted = (sum(values) + fill * missing) / (len(values) + missing)
            adjusted_ratio = adjusted / target.target
            detail += f", {missing} missing pods counted as {_fmt(fill)} -> mean {_fmt(adjusted)}"
            if (ratio > 1.0) != (adjusted_ratio > 1.0) or abs(adjusted_ratio - 1.0) <= tolerance + _EPSILON:
                return MetricProposal(
                    name, current, f"{name}: {detail} vs target {_fmt(target.target)}: holding {current}"
                )
            value = adjusted
    replicas = hpa_replicas(current, value, target.target, tolerance)
    if replicas == current:
        verdict = f"within tolerance {_fmt(tolerance)}, holding {current}"
    else:
        verdict = f"ceil({current} x {_fmt(value)} / {_fmt(target.target)}) = {replicas}"
    return MetricProposal(name, replicas, f"{name}: {detail} vs target {_fmt(target.target)}: {verdict}")


def recommend(
    current: int,
    metrics: Sequence[MetricSample],
    targets: Sequence[MetricTarget],
    tolerance: float,
    max_age_s: float | None = None,
) -> Recommendation:
    """The maximum over the targets of each metric's proposal (the HPA's rule for several metrics).

    Each target uses the freshest sample with its name; a target without a usable sample (missing, older than
    `max_age_s`, no pod reported) proposes nothing, and if no target proposes, `replicas` is None.
    """
    freshest: dict[str, MetricSample] = {}
    for sample in metrics:
        known = freshest.get(sample.name)
        if known is None or sample.age_seconds < known.age_seconds:
            freshest[sample.name] = sample
    proposals: list[MetricProposal] = []
    for target in targets:
        found = freshest.get(target.name)
        if found is None:
            proposals.append(MetricProposal(target.name, None, f"{target.name}: no sample"))
        elif max_age_s is not None and found.age_seconds > max_age_s:
            proposals.append(
                MetricProposal(
                    target.name,
                    None,
                    f"{target.name}: sample is {_fmt(found.age_seconds)} s old (limit {_fmt(max_age_s)} s), ignored",
                )
            )
        else:
            proposals.append(metric_proposal(current, found, target, tolerance))
    usable = [p.replicas for p in proposals if p.replicas is not None]
    return Recommendation(max(usable) if usable else None, tuple(proposals))


def forecast_replicas(
    current: int, forecast: Mapping[str, float], targets: Sequence[MetricTarget], tolerance: float
) -> MetricProposal | None:
    """The highest proposal over the forecast values (same units as the samples, spread over `current` replicas)."""
    best: MetricProposal | None = None
    for target in targets:
        if target.name not in forecast:
            continue
        value = max(0.0, float(forecast[target.name]))
        if not math.isfinite(value):
            continue
        replicas = hpa_replicas(current, value, target.target, tolerance)
        if best is None or best.replicas is None or replicas > best.replicas:
            best = MetricProposal(
                target.name,
                replicas,
                f"predictive: {target.name} forecast {_fmt(value)} vs target {_fmt(target.target)} asks for {replicas}",
            )
    return best


def _window(items: Sequence[tuple[float, int]], now: float, window_s: float) -> list[int]:
    """Values recorded inside (now - window_s, now]."""
    return [replicas for t, replicas in items if now - window_s < t <= now]


def stabilize(
    now: float, current: int, proposed: int, recommendations: Sequence[tuple[float, int]], behavior: Behavior
) -> tuple[int, str | None, str | None]:
    """The HPA's stabilisation: never below the highest recommendation in the down window, nor above the lowest
    in the up window (both windows include `proposed`). Returns (value, limited_by tag, reason)."""
    up_window = [*_window(recommendations, now, behavior.scale_up_stabilization_s), proposed]
    down_window = [*_window(recommendations, now, behavior.scale_down_stabilization_s), proposed]
    lowest, highest = min(up_window), max(down_window)
    result = current
    result = max(result, lowest)
    result = min(result, highest)
    if proposed > current and result < proposed:
        return (
            result,
            "scale-up-stabilization",
            f"scale-up stabilised: lowest recommendation in the last {_fmt(behavior.scale_up_stabilization_s)} s "
            f"is {lowest}",
        )
    if proposed < current and result > proposed:
        return (
            result,
            "scale-down-stabilization",
            f"scale-down stabilised: highest recommendation in the last {_fmt(behavior.scale_down_stabilization_s)} s "
            f"is {highest}",
        )
    return result, None, None


def step_limit_up(current: int, behavior: Behavior) -> int | None:
    """Pods one decision may add: max of the pod and percent policies (None: unlimited)."""
    options: list[int] = []
    if behavior.max_step_up_pods is not None:
        options.append(behavior.max_step_up_pods)
    if behavior.max_step_up_percent is not None:
        options.append(math.ceil(current * (1 + behavior.max_step_up_percent / 100) - _EPSILON) - current)
    return max(options) if options else None


def step_limit_down(current: int, behavior: Behavior) -> int | None:
    """Pods one decision may remove: max of the pod and percent policies (None: unlimited)."""
    options: list[int] = []
    if behavior.max_step_down_pods is not None:
        options.append(behavior.max_step_down_pods)
    if behavior.max_step_down_percent is not None:
        keep = max(0, math.ceil(current * (1 - behavior.max_step_down_percent / 100) - _EPSILON))
        options.append(current - keep)
    return max(options) if options else None


def count_reversals(actions: Sequence[tuple[float, int, int]], now: float, window_s: float) -> int:
    """Direction changes between consecutive actions inside (now - window_s, now]."""
    directions = [1 if to > frm else -1 for t, frm, to in sorted(actions) if now - window_s < t <= now and to != frm]
    return sum(1 for a, b in itertools.pairwise(directions) if a != b)


def _last_action(actions: Sequence[tuple[float, int, int]], now: float) -> tuple[float, int, int] | None:
    past = [action for action in actions if action[0] <= now and action[1] != action[2]]
    return max(past) if past else None


@dataclass
class _Trail:
    """Reasons and limiting steps collected along the pipeline."""

    reasons: list[str] = field(default_factory=list)
    limited_by: list[str] = field(default_factory=list)

    def note(self, tag: str, reason: str) -> None:
        self.limited_by.append(tag)
        self.reasons.append(reason)


def _step_limited(current: int, candidate: int, behavior: Behavior, trail: _Trail) -> int:
    if candidate > current:
        up = step_limit_up(current, behavior)
        if up is not None and candidate - current > up:
            trail.note("step-up", f"scale-up limited to {up} pods per step: {current + up}")
            return current + up
    elif candidate < current:
        down = step_limit_down(current, behavior)
        if down is not None and current - candidate > down:
            trail.note("step-down", f"scale-down limited to {down} pods per step: {current - down}")
            return current - down
    return candidate


def _cooldown_holds(
    now: float, current: int, candidate: int, *, behavior: Behavior, last: tuple[float, int, int] | None, trail: _Trail
) -> bool:
    if candidate == current or last is None:
        return False
    going_up = candidate > current
    cooldown = behavior.cooldown_up_s if going_up else behavior.cooldown_down_s
    elapsed = now - last[0]
    if elapsed >= cooldown:
        return False
    trail.note(
        "cooldown-up" if going_up else "cooldown-down",
        f"{'scale-up' if going_up else 'scale-down'} to {candidate} held: last action {_fmt(elapsed)} s ago, "
        f"cooldown {_fmt(cooldown)} s",
    )
    return True


def _flap_guard_holds(
    now: float,
    current: int,
    candidate: int,
    *,
    behavior: Behavior,
    actions: Sequence[tuple[float, int, int]],
    last: tuple[float, int, int] | None,
    trail: _Trail,
) -> bool:
    guard = behavior.flap_guard_max_reversals
    if guard is None or candidate >= current or last is None or last[2] <= last[1]:
        return False  # only a scale-down that reverses a scale-up is ever held
    reversals = count_reversals(actions, now, behavior.flap_guard_window_s)
    if reversals < guard:
        return False
    trail.note(
        "flap-guard",
        f"scale-down to {candidate} held by the flap guard: {reversals} reversals in the last "
        f"{_fmt(behavior.flap_guard_window_s)} s (at most {guard})",
    )
    return True


def _clamped(candidate: int, limits: Limits, trail: _Trail) -> int:
    result = limits.clamp(candidate)
    if result > candidate:
        trail.note("min", f"raised to the minimum of {limits.min}")
    elif result < candidate:
        trail.note("max", f"lowered to the maximum of {limits.max}")
    return result


def decide(  # noqa: PLR0917 - the engine's documented call, (now, current, inputs..., forecast), used positionally
    now: float,
    current: int,
    metrics: Sequence[MetricSample],
    targets: Sequence[MetricTarget],
    behavior: Behavior,
    limits: Limits,
    history: History,
    forecast: Mapping[str, float] | None = None,
) -> Decision:
    """Desired replicas for one evaluation, with a reason for every step that changed the number.

    Rules, in order:
    1. raw: the maximum over metrics of `metric_proposal`; no usable metric -> hold `current` (clamped) and stop.
    2. predictive: with forecast values, the larger of the raw and the forecast proposals (a forecast never lowers).
    3. stabilisation: see `stabilize`.
    4. step limits: see `Behavior`; |desired - current| never exceeds them, except that limits win (step 7).
    5. cooldowns: an action in a direction waits its cooldown after the last action of either direction.
    6. flap guard: see `Behavior`.
    7. clamp to `limits`, always last: the result is never outside them, even if that takes a bigger step.
    """
    recommendation = recommend(current, metrics, targets, behavior.tolerance, behavior.max_metric_age_s)
    trail = _Trail(reasons=recommendation.reasons)
    if recommendation.replicas is None:
        trail.reasons.append(f"no usable metric: holding {current}")
        return Decision(_clamped(current, limits, trail), current, current, trail.reasons, trail.limited_by)

    raw = proposed = recommendation.replicas
    if forecast:
        predicted = forecast_replicas(current, forecast, targets, behavior.tolerance)
        if predicted is not None and predicted.replicas is not None and predicted.replicas > raw:
            proposed = predicted.replicas
            trail.reasons.append(f"{predicted.reason} (current metrics ask for {raw})")

    candidate, tag, reason = stabilize(now, current, proposed, history.recommendations, behavior)
    if tag is not None and reason is not None:
        trail.note(tag, reason)
    candidate = _step_limited(current, candidate, behavior, trail)
    last = _last_action(history.actions, now)
    cooldown_active = _cooldown_holds(now, current, candidate, behavior=behavior, last=last, trail=trail)
    if cooldown_active:
        candidate = current
    flap_guarded = _flap_guard_holds(
        now, current, candidate, behavior=behavior, actions=history.actions, last=last, trail=trail
    )
    if flap_guarded:
        candidate = current

    desired = _clamped(candidate, limits, trail)
    if desired != current:
        trail.reasons.append(f"desired {desired} (from {current})")
    elif not trail.limited_by:
        trail.reasons.append(f"holding {current}")
    return Decision(
        desired, raw, proposed, trail.reasons, trail.limited_by, tag is not None, cooldown_active, flap_guarded
    )


DEFAULT_BEHAVIOR = Behavior()
"""ICC's default behaviour (the field defaults), tuned against the replay in `apps.scaler.replay`."""
