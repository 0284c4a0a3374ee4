"""The admission webhook's in-memory view of what is bound, so answering never waits on the database.

A ``Snapshot`` holds every enabled ``warn``/``enforce`` binding ready to run (built-in checks picked, CEL compiled),
the approved and unrevoked exceptions (expiry is checked at each answer, so an exception stops applying the second
it expires) and each cluster's webhook token. It is built once, on the first admission request of a process, and
rebuilt whenever a policy, binding, exception or webhook changes: the writing service calls ``policies_changed()``,
which after commit rebuilds the writer's own snapshot and publishes on ``icc:compliance:policies``; every process
that answers admission listens there (a daemon thread) and rebuilds at once. A lost message costs at most
``REFRESH_SECONDS`` (the listener also rebuilds on that period).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apps.compliance import cel
from apps.compliance.checks import Check, Severity, checks_for_policy
from apps.compliance.models import AdmissionWebhook, Binding, Mode, PolicyException, PolicyKind
from apps.core.access import Scope
from apps.core.snapshot import ProcessSnapshot

logger = logging.getLogger(__name__)

CHANNEL = "icc:compliance:policies"
REFRESH_SECONDS = 60.0


@dataclass(frozen=True)
class Rule:
    """One enabled binding in ``warn`` or ``enforce`` mode, ready to evaluate."""

    binding_id: int
    policy: str  # the policy's key
    kind: str  # builtin or cel
    scope: Scope
    mode: str
    check_id: str  # empty: every check of the policy
    params: dict[str, Any]
    checks: tuple[Check, ...] = ()  # built-in policies
    compiled: cel.CompiledPolicy | None = None  # CEL policies
    match: dict[str, Any] = field(default_factory=dict)
    warn_in_maintenance: bool = False  # enforce answered as warn while a maintenance window covers the workload


@dataclass(frozen=True)
class Snapshot:
    rules: tuple[Rule, ...]
    exceptions: tuple[PolicyException, ...]  # approved, not revoked (expiry is checked per answer)
    tokens: dict[int, str]  # cluster id -> the webhook path token it must present
    built_at: float
    generation: int

    def active_exceptions(self, now: datetime) -> list[PolicyException]:
        return [e for e in self.exceptions if e.expires_at > now]


def _rule(binding: Binding) -> Rule | None:
    policy = binding.policy
    common: dict[str, Any] = {
        "binding_id": binding.pk,
        "policy": policy.key,
        "kind": policy.kind,
        "scope": binding.scope(),
        "mode": binding.mode,
        "check_id": binding.check_id,
        "params": dict(binding.params or {}),
        "warn_in_maintenance": binding.warn_in_maintenance,
    }
    if policy.kind == PolicyKind.BUILTIN:
        checks = tuple(c for c in checks_for_policy(policy.key) if not binding.check_id or c.id == binding.check_id)
        return Rule(checks=checks, **common)
    try:
        compiled = cel.compile_policy(
            policy.validations, variables=policy.variables, name=policy.key, severity=Severity(policy.severity)
        )
    except Exception as exc:  # a policy saved before a library change no longer compiles: skip it, say why
        logger.warning("compliance policy %s does not compile for admission: %s", policy.key, type(exc).__name__)
        return None
    return Rule(compiled=compiled, match=dict(policy.match or {}), **common)


def build(generation: int = 0) -> Snapshot:
    """Read everything admission needs (a few queries), outside any request."""
    bindings = (
        Binding.objects.filter(enabled=True, policy__enabled=True, mode__in=[Mode.WARN, Mode.ENFORCE])
        .select_related("policy")
        .order_by("id")
    )
    rules = tuple(r for r in (_rule(b) for b in bindings) if r is not None)
    exceptions = tuple(
        PolicyException.objects.filter(approved_at__isnull=False, revoked_at__isnull=True)
        .select_related("policy")
        .order_by("expires_at", "id")
    )
    tokens = {w.cluster_id: w.token() for w in AdmissionWebhook.objects.all()}
    return Snapshot(rules, exceptions, tokens, time.monotonic(), generation)


_snapshot: ProcessSnapshot[Snapshot] = ProcessSnapshot(
    "compliance-admission-cache", CHANNEL, build, refresh_seconds=REFRESH_SECONDS
)


def rebuild() -> Snapshot:
    return _snapshot.rebuild()


def current() -> Snapshot:
    """The snapshot to answer with (built now only on a process's first admission request)."""
    return _snapshot.current()


def policies_changed() -> None:
    """Call from any write of policies, bindings, exceptions or webhooks: admission sees it right after commit."""
    _snapshot.changed()
