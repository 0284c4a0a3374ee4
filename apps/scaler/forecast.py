"""Holt's linear (level + trend) smoothing on irregularly sampled series, and the learned pod start-up time.

Pure: the scaler forecasts each metric over the pod start-up time, so pods asked for now are ready when the load
arrives. The trend is kept per second, so samples may arrive at any spacing.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_STARTUP_S = 30.0
# Points used to estimate the initial trend: enough to resist one noisy pair, few enough to start quickly.
_INIT_POINTS = 5


@dataclass(frozen=True)
class Forecast:
    """Smoothed level at the last sample time `at`, trend per second, and level + trend x horizon.

    `trend_std` is how far the trend estimate has recently fallen below its own slower average (the root of twice
    an exponentially weighted mean of squared shortfalls - a downside deviation). Noise moves the trend both ways,
    so it shows here; a trend that keeps building (the start of a ramp) stays above its average, so it does not.
    """

    level: float
    trend: float
    value_at_horizon: float
    at: float
    horizon_s: float
    trend_std: float = 0.0

    def lower_bound(self, z: float) -> float:
        """The value at the horizon extrapolating only the trend beyond `z` x `trend_std` (its lower bound).

        A scaler that only uses forecasts to scale up can use this to scale ahead for the rise it is confident
        about, and not for noise.
        """
        return self.level + (self.trend - z * self.trend_std) * self.horizon_s


def _check_factor(name: str, value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")


def _slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope per second (0 when the points span no time)."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread <= 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


class HoltState:
    """Incremental Holt smoothing for irregular sampling.

    `alpha` (level), `beta` (trend) and `gamma` (the trend's downside variability, see `Forecast.trend_std`;
    default `beta`) are smoothing factors for one `step_s`; a gap of dt seconds uses 1 - (1 - factor) ** (dt / step_s),
    so a long gap trusts the new sample more and a burst of close samples does not over-weight itself.
    Initialisation: level = first value, trend = least-squares slope of the first few points (samples are
    buffered until then), and that initial trend counts as entirely uncertain (trend_std = |trend|).
    """

    def __init__(self, alpha: float, beta: float, step_s: float = 1.0, gamma: float | None = None) -> None:
        gamma = beta if gamma is None else gamma
        _check_factor("alpha", alpha)
        _check_factor("beta", beta)
        _check_factor("gamma", gamma)
        if not step_s > 0:
            raise ValueError(f"step_s must be > 0, got {step_s!r}")
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.step_s = step_s
        self.level = 0.0
        self.trend = 0.0
        self._trend_mean = 0.0
        self._trend_var = 0.0
        self.at = -math.inf
        self._pending: list[tuple[float, float]] = []
        self._started = False

    @property
    def ready(self) -> bool:
        return self._started or bool(self._pending)

    def update(self, t: float, value: float) -> None:
        """Add one sample; samples older than the last one are ignored, equal times refresh the level only."""
        if not math.isfinite(value) or not math.isfinite(t):
            return
        if not self._started:
            if self._pending and t < self._pending[-1][0]:
                return
            self._pending.append((t, value))
            if len(self._pending) >= _INIT_POINTS:
                self.initialise()
            return
        dt = t - self.at
        if dt < 0:
            return
        a = 1 - (1 - self.alpha) ** (dt / self.step_s) if dt > 0 else self.alpha
        predicted = self.level + self.trend * dt
        level = a * value + (1 - a) * predicted
        if dt > 0:
            b = 1 - (1 - self.beta) ** (dt / self.step_s)
            self.trend = b * (level - self.level) / dt + (1 - b) * self.trend
            g = 1 - (1 - self.gamma) ** (dt / self.step_s)
            deviation = self.trend - self._trend_mean
            self._trend_mean += g * deviation
            shortfall = min(0.0, deviation)
            self._trend_var = (1 - g) * (self._trend_var + g * 2 * shortfall * shortfall)
        self.level = level
        self.at = t

    def initialise(self) -> None:
        """Start smoothing from the buffered points now (done automatically after a few samples)."""
        if self._started or not self._pending:
            return
        points, self._pending = self._pending, []
        self._started = True
        self.level, self.at = points[0][1], points[0][0]
        self.trend = self._trend_mean = _slope(points)
        self._trend_var = self.trend * self.trend
        for t, value in points[1:]:
            self.update(t, value)

    def forecast(self, horizon_s: float) -> Forecast:
        """The forecast `horizon_s` seconds after the last sample (before initialisation: from the buffered points)."""
        if not self._started:
            if not self._pending:
                raise ValueError("no samples yet")
            last_t, last_v = self._pending[-1]
            trend = _slope(self._pending) if len(self._pending) > 1 else 0.0
            return Forecast(last_v, trend, last_v + trend * horizon_s, last_t, horizon_s, abs(trend))
        return Forecast(
            self.level,
            self.trend,
            self.level + self.trend * horizon_s,
            self.at,
            horizon_s,
            math.sqrt(self._trend_var),
        )


def holt(
    series: Iterable[tuple[float, float]],
    alpha: float,
    beta: float,
    horizon_s: float,
    *,
    step_s: float | None = None,
    gamma: float | None = None,
) -> Forecast:
    """Holt's linear forecast of `series` [(t seconds, value)] `horizon_s` after its last sample.

    `step_s` is the spacing the factors are meant for; by default the median spacing of the series.
    Raises ValueError on an empty series.
    """
    points = sorted((float(t), float(v)) for t, v in series)
    if not points:
        raise ValueError("holt() needs at least one sample")
    if step_s is None:
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(points) if b[0] > a[0]]
        step_s = statistics.median(gaps) if gaps else 1.0
    state = HoltState(alpha, beta, step_s, gamma)
    for t, value in points:
        state.update(t, value)
    state.initialise()
    return state.forecast(horizon_s)


def learn_startup_seconds(samples: Iterable[float], default: float = DEFAULT_STARTUP_S) -> float:
    """The median of observed pod start-up durations (scheduled to Ready), or `default` without usable samples."""
    usable = [float(s) for s in samples if math.isfinite(s) and s > 0]
    return statistics.median(usable) if usable else default
