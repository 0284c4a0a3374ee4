"""The scaler's replay simulator: traces, the simulated workload, and the three policies compared. No database."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from apps.scaler.engine import Limits
from apps.scaler.replay import (
    HpaPolicy,
    IccPolicy,
    Observation,
    ReactivePolicy,
    Simulation,
    compare,
    ratios,
    run_replay,
)
from apps.scaler.replay_traces import Trace, daily_cycle, ramp, recorded, spike, with_noise

SIM = Simulation()  # 100 load units per pod at utilisation 1.0, target 0.7, pods ready 30 s after asked for


class Script:
    """A policy that asks for fixed counts at fixed times and remembers what it saw."""

    name = "script"

    def __init__(self, plan: dict[float, int]) -> None:
        self.plan = plan
        self.seen: dict[float, Observation] = {}

    def step(self, now: float, observation: Observation) -> int:
        self.seen[now] = observation
        return self.plan.get(now, observation.replicas)


class Recording:
    """Wraps a policy and keeps its own answers (before the simulator clamps them)."""

    def __init__(self, policy: IccPolicy) -> None:
        self.policy = policy
        self.name = policy.name
        self.answers: list[int] = []

    def step(self, now: float, observation: Observation) -> int:
        answer = self.policy.step(now, observation)
        self.answers.append(answer)
        return answer


def flat(load: float, duration_s: float) -> Trace:
    return Trace("flat", duration_s, ((0.0, load),))


def changes(result) -> list[tuple[float, int, int]]:
    series = result.series
    return [(b.t, a.replicas, b.replicas) for a, b in itertools.pairwise(series) if a.replicas != b.replicas]


# ---------------------------------------------------------------- traces


def test_ramp_and_spike_have_the_promised_shape():
    trace = ramp(low=100, high=400, ramp_s=300, hold_s=150, step_s=15)
    assert trace.step_s == 15
    assert trace.load_at(0) == trace.load_at(149) == 100
    assert trace.load_at(300) == pytest.approx(250)
    assert trace.load_at(460) == 400
    assert trace.duration_s == 600
    shape = spike(base=100, peak=900, at_s=300, duration_s=60, total_s=600, step_s=1)
    assert [shape.load_at(t) for t in (299, 300, 359, 360)] == [100, 900, 900, 100]


def test_daily_cycle_noise_stays_within_its_band_and_follows_the_seed():
    quiet = daily_cycle(low=100, high=1000, period_s=3600, noise=0.0)
    noisy = daily_cycle(low=100, high=1000, period_s=3600, noise=0.2, seed=5)
    assert quiet.load_at(0) == 100
    assert quiet.load_at(1800) == pytest.approx(1000)
    for (t, clean), (_, value) in zip(quiet.points, noisy.points, strict=True):
        assert clean * 0.8 <= value <= clean * 1.2, t
    assert noisy == daily_cycle(low=100, high=1000, period_s=3600, noise=0.2, seed=5)
    assert noisy != daily_cycle(low=100, high=1000, period_s=3600, noise=0.2, seed=6)


def test_recorded_traces_take_their_step_from_the_samples():
    trace = recorded("last week", [(30, 5.0), (0, 3.0), (15, 4.0)])
    assert trace.points == ((0.0, 3.0), (15.0, 4.0), (30.0, 5.0))
    assert trace.step_s == 15
    with pytest.raises(ValueError, match="at least one point"):
        recorded("empty", [])


# ---------------------------------------------------------------- the simulated workload


def test_pods_become_ready_after_the_startup_delay():
    script = Script({10.0: 20})
    result = run_replay(flat(1000, 120), script, Simulation(initial_replicas=10))
    assert [(p.replicas, p.ready) for p in result.series if p.t in (9, 10, 39, 40)] == [
        (10, 10),
        (20, 10),
        (20, 10),
        (20, 20),
    ]
    assert next(p for p in result.series if p.t == 40).utilization == pytest.approx(0.5)
    assert script.seen[41].startup_durations[-1] == 30


def test_a_scale_down_removes_starting_pods_first():
    result = run_replay(flat(1000, 60), Script({0.0: 15, 5.0: 12}), Simulation(initial_replicas=10))
    assert [(p.replicas, p.ready) for p in result.series if p.t in (5, 29, 30)] == [(12, 10), (12, 10), (12, 12)]


def test_overloaded_pod_seconds_count_ready_pods_while_utilisation_is_above_one():
    # 1500 units on 10 pods of 100: utilisation 1.5 until the 5 extra pods are ready at t=30.
    result = run_replay(flat(1500, 60), Script({0.0: 15}), Simulation(initial_replicas=10))
    assert result.overloaded_seconds == 30
    assert result.overloaded_pod_seconds == 10 * 30
    assert result.unserved_load_seconds == (1500 - 1000) * 30
    assert result.pod_seconds == 15 * 60
    assert result.actions == 1


def test_reversals_are_direction_changes_between_actions():
    result = run_replay(flat(700, 900), Script({0.0: 12, 100.0: 8, 200.0: 9, 300.0: 14, 700.0: 5}), SIM)
    assert result.actions == 5
    assert result.reversals == 3
    assert result.reversals_per_10min == pytest.approx(3 / 900 * 600)
    assert result.max_reversals_in_10min == 2


# ---------------------------------------------------------------- the baselines on a step


def test_the_reactive_baseline_sets_the_exact_count_every_15_seconds():
    result = run_replay(spike(), ReactivePolicy(), SIM)
    assert changes(result) == [(307, 10, 50), (607, 50, 10)]  # ceil(3500 / 100 / 0.7) = 50, then back at once


def test_the_hpa_syncs_every_15_seconds_with_its_step_policy_and_300_second_window():
    result = run_replay(spike(), HpaPolicy(), SIM)
    steps = changes(result)
    assert all((t - 7) % 15 == 0 for t, _, _ in steps)
    ups = [(a, b) for _, a, b in steps if b > a]
    assert ups[0] == (10, 20)  # max(4 pods, 100 %) per period
    assert all(b <= max(a + 4, 2 * a) for a, b in ups)
    # the load falls at t=600; the recommendations of the last 300 s keep the count up meanwhile
    after_drop = [p.replicas for p in result.series if 600 <= p.t < 885]
    assert min(after_drop) >= 50
    assert result.series[-1].replicas == 10


# ---------------------------------------------------------------- ICC's default policy


def test_ours_reacts_within_a_second_and_explains_itself():
    policy = IccPolicy()
    result = run_replay(spike(), policy, SIM)
    first_up = changes(result)[0]
    assert first_up[0] == 300
    assert first_up[1:] == (10, 20)  # max(4 pods, 100 %) per decision
    assert any("desired" in reason or "holding" in reason for reason in policy.last_decision_reasons)


@pytest.mark.parametrize("trace", [spike(peak=7000), ramp(high=9000), daily_cycle(period_s=3600, seed=3)])
def test_ours_never_asks_for_a_count_outside_the_limits(trace):
    limits = Limits(3, 40)
    policy = Recording(IccPolicy())
    result = run_replay(trace, policy, Simulation(limits=limits))
    assert all(limits.min <= answer <= limits.max for answer in policy.answers)
    assert all(limits.min <= p.replicas <= limits.max for p in result.series)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ours_reverses_at_most_once_per_10_minutes_under_20_percent_noise(seed):
    results = compare(daily_cycle(period_s=7200, noise=0.2, seed=seed), SIM)
    assert results["icc"].reversals_per_10min <= 1.0
    assert results["icc"].overloaded_pod_seconds <= results["hpa"].overloaded_pod_seconds
    assert ratios(results)["pod_seconds"] <= 1.1
    assert results["reactive"].reversals_per_10min > 10  # the noise is real: the baseline chases it


@pytest.mark.parametrize("startup_s", [30.0, 60.0])
@pytest.mark.parametrize("trace", [spike(), ramp(), ramp(step_s=1)], ids=["spike", "ramp", "smooth-ramp"])
def test_ours_is_overloaded_less_than_the_hpa_at_no_more_cost(trace, startup_s):
    results = compare(trace, Simulation(startup_s=startup_s))
    assert results["hpa"].overloaded_pod_seconds > 0
    relative = ratios(results)
    assert relative["overloaded_pod_seconds"] <= 0.7
    assert relative["pod_seconds"] <= 1.1


@pytest.mark.parametrize("shape", [spike, ramp])
def test_under_noise_ours_still_beats_the_hpa_across_seeds(shape):
    overloaded, cost, unserved = [], [], []
    for seed in range(10):
        trace = with_noise(shape(), 0.2, seed)
        ours, hpa = run_replay(trace, IccPolicy(), SIM), run_replay(trace, HpaPolicy(), SIM)
        overloaded.append(ours.overloaded_pod_seconds / hpa.overloaded_pod_seconds)
        cost.append(ours.pod_seconds / hpa.pod_seconds)
        unserved.append(ours.unserved_load_seconds / hpa.unserved_load_seconds)
    assert max(cost) <= 1.1
    assert max(unserved) < 0.7
    assert statistics.median(overloaded) <= 0.7
    if shape is spike:
        assert max(overloaded) <= 0.7
    else:
        # one seed in ten lags the HPA in overloaded pod-seconds (slightly over, with many pods ready) while
        # still leaving less load unserved; see the module docstring of apps.scaler.replay
        assert sum(r <= 0.7 for r in overloaded) >= 8


def test_ratios_handle_a_baseline_that_was_never_overloaded():
    results = compare(flat(700, 300), SIM)
    assert ratios(results) == {"overloaded_pod_seconds": 0.0, "pod_seconds": 1.0}
    starved = run_replay(flat(700, 300), Script({0.0: 5}), SIM)
    assert math.isinf(ratios({**results, "icc": starved})["overloaded_pod_seconds"])
