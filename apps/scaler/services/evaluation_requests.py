"""Evaluation requests: a policy is evaluated soon after a change or a signal, once per burst (debounced)."""

from __future__ import annotations

from django.core.cache import cache
from django.db import transaction

from apps.audit.services import Actor
from apps.scaler.models import ScalingPolicy

DEBOUNCE_SECONDS = 0.2  # signals arriving this close together share one evaluation
# How long a pending evaluation blocks new requests. Short on purpose: when the pending task is lost (its worker
# was killed holding it, or crashed on a broker restart), requests must enqueue a new one well before the signals
# that asked for it go stale (SIGNAL_FRESH_SECONDS, 30 s); with 30 s here the chaos suite (bench/chaos.py) lost
# accepted signals. A second evaluation enqueued while a slow one is still queued is harmless (single-flight).
PENDING_SECONDS = 5


def debounce_key(policy_id: int) -> str:
    return f"icc:scaler:pending:{policy_id}"


def request_evaluation(policy: ScalingPolicy, *, trigger: str) -> bool:
    """Enqueue one evaluation on the ``decisions`` queue after commit, unless one is already pending (debounce:
    the pending one starts within DEBOUNCE_SECONDS and reads every signal stored until then)."""
    from apps.scaler.tasks import evaluate_policy

    if not policy.enabled:
        return False
    if not cache.add(debounce_key(policy.pk), trigger, timeout=PENDING_SECONDS):
        return False
    policy_id = policy.pk
    transaction.on_commit(lambda: evaluate_policy.apply_async(args=(policy_id, trigger), countdown=DEBOUNCE_SECONDS))
    return True


def system_actor() -> Actor:
    from apps.audit.models import ActorKind

    return Actor(ActorKind.SYSTEM, "scaler", "ICC scaler")
