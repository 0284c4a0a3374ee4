"""Compliance history: after every scan, the counts of the current results per scope, kept for
``COMPLIANCE_HISTORY_DAYS``.

One :class:`~apps.compliance.models.HistoryPoint` per (cluster, namespace, application, policy, severity) with its
pass/fail/error/skip/excepted counts, plus one total row per (cluster, namespace, application) whose policy and
severity are empty, all stamped with the scan's time and each application's version at that moment (its newest
rollout). A trend is a sum per ``taken_at`` (of the total rows, a fraction of the detail, unless it is about one
policy or severity) and a release's counts are the last snapshot taken while it was current. Reads live in
:mod:`apps.compliance.selectors`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from apps.clusters.models import Application, ApplicationVersion
from apps.compliance.models import HistoryPoint, Result, ResultStatus

BULK = 1000
COUNTS = {
    "passed": ResultStatus.PASS,
    "failed": ResultStatus.FAIL,
    "errored": ResultStatus.ERROR,
    "skipped": ResultStatus.SKIP,
    "excepted": ResultStatus.EXCEPTED,
}
TOTAL = ""  # the policy and severity of a scope's total row (every policy and severity summed)
Key = tuple[int, str, int | None, str, str]  # cluster, namespace, application, policy, severity
Counts = tuple[int, int, int, int, int]


def latest_versions(application_ids: set[int]) -> dict[int, int]:
    """The newest recorded version (rollout) of each application, by id (applications without one are absent)."""
    newest = ApplicationVersion.objects.filter(application=OuterRef("pk")).order_by("-observed_at", "-id")
    found: dict[int, int] = {}
    ids = sorted(application_ids)
    for start in range(0, len(ids), BULK):
        rows = (
            Application.objects.filter(pk__in=ids[start : start + BULK])
            .annotate(version_id=Subquery(newest.values("pk")[:1]))
            .values_list("pk", "version_id")
        )
        found.update({pk: version for pk, version in rows if version is not None})
    return found


def _current_counts() -> dict[Key, tuple[str, Counts]]:
    """The current results grouped by scope, policy and severity (one query)."""
    group = ("cluster_id", "namespace", "application_id", "application__name", "policy", "severity")
    rows = (
        Result.objects.order_by()
        .values(*group)
        .annotate(**{name: Count("id", filter=Q(status=status)) for name, status in COUNTS.items()})
        .values_list(*group, *COUNTS)
    )
    found: dict[Key, tuple[str, Counts]] = {}
    for cluster_id, namespace, application_id, name, policy, severity, *counts in rows:
        key = (cluster_id, namespace, application_id, policy, severity)
        found[key] = (name or "", (counts[0], counts[1], counts[2], counts[3], counts[4]))
        total_key = (cluster_id, namespace, application_id, TOTAL, TOTAL)
        total = found.get(total_key, ("", (0, 0, 0, 0, 0)))[1]
        found[total_key] = (name or "", tuple(a + b for a, b in zip(total, counts, strict=True)))
    return found


def _previous_counts(before: datetime) -> dict[Key, Counts]:
    """The newest snapshot taken before ``before``, keyed as :func:`_current_counts`."""
    last = HistoryPoint.objects.filter(taken_at__lt=before).order_by("-taken_at").values_list("taken_at", flat=True)
    taken_at = last.first()
    if taken_at is None:
        return {}
    rows = HistoryPoint.objects.filter(taken_at=taken_at).values_list(
        "cluster_id", "namespace", "application_id", "policy", "severity", *COUNTS
    )
    return {(c, ns, app, policy, sev): (n[0], n[1], n[2], n[3], n[4]) for c, ns, app, policy, sev, *n in rows}


def record(now: datetime | None = None) -> set[int]:
    """Record the counts of the current results as one snapshot at ``now`` and prune what is older than the
    retention; returns the ids of the applications whose counts differ from the previous snapshot's."""
    taken_at = now or timezone.now()
    current = _current_counts()
    previous = _previous_counts(taken_at)
    versions = latest_versions({key[2] for key in current if key[2] is not None})
    points = [
        HistoryPoint(
            taken_at=taken_at,
            cluster_id=cluster_id,
            namespace=namespace,
            application_id=application_id,
            application_name=name,
            version_id=versions.get(application_id) if application_id is not None else None,
            policy=policy,
            severity=severity,
            **dict(zip(COUNTS, counts, strict=True)),
        )
        for (cluster_id, namespace, application_id, policy, severity), (name, counts) in current.items()
    ]
    with transaction.atomic():
        HistoryPoint.objects.bulk_create(points, batch_size=BULK)
        prune(taken_at)
    changed = {key for key in current.keys() | previous.keys() if current.get(key, ("", None))[1] != previous.get(key)}
    return {key[2] for key in changed if key[2] is not None}


def prune(now: datetime | None = None) -> int:
    """Delete the snapshots older than ``COMPLIANCE_HISTORY_DAYS``; returns how many rows went."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.COMPLIANCE_HISTORY_DAYS)
    deleted, _ = HistoryPoint.objects.filter(taken_at__lt=cutoff).delete()
    return deleted
