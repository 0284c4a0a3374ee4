"""Load traces for the replay: a constant-step series of total load, made up (ramp, spike, daily cycle, noise)
or recorded."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Trace:
    """A load trace: `points` [(t seconds, total load)] sorted by time, nominally `step_s` apart.

    The load at time t is the value of the last point at or before t (held until the next point); the trace lasts
    until one `step_s` after its last point.
    """

    name: str
    step_s: float
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("a trace needs at least one point")
        if not self.step_s > 0:
            raise ValueError(f"step_s must be > 0, got {self.step_s!r}")
        times = [t for t, _ in self.points]
        if times != sorted(times):
            raise ValueError("trace points must be sorted by time")
        if any(not math.isfinite(v) or v < 0 for _, v in self.points):
            raise ValueError("trace loads must be finite and >= 0")

    @property
    def start(self) -> float:
        return self.points[0][0]

    @property
    def end(self) -> float:
        return self.points[-1][0] + self.step_s

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    def load_at(self, t: float) -> float:
        index = bisect.bisect_right(self.points, (t, math.inf)) - 1
        return self.points[max(index, 0)][1]


def _grid(duration_s: float, step_s: float) -> list[float]:
    return [i * step_s for i in range(max(1, round(duration_s / step_s)))]


def ramp(
    *, low: float = 700.0, high: float = 7000.0, ramp_s: float = 300.0, hold_s: float = 300.0, step_s: float = 15.0
) -> Trace:
    """Flat at `low` for `hold_s`, a straight ramp to `high` over `ramp_s`, flat at `high` for `hold_s`."""
    points = []
    for t in _grid(2 * hold_s + ramp_s, step_s):
        fraction = min(max((t - hold_s) / ramp_s, 0.0), 1.0) if ramp_s > 0 else float(t >= hold_s)
        points.append((t, low + (high - low) * fraction))
    return Trace(f"ramp {low:g}->{high:g} in {ramp_s:g}s", step_s, tuple(points))


def spike(
    *,
    base: float = 700.0,
    peak: float = 3500.0,
    at_s: float = 300.0,
    duration_s: float = 300.0,
    total_s: float = 1200.0,
    step_s: float = 15.0,
) -> Trace:
    """`base` load, a jump to `peak` at `at_s` that lasts `duration_s`, then `base` again until `total_s`."""
    points = tuple((t, peak if at_s <= t < at_s + duration_s else base) for t in _grid(total_s, step_s))
    return Trace(f"spike {base:g}->{peak:g} for {duration_s:g}s", step_s, points)


def with_noise(trace: Trace, noise: float = 0.2, seed: int = 0) -> Trace:
    """`trace` with each point multiplied by independent uniform noise in ±`noise` (seeded, so reproducible)."""
    if not 0 <= noise < 1:
        raise ValueError(f"noise must be in [0, 1), got {noise!r}")
    rng = random.Random(seed)  # noqa: S311 - reproducible simulation noise, not a secret
    points = tuple((t, load * (1 + rng.uniform(-noise, noise))) for t, load in trace.points)
    return Trace(f"{trace.name}, ±{noise:.0%} noise", trace.step_s, points)


def daily_cycle(
    *,
    low: float = 700.0,
    high: float = 7000.0,
    period_s: float = 86400.0,
    duration_s: float | None = None,
    noise: float = 0.2,
    seed: int = 0,
    step_s: float = 15.0,
) -> Trace:
    """A sinusoidal day (lowest at t=0, highest at half the period) times independent uniform noise in ±`noise`.

    `period_s` below a day compresses the cycle (steeper slopes than a real day), which keeps simulations short.
    """
    points = []
    for t in _grid(period_s if duration_s is None else duration_s, step_s):
        phase = (1 - math.cos(2 * math.pi * t / period_s)) / 2
        points.append((t, low + (high - low) * phase))
    return with_noise(Trace(f"daily cycle {low:g}-{high:g} over {period_s:g}s", step_s, tuple(points)), noise, seed)


def recorded(name: str, points: Iterable[tuple[float, float]], step_s: float | None = None) -> Trace:
    """A trace from recorded (t, load) points, e.g. from the decision history; `step_s` defaults to the median gap."""
    ordered = tuple(sorted((float(t), float(v)) for t, v in points))
    if step_s is None:
        gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(ordered) if b[0] > a[0])
        step_s = gaps[len(gaps) // 2] if gaps else 1.0
    return Trace(name, step_s, ordered)
