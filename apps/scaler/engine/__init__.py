"""The scaling decision engine: metrics, behaviour, limits and history in; desired replicas and reasons out.

Pure and typed on purpose (no Django, no database, no clock, no I/O): the same function drives live evaluations,
the replay simulator and the property-based tests, and a decision can be recomputed from its stored inputs.

Pipeline of `decide`, each step explained by a reason when it changes the number:
raw proposal (max over metrics) -> predictive (max with the forecast) -> stabilisation -> step limits -> cooldowns
-> flap guard -> clamp to limits (always last: the result is never outside the limits).

``data`` holds the inputs and outputs, ``rules`` the steps and `decide`; every name is importable from here.
"""

from __future__ import annotations

from apps.scaler.engine.data import (
    METRIC_KINDS,
    Behavior,
    Decision,
    History,
    Limits,
    MetricKind,
    MetricProposal,
    MetricSample,
    MetricTarget,
    Recommendation,
    intersect,
)
from apps.scaler.engine.rules import (
    DEFAULT_BEHAVIOR,
    count_reversals,
    decide,
    forecast_replicas,
    hpa_replicas,
    metric_proposal,
    recommend,
    stabilize,
    step_limit_down,
    step_limit_up,
)

__all__ = [
    "DEFAULT_BEHAVIOR",
    "METRIC_KINDS",
    "Behavior",
    "Decision",
    "History",
    "Limits",
    "MetricKind",
    "MetricProposal",
    "MetricSample",
    "MetricTarget",
    "Recommendation",
    "count_reversals",
    "decide",
    "forecast_replicas",
    "hpa_replicas",
    "intersect",
    "metric_proposal",
    "recommend",
    "stabilize",
    "step_limit_down",
    "step_limit_up",
]
