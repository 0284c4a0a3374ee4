"""Compliance's domain events.

- ``compliance.critical_violation`` (critical): a check of critical severity newly fails on a workload (it did not
  fail before: a new workload, a changed one, an exception that ran out); one condition per workload and check,
  resolved by ``compliance.violation_cleared`` when that result passes, is excepted or no longer applies.
- ``compliance.exception_expiring`` (warning): an approved exception expires within ``EXPIRING_WITHIN``; announced
  once per exception by the periodic ``compliance.exceptions_expiring`` task.
- ``compliance.admission_denied`` (warning): the admission webhook denied a workload. The webhook answers from
  memory and writes nothing: the denial is handed to the ``compliance.admission_denied`` task after the response
  (:func:`apps.compliance.tasks.admission_denied_later`), which announces it; one condition per cluster, namespace
  and workload.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from apps.core.access import Scope, ScopeKind
from apps.core.domain_events import DomainEvent, Severity, emit

logger = logging.getLogger(__name__)

CRITICAL = "critical"
FAILING = "fail"
CLEARED = ("pass", "excepted", "skip")  # an error says nothing either way: the condition stays as it is
EXPIRING_WITHIN = timedelta(days=3)


def _scope(cluster_id: int, namespace: str, application: str) -> Scope:
    if application:
        return Scope(ScopeKind.APPLICATION, str(cluster_id), application=application)
    return Scope(ScopeKind.NAMESPACE, str(cluster_id), namespace=namespace)


# --- critical violations (from a scan's chunk, or one workload's evaluation) --------------------------------------


@dataclass(frozen=True)
class Subject:
    """The workload coordinates an announcement names (a scan's ``Observed`` or a ``Workload`` row both fit)."""

    pk: int
    cluster_id: int
    namespace: str
    kind: str
    name: str
    application: str


def subject_of(workload: Any) -> Subject:
    application = workload.application
    name = application if isinstance(application, str) else (application.name if application is not None else "")
    return Subject(workload.pk, workload.cluster_id, workload.namespace, workload.kind, workload.name, name)


def critical_failing(judged: Sequence[tuple[Any, dict[str, dict[str, Any]]]]) -> set[tuple[int, str]]:
    """(workload, check) of the chunk's critical results failing now, read before the chunk is rewritten (in its
    transaction). One query on the (status, severity) index: it returns only failing critical rows."""
    from apps.compliance.models import Result

    rows = Result.objects.filter(
        status=FAILING, severity=CRITICAL, workload_id__in=[w.pk for w, _ in judged]
    ).values_list("workload_id", "check_id")
    return set(rows)


def critical_changed(judged: Sequence[tuple[Any, dict[str, dict[str, Any]]]], failing: set[tuple[int, str]]) -> int:
    """Announce (after commit) each critical check that newly fails, and each that stopped failing (passes, is
    excepted or skipped, or is no longer bound); returns how many announcements. A check failing before and now is
    the same condition: silent. ``failing`` is :func:`critical_failing` of before the write."""
    announced = 0
    for workload, values in judged:
        for check_id, fields in values.items():
            if fields["severity"] != CRITICAL:
                continue
            was, now = (workload.pk, check_id) in failing, str(fields["status"])
            if now == FAILING and not was:
                _violation(subject_of(workload), check_id, fields, resolves=False)
                announced += 1
            elif was and now in CLEARED:
                _violation(subject_of(workload), check_id, fields, resolves=True)
                announced += 1
        for pk, check_id in failing:
            if pk == workload.pk and check_id not in values:  # unbound: its result is deleted with the write
                _violation(subject_of(workload), check_id, {"status": "no longer checked"}, resolves=True)
                announced += 1
    return announced


def _violation(workload: Subject, check_id: str, fields: dict[str, Any], *, resolves: bool) -> None:
    what = f"{workload.kind} {workload.namespace}/{workload.name}"
    text = (
        f"{what} no longer fails critical check {check_id} ({fields['status']})."
        if resolves
        else f"{what} fails critical check {check_id} ({fields['policy']}): {fields['message']}"
    )
    emit(
        DomainEvent(
            kind="compliance.violation_cleared" if resolves else "compliance.critical_violation",
            severity=Severity.INFO if resolves else Severity.CRITICAL,
            subject=what,
            text=text[:1000],
            scope=_scope(workload.cluster_id, workload.namespace, workload.application),
            link=(
                f"/compliance/?cluster={workload.cluster_id}&namespace={workload.namespace}"
                f"&q={workload.name}&check={check_id}"
            ),
            dedup_key=f"compliance.critical_violation:{workload.pk}:{check_id}",
            resolves=resolves,
        )
    )


# --- exceptions about to expire (periodic) -----------------------------------------------------------------------


def _expiring_marker(pk: int) -> str:
    return f"icc:compliance:exception-expiring:{pk}"


def exceptions_expiring(now: datetime | None = None) -> int:
    """Announce every approved, unrevoked exception that expires within ``EXPIRING_WITHIN`` and was not announced
    yet (a cache marker that lives until a day after its expiry makes it once per exception); returns how many."""
    from apps.compliance.models import PolicyException

    now = now or timezone.now()
    due = PolicyException.objects.select_related("policy").filter(
        approved_at__isnull=False, revoked_at__isnull=True, expires_at__gt=now, expires_at__lte=now + EXPIRING_WITHIN
    )
    announced = 0
    for exception in due:
        lifetime = int((exception.expires_at - now).total_seconds()) + 86400
        if not cache.add(_expiring_marker(exception.pk), 1, lifetime):
            continue
        scope = exception.scope()
        hours = max(1, round((exception.expires_at - now).total_seconds() / 3600))
        emit(
            DomainEvent(
                kind="compliance.exception_expiring",
                severity=Severity.WARNING,
                subject=f"compliance exception {exception.pk}",
                text=(
                    f"The exception to {exception.policy.key}{'/' + exception.check_id if exception.check_id else ''} "
                    f"at {scope.label()} (owner {exception.owner}) expires {exception.expires_at:%Y-%m-%d %H:%M}Z, in "
                    f"about {hours} h; the workloads it covers fail again then unless they are fixed."
                )[:1000],
                scope=scope,
                link=f"/compliance/exceptions/{exception.pk}/",
                dedup_key=f"compliance.exception_expiring:{exception.pk}",
            )
        )
        announced += 1
    return announced


# --- admission denials (handed off by the webhook) -----------------------------------------------------------------


@dataclass(frozen=True)
class Denial:
    cluster_id: int
    namespace: str
    kind: str
    name: str
    application: str
    checks: tuple[str, ...]
    user: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "checks": list(self.checks)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Denial:
        return cls(**{**values, "checks": tuple(values.get("checks") or ())})

    def key(self) -> str:
        return f"compliance.admission_denied:{self.cluster_id}:{self.namespace}:{self.kind}/{self.name}"


def admission_denied(denial: Denial) -> None:
    """Announce one denial (the task's body)."""
    from apps.clusters.models import Cluster

    cluster = Cluster.objects.filter(pk=denial.cluster_id).values_list("name", flat=True).first() or str(
        denial.cluster_id
    )
    what = f"{denial.kind} {denial.namespace}/{denial.name}"
    emit(
        DomainEvent(
            kind="compliance.admission_denied",
            severity=Severity.WARNING,
            subject=f"{what} on cluster {cluster}",
            text=(
                f"The admission webhook of cluster {cluster} denied {what}"
                + (f" (requested by {denial.user})" if denial.user else "")
                + f": enforced checks failed: {', '.join(denial.checks)}."
            )[:1000],
            scope=_scope(denial.cluster_id, denial.namespace, denial.application),
            link=f"/compliance/webhooks/{denial.cluster_id}/",
            dedup_key=denial.key(),
        )
    )
