"""The engine's rules: each metric's proposal, the forecast, stabilisation, step limits, cooldowns, the flap guard
and the clamp, chained by :func:`decide`."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from apps.scaler.engine.data import (
    Behavior,
    Decision,
    History,
    Limits,
    MetricProposal,
    MetricSample,
    MetricTarget,
    Recommendation,
)

# Guards ceil() and the tolerance against float noise: 3 x 0.7 / 0.7 is 3, and 0.77 / 0.7 is inside a 0.1 tolerance.
_EPSILON = 1e-9


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


def decide(
    now: float,
    current: int,
    metrics: Sequence[MetricSample],
    targets: Sequence[MetricTarget],
    behavior: Behavior,
    *,
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
