"""The engine's inputs (targets, samples, behaviour, limits, history) and outputs (proposals, decisions): frozen,
validated dataclasses."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

MetricKind = Literal["utilization", "value", "per_pod", "latency"]
METRIC_KINDS: tuple[MetricKind, ...] = ("utilization", "value", "per_pod", "latency")


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
