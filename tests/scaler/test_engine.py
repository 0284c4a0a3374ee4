"""The scaler's decision engine and forecast: pure functions, no database."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.scaler.engine import (
    DEFAULT_BEHAVIOR,
    Behavior,
    History,
    Limits,
    MetricSample,
    MetricTarget,
    count_reversals,
    decide,
    hpa_replicas,
    intersect,
    metric_proposal,
    recommend,
    step_limit_down,
    step_limit_up,
)
from apps.scaler.forecast import HoltState, holt, learn_startup_seconds

CPU = MetricTarget("cpu", "utilization", 0.7)
PLAIN = Behavior(
    scale_down_stabilization_s=0,
    max_step_up_pods=None,
    max_step_up_percent=None,
    max_step_down_pods=None,
    max_step_down_percent=None,
    cooldown_down_s=0,
    flap_guard_max_reversals=None,
)
WIDE = Limits(0, 1000)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def cpu(*values: float) -> list[MetricSample]:
    return [MetricSample("cpu", list(values))]


# ---------------------------------------------------------------- the HPA base rule


def test_hpa_replicas_is_the_ceiling_of_the_ratio():
    assert hpa_replicas(4, 1.4, 0.7, 0.1) == 8
    assert hpa_replicas(10, 0.35, 0.7, 0.1) == 5
    assert hpa_replicas(3, 0.8, 0.7, 0.1) == 4  # 3.43 -> 4


def test_hpa_replicas_holds_inside_the_tolerance():
    assert hpa_replicas(10, 0.77, 0.7, 0.1) == 10
    assert hpa_replicas(10, 0.63, 0.7, 0.1) == 10
    assert hpa_replicas(10, 0.78, 0.7, 0.1) == 12


def test_hpa_replicas_is_not_fooled_by_float_noise():
    assert hpa_replicas(3, 0.7 * 1.5, 0.7, 0.0) == 5  # 4.5 -> 5, and 3 x 0.7 / 0.7 stays 3 below
    assert hpa_replicas(3, 0.7, 0.7, 0.0) == 3


def test_hpa_replicas_from_zero_asks_for_one_pod():
    assert hpa_replicas(0, 5.0, 0.7, 0.1) == 1
    assert hpa_replicas(0, 0.0, 0.7, 0.1) == 0


def test_missing_pods_count_as_zero_on_a_scale_up():
    # 2 of 4 pods report 1.4 (twice the target); the 2 silent ones count as 0: mean 0.7 -> hold.
    proposal = metric_proposal(4, MetricSample("cpu", [1.4, 1.4]), CPU, 0.1)
    assert proposal.replicas == 4
    assert "2 missing pods counted as 0" in proposal.reason
    # 3 of 4 report 2.1: (6.3 + 0) / 4 = 1.575 -> ceil(4 x 2.25) = 9
    assert metric_proposal(4, MetricSample("cpu", [2.1, 2.1, 2.1]), CPU, 0.1).replicas == 9


def test_missing_pods_count_as_on_target_on_a_scale_down():
    # 2 of 4 report 0.1; the silent ones count as 0.7: mean 0.4 -> ceil(4 x 0.571) = 3, not ceil(4 x 0.143) = 1.
    assert metric_proposal(4, MetricSample("cpu", [0.1, 0.1]), CPU, 0.1).replicas == 3


def test_value_metrics_sum_pods_and_latency_ignores_missing_pods():
    queue = MetricTarget("queue", "value", 100)
    assert metric_proposal(2, MetricSample("queue", [150, 150]), queue, 0.1).replicas == 6
    p95 = MetricTarget("p95", "latency", 0.2)
    assert metric_proposal(4, MetricSample("p95", [0.4]), p95, 0.1).replicas == 8
    assert metric_proposal(4, MetricSample("p95", 0.4), p95, 0.1).replicas == 8


def test_recommend_takes_the_maximum_over_metrics_with_reasons():
    rps = MetricTarget("rps", "per_pod", 50)
    result = recommend(4, [*cpu(0.35, 0.35, 0.35, 0.35), MetricSample("rps", [100, 100, 100, 100])], [CPU, rps], 0.1)
    assert result.replicas == 8
    assert [p.replicas for p in result.proposals] == [2, 8]
    assert any(reason.startswith("rps: mean 100") for reason in result.reasons)


def test_recommend_ignores_stale_and_missing_samples():
    stale = MetricSample("cpu", [2.0], age_seconds=90)
    result = recommend(1, [stale], [CPU, MetricTarget("rps", "per_pod", 5)], 0.1, max_age_s=60)
    assert result.replicas is None
    assert "90 s old" in result.reasons[0]
    assert result.reasons[1] == "rps: no sample"


def test_recommend_uses_the_freshest_sample_of_a_name():
    samples = [MetricSample("cpu", [2.8], age_seconds=30), MetricSample("cpu", [1.4], age_seconds=1)]
    assert recommend(1, samples, [CPU], 0.1).replicas == 2


def test_bad_inputs_are_rejected_with_the_field_named():
    with pytest.raises(ValueError, match="unknown metric kind"):
        MetricTarget("cpu", "bogus", 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="target of 'cpu'"):
        MetricTarget("cpu", "utilization", 0)
    with pytest.raises(ValueError, match="per-pod value of 'cpu'"):
        MetricSample("cpu", [0.5, -1])
    with pytest.raises(ValueError, match="value of 'cpu'"):
        MetricSample("cpu", math.nan)
    with pytest.raises(ValueError, match="max replicas"):
        Limits(5, 2)
    with pytest.raises(ValueError, match="tolerance"):
        Behavior(tolerance=1.5)
    with pytest.raises(ValueError, match="max_step_up_pods"):
        Behavior(max_step_up_pods=-1)


# ---------------------------------------------------------------- limits


def test_schedule_limits_raise_floors_and_lower_ceilings_within_hard_bounds():
    hard = Limits(2, 20)
    assert intersect(hard, None) == hard
    assert intersect(hard, Limits(5, 50)) == Limits(5, 20)
    assert intersect(hard, Limits(0, 10)) == Limits(2, 10)
    assert intersect(hard, Limits(30, 40)) == Limits(20, 20)  # a floor above the hard max becomes the hard max
    assert intersect(hard, Limits(0, 1)) == Limits(2, 2)


@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50), st.integers(0, 50))
@PROPERTY
def test_intersection_never_leaves_the_hard_bounds(a, b, c, d):
    hard = Limits(min(a, b), max(a, b))
    schedule = Limits(min(c, d), max(c, d))
    result = intersect(hard, schedule)
    assert hard.min <= result.min <= result.max <= hard.max
    assert result.min >= min(schedule.min, hard.max)
    assert result.max <= max(schedule.max, hard.min)


# ---------------------------------------------------------------- the pipeline


def test_no_metrics_holds_the_current_count_clamped():
    decision = decide(100, 7, [], [CPU], DEFAULT_BEHAVIOR, limits=Limits(1, 10), history=History())
    assert (decision.desired, decision.raw) == (7, 7)
    assert "no usable metric: holding 7" in decision.reasons
    assert decide(100, 12, [], [CPU], DEFAULT_BEHAVIOR, limits=Limits(1, 10), history=History()).desired == 10


def test_scale_down_stabilisation_keeps_the_highest_recent_recommendation():
    behavior = Behavior(scale_down_stabilization_s=300)
    history = History(recommendations=[(0, 9), (50, 7), (200, 6)])
    decision = decide(260, 10, cpu(*[0.35] * 10), [CPU], behavior, limits=WIDE, history=history)
    assert decision.raw == 5
    assert decision.desired == 9
    assert decision.stabilized
    assert "scale-down stabilised: highest recommendation in the last 300 s is 9" in decision.reasons
    # 330 s later the 9 and the 7 have left the window
    assert decide(330, 10, cpu(*[0.35] * 10), [CPU], behavior, limits=WIDE, history=history).desired == 7


def test_scale_up_stabilisation_keeps_the_lowest_recent_recommendation():
    behavior = Behavior(scale_up_stabilization_s=60, max_step_up_pods=None, max_step_up_percent=None)
    history = History(recommendations=[(30, 6), (50, 12)])
    decision = decide(60, 4, cpu(1.4, 1.4, 1.4, 1.4), [CPU], behavior, limits=WIDE, history=history)
    assert (decision.raw, decision.desired) == (8, 6)
    assert "scale-up stabilised: lowest recommendation in the last 60 s is 6" in decision.reasons


def test_step_limits_take_the_larger_of_pods_and_percent():
    behavior = Behavior(max_step_up_pods=4, max_step_up_percent=100)
    assert step_limit_up(2, behavior) == 4
    assert step_limit_up(10, behavior) == 10
    assert step_limit_down(10, Behavior(max_step_down_pods=1, max_step_down_percent=50)) == 5
    assert step_limit_down(3, Behavior(max_step_down_pods=None, max_step_down_percent=10)) == 0
    assert step_limit_up(10, Behavior(max_step_up_pods=None, max_step_up_percent=None)) is None
    decision = decide(0, 10, cpu(*[7.0] * 10), [CPU], behavior, limits=WIDE, history=History())
    assert (decision.raw, decision.desired) == (100, 20)
    assert "step-up" in decision.limited_by
    assert "scale-up limited to 10 pods per step: 20" in decision.reasons


def test_a_scale_down_waits_for_its_cooldown_after_any_action():
    behavior = Behavior(scale_down_stabilization_s=0, cooldown_down_s=30, max_step_down_percent=None)
    history = History(actions=[(100, 4, 8)])
    held = decide(120, 8, cpu(*[0.35] * 8), [CPU], behavior, limits=WIDE, history=history)
    assert held.desired == 8
    assert held.cooldown_active
    assert "scale-down to 4 held: last action 20 s ago, cooldown 30 s" in held.reasons
    assert decide(130, 8, cpu(*[0.35] * 8), [CPU], behavior, limits=WIDE, history=history).desired == 4


def test_a_scale_up_waits_only_for_its_own_cooldown():
    history = History(actions=[(100, 8, 4)])
    assert decide(101, 4, cpu(*[1.4] * 4), [CPU], Behavior(cooldown_up_s=0), limits=WIDE, history=history).desired == 8
    held = decide(101, 4, cpu(*[1.4] * 4), [CPU], Behavior(cooldown_up_s=10), limits=WIDE, history=history)
    assert held.desired == 4
    assert "cooldown-up" in held.limited_by


def test_the_flap_guard_holds_a_reversing_scale_down_but_never_a_scale_up():
    behavior = replace(PLAIN, flap_guard_max_reversals=1, flap_guard_window_s=600)
    # up, down, up: two reversals in the window; a scale-down now would be a third
    history = History(actions=[(100, 4, 8), (200, 8, 4), (300, 4, 8)])
    assert count_reversals(history.actions, 400, 600) == 2
    held = decide(400, 8, cpu(*[0.35] * 8), [CPU], behavior, limits=WIDE, history=history)
    assert held.desired == 8
    assert held.flap_guarded
    assert any(r.startswith("scale-down to 4 held by the flap guard: 2 reversals") for r in held.reasons)
    # once the reversals have left the window, the scale-down goes through
    assert decide(1000, 8, cpu(*[0.35] * 8), [CPU], behavior, limits=WIDE, history=history).desired == 4
    # a scale-up is never held by the guard
    down_history = History(actions=[(100, 8, 4), (200, 4, 8), (300, 8, 4)])
    assert decide(400, 4, cpu(*[1.4] * 4), [CPU], behavior, limits=WIDE, history=down_history).desired == 8


def test_limits_win_over_step_limits_and_holds():
    behavior = Behavior(max_step_up_pods=1, max_step_up_percent=None)
    decision = decide(0, 1, cpu(0.7), [CPU], behavior, limits=Limits(5, 10), history=History())
    assert decision.desired == 5
    assert decision.limited_by == ["min"]
    assert "raised to the minimum of 5" in decision.reasons
    too_many = decide(0, 30, cpu(*[0.7] * 30), [CPU], behavior, limits=Limits(5, 10), history=History())
    assert too_many.desired == 10


def test_a_forecast_raises_the_proposal_but_never_lowers_it():
    up = decide(0, 4, cpu(0.7, 0.7, 0.7, 0.7), [CPU], PLAIN, limits=WIDE, history=History(), forecast={"cpu": 1.4})
    assert (up.raw, up.proposed, up.desired) == (4, 8, 8)
    assert any(r.startswith("predictive: cpu forecast 1.4") for r in up.reasons)
    down = decide(0, 4, cpu(1.4, 1.4, 1.4, 1.4), [CPU], PLAIN, limits=WIDE, history=History(), forecast={"cpu": 0.1})
    assert (down.proposed, down.desired) == (8, 8)


def test_every_change_is_explained():
    decision = decide(0, 4, cpu(1.4, 1.4, 1.4, 1.4), [CPU], PLAIN, limits=WIDE, history=History())
    assert decision.reasons == [
        "cpu: mean 1.4 over 4 pods vs target 0.7: ceil(4 x 1.4 / 0.7) = 8",
        "desired 8 (from 4)",
    ]


# ---------------------------------------------------------------- invariants (hypothesis)

behaviors = st.builds(
    Behavior,
    scale_up_stabilization_s=st.sampled_from([0.0, 15.0, 60.0]),
    scale_down_stabilization_s=st.sampled_from([0.0, 60.0, 120.0, 300.0]),
    max_step_up_pods=st.none() | st.integers(0, 10),
    max_step_up_percent=st.none() | st.floats(1, 300),
    max_step_down_pods=st.none() | st.integers(0, 10),
    max_step_down_percent=st.none() | st.floats(1, 100),
    cooldown_up_s=st.sampled_from([0.0, 5.0, 30.0]),
    cooldown_down_s=st.sampled_from([0.0, 30.0, 120.0]),
    tolerance=st.sampled_from([0.0, 0.1, 0.25]),
    flap_guard_window_s=st.sampled_from([60.0, 600.0]),
    flap_guard_max_reversals=st.none() | st.integers(0, 3),
)
NOW = 1000.0


@st.composite
def scenarios(draw):
    """Mostly a count inside the limits, per-pod values around the target and history around the count, so that
    stabilisation, steps, cooldowns and the flap guard all come into play; sometimes a count outside the limits."""
    low = draw(st.integers(0, 10))
    limits = Limits(low, draw(st.integers(low, low + 60)))
    inside = draw(st.integers(0, 9)) > 0
    current = draw(st.integers(limits.min, limits.max) if inside else st.integers(0, 80))
    target = MetricTarget("cpu", "utilization", draw(st.floats(0.1, 1.0)))
    reported = draw(st.integers(max(0, current - 3), current + 2))
    base = draw(st.floats(0, 2.5))
    jitter = draw(st.lists(st.floats(0.8, 1.2), min_size=reported, max_size=reported))
    metrics = [MetricSample("cpu", [base * j * target.target for j in jitter])] if draw(st.integers(0, 9)) else []
    near = st.integers(max(0, current - 10), current + 10)
    below = st.integers(max(0, current - 10), current + 2)
    recommendations = draw(st.lists(st.tuples(st.floats(NOW - 400, NOW), below), max_size=8))
    actions = draw(st.lists(st.tuples(st.floats(NOW - 300, NOW), near, near), max_size=6))
    forecast = draw(st.none() | st.fixed_dictionaries({"cpu": st.floats(0, 3 * target.target)}))
    return {
        "now": NOW,
        "current": current,
        "metrics": metrics,
        "targets": [target],
        "behavior": draw(behaviors),
        "limits": limits,
        "history": History(recommendations, actions),
        "forecast": forecast,
    }


@given(scenarios())
@PROPERTY
def test_the_result_is_never_outside_the_limits(s):
    decision = decide(**s)
    assert s["limits"].min <= decision.desired <= s["limits"].max


@given(scenarios())
@PROPERTY
def test_a_step_is_never_larger_than_the_step_limit_unless_the_limits_demand_it(s):
    decision = decide(**s)
    current, limits, behavior = s["current"], s["limits"], s["behavior"]
    if not limits.min <= current <= limits.max:
        # limits win: the count is brought inside them, whatever the step
        assert decision.desired == limits.clamp(current) or limits.min <= decision.desired <= limits.max
        return
    if decision.desired > current:
        up = step_limit_up(current, behavior)
        assert up is None or decision.desired - current <= up
    if decision.desired < current:
        down = step_limit_down(current, behavior)
        assert down is None or current - decision.desired <= down


@given(scenarios())
@PROPERTY
def test_never_a_scale_down_below_a_recommendation_inside_the_down_window(s):
    decision = decide(**s)
    current, limits = s["current"], s["limits"]
    if decision.desired < current and current <= limits.max:
        window = s["behavior"].scale_down_stabilization_s
        inside = [r for t, r in s["history"].recommendations if NOW - window < t <= NOW]
        assert all(r <= decision.desired for r in inside)
        assert decision.proposed <= decision.desired


@given(scenarios())
@PROPERTY
def test_decisions_are_idempotent(s):
    assert decide(**s) == decide(**s)


@given(scenarios())
@PROPERTY
def test_without_metrics_the_count_holds_clamped(s):
    decision = decide(**{**s, "metrics": []})
    assert decision.desired == s["limits"].clamp(s["current"])


@given(scenarios())
@PROPERTY
def test_no_action_inside_a_cooldown_unless_the_limits_demand_it(s):
    decision = decide(**s)
    current, limits, behavior = s["current"], s["limits"], s["behavior"]
    past = [a for a in s["history"].actions if a[0] <= NOW and a[1] != a[2]]
    if not past or not limits.min <= current <= limits.max:
        return
    elapsed = NOW - max(past)[0]
    if decision.desired > current:
        assert elapsed >= behavior.cooldown_up_s
    if decision.desired < current:
        assert elapsed >= behavior.cooldown_down_s


@given(
    st.lists(st.floats(NOW - 900, NOW - 1), min_size=1, max_size=7, unique=True),
    st.integers(0, 3),
    st.sampled_from([120.0, 600.0]),
)
@PROPERTY
def test_the_flap_guard_holds_exactly_the_scale_downs_that_would_reverse_too_often(times, guard, window):
    # alternating actions between 10 and 20 pods, the last one a scale-up to 20
    ordered = sorted(times)
    actions = [(t, 10, 20) if (len(ordered) - i) % 2 else (t, 20, 10) for i, t in enumerate(ordered)]
    behavior = replace(PLAIN, flap_guard_max_reversals=guard, flap_guard_window_s=window)
    decision = decide(NOW, 20, cpu(*[0.35] * 20), [CPU], behavior, limits=WIDE, history=History(actions=actions))
    reversals = count_reversals(actions, NOW, window)
    assert decision.flap_guarded == (reversals >= guard)
    assert decision.desired == (20 if reversals >= guard else 10)
    # the guard never holds a scale-up
    rising = [(t, b, a) for t, a, b in actions]
    assert (
        decide(NOW, 10, cpu(*[1.4] * 10), [CPU], behavior, limits=WIDE, history=History(actions=rising)).desired == 20
    )


# ---------------------------------------------------------------- forecast


def test_a_constant_series_forecasts_the_constant():
    series = [(t, 42.0) for t in range(0, 120, 5)]
    forecast = holt(series, alpha=0.3, beta=0.1, horizon_s=30)
    assert forecast.value_at_horizon == pytest.approx(42.0)
    assert forecast.trend == pytest.approx(0.0, abs=1e-12)


@given(
    st.floats(-1000, 1000),
    st.lists(st.floats(0.1, 60), min_size=1, max_size=40),
    st.floats(0.05, 1),
    st.floats(0.05, 1),
)
@PROPERTY
def test_a_constant_series_forecasts_the_constant_at_any_spacing(value, gaps, alpha, beta):
    times = [sum(gaps[:i]) for i in range(len(gaps) + 1)]
    forecast = holt([(t, value) for t in times], alpha, beta, horizon_s=60)
    assert forecast.value_at_horizon == pytest.approx(value, abs=1e-6)


def test_a_linear_ramp_is_extrapolated_within_five_percent():
    rng = random.Random(1)
    times = sorted(rng.uniform(0, 300) for _ in range(80))  # irregular sampling
    forecast = holt([(t, 100 + 3 * t) for t in times], alpha=0.3, beta=0.1, horizon_s=30)
    expected = 100 + 3 * (times[-1] + 30)
    assert forecast.value_at_horizon == pytest.approx(expected, rel=0.05)
    assert forecast.trend == pytest.approx(3.0, rel=0.05)


def test_a_noisy_ramp_has_a_bounded_error():
    rng = random.Random(2)
    series = [(float(t), (100 + 3 * t) * (1 + rng.uniform(-0.1, 0.1))) for t in range(0, 600, 5)]
    forecast = holt(series, alpha=0.3, beta=0.1, horizon_s=30)
    expected = 100 + 3 * (595 + 30)
    assert abs(forecast.value_at_horizon - expected) / expected < 0.15


def test_the_trend_is_trusted_on_a_ramp_and_not_on_noise():
    ramp = HoltState(0.3, 0.05, gamma=0.02)
    for t in range(600):
        ramp.update(t, 100 + 2 * t)
    on_ramp = ramp.forecast(30)
    assert on_ramp.trend_std < 0.1 * on_ramp.trend
    assert on_ramp.lower_bound(2) == pytest.approx(on_ramp.value_at_horizon, rel=0.01)
    # ±20 % noise held for 15 s: the plain forecast extrapolates up to +30 %, the lower bound far less
    noise, rng, value = HoltState(0.3, 0.05, gamma=0.02), random.Random(3), 100.0
    plain = bounded = 0.0
    for t in range(1200):
        if t % 15 == 0:
            value = 100 * (1 + rng.uniform(-0.2, 0.2))
        noise.update(t, value)
        if t > 60:
            forecast = noise.forecast(30)
            plain = max(plain, forecast.value_at_horizon / forecast.level - 1)
            bounded = max(bounded, forecast.lower_bound(2) / forecast.level - 1)
    assert plain > 0.2
    assert bounded < 0.1


def test_holt_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one sample"):
        holt([], 0.3, 0.1, 30)
    with pytest.raises(ValueError, match="alpha"):
        holt([(0, 1)], 0, 0.1, 30)
    single = holt([(5, 7.0)], 0.3, 0.1, 30)
    assert (single.level, single.trend, single.value_at_horizon) == (7.0, 0.0, 7.0)


def test_startup_time_is_the_median_of_observations():
    assert learn_startup_seconds([12, 40, 15]) == 15
    assert learn_startup_seconds([]) == 30.0
    assert learn_startup_seconds([-1, math.nan, 0], default=20) == 20
