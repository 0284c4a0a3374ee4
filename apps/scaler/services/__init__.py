"""Writes of the scaler: policies (with schedules), the kill switch, the global pause and pushed signals.

Configuration changes are audited in the same transaction and bump the policy's version (decisions record the
version they were made under). Pushed signals are telemetry: validated strictly (refusals counted in
``/metrics``), stored briefly, not audited one by one.

``validation`` checks policy input, ``policies`` writes policies, ``switches`` holds the kill switch and the
global pause, ``signals`` takes pushed signals, ``evaluation_requests`` enqueues evaluations. The names other
modules use are importable from here.
"""

from __future__ import annotations

from apps.scaler.services.evaluation_requests import DEBOUNCE_SECONDS, debounce_key, request_evaluation, system_actor
from apps.scaler.services.policies import policy_create, policy_delete, policy_update
from apps.scaler.services.signals import SignalRejected, prune_signals, record_signals, reject_signal
from apps.scaler.services.switches import global_pause_set, globally_paused, kill_switch_on, kill_switch_set
from apps.scaler.services.validation import clean_behavior, clean_metrics, clean_schedules

__all__ = [
    "DEBOUNCE_SECONDS",
    "SignalRejected",
    "clean_behavior",
    "clean_metrics",
    "clean_schedules",
    "debounce_key",
    "global_pause_set",
    "globally_paused",
    "kill_switch_on",
    "kill_switch_set",
    "policy_create",
    "policy_delete",
    "policy_update",
    "prune_signals",
    "record_signals",
    "reject_signal",
    "request_evaluation",
    "system_actor",
]
