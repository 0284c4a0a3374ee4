"""Reads for the compliance page and API: every query is restricted to the results the viewer may read.

The results list puts failing checks first (then errors, skips and passes), the most severe first within each;
the summary counts the same selection by status and, for failing checks, by severity, and scores it as the
share of passes among passes and fails.
"""

from __future__ import annotations

from typing import Any, TypedDict

from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When

from apps.clusters.models import Application, Cluster
from apps.compliance.checks import Severity
from apps.compliance.models import Result, ResultStatus
from apps.core.access import Action, restrict
from apps.core.selectors import contains_any

SEARCH_FIELDS = ("workload__name", "check_id")
STATUS_ORDER = (ResultStatus.FAIL, ResultStatus.ERROR, ResultStatus.EXCEPTED, ResultStatus.SKIP, ResultStatus.PASS)
SEVERITY_ORDER = tuple(Severity)


class Summary(TypedDict):
    total: int
    by_status: dict[str, int]
    failing_by_severity: dict[str, int]
    score: float | None  # percent of passes among passes and fails; None when there are neither


def _rank(field: str, values: tuple[str, ...]) -> Case:
    return Case(
        *(When(**{field: str(v)}, then=Value(i)) for i, v in enumerate(values)),
        default=Value(len(values)),
        output_field=IntegerField(),
    )


def results(
    viewer: Any,
    *,
    status: str = "",
    severity: str = "",
    policy: str = "",
    cluster: int | None = None,
    namespace: str = "",
    application: int | None = None,
    search: str = "",
) -> QuerySet[Result]:
    """The current results the viewer may read that match the filters, failing and most severe first."""
    rows = restrict(viewer, Action.READ, Result.objects.all())
    if status:
        rows = rows.filter(status=status)
    if severity:
        rows = rows.filter(severity=severity)
    if policy:
        rows = rows.filter(policy=policy)
    if cluster:
        rows = rows.filter(cluster_id=cluster)
    if namespace:
        rows = rows.filter(namespace=namespace)
    if application:
        rows = rows.filter(application_id=application)
    if search.strip():
        rows = rows.filter(contains_any(SEARCH_FIELDS, search.strip()))
    return (
        rows.select_related("workload", "cluster", "application")
        .annotate(status_rank=_rank("status", STATUS_ORDER), severity_rank=_rank("severity", SEVERITY_ORDER))
        .order_by("status_rank", "severity_rank", "cluster__name", "namespace", "workload__name", "check_id", "id")
    )


def summary(rows: QuerySet[Result]) -> Summary:
    """Counts of ``rows`` (a selection from :func:`results`) by status and failing by severity, and the score;
    one query."""
    counts = {f"status_{s}": Count("id", filter=Q(status=s)) for s in ResultStatus.values}
    counts |= {f"severity_{s}": Count("id", filter=Q(status=ResultStatus.FAIL, severity=s)) for s in Severity}
    found = rows.order_by().aggregate(total=Count("id"), **counts)
    by_status = {s: int(found[f"status_{s}"]) for s in ResultStatus.values}
    passes, fails = by_status[ResultStatus.PASS], by_status[ResultStatus.FAIL]
    return {
        "total": int(found["total"]),
        "by_status": by_status,
        "failing_by_severity": {str(s): int(found[f"severity_{s}"]) for s in Severity},
        "score": round(100 * passes / (passes + fails), 1) if passes + fails else None,
    }


def policy_keys(viewer: Any) -> list[str]:
    """The policies the viewer's results come from, for the filters (policies themselves are global rows)."""
    rows = restrict(viewer, Action.READ, Result.objects.all())
    return list(rows.order_by("policy").values_list("policy", flat=True).distinct())


def applications(viewer: Any) -> QuerySet[Application]:
    return restrict(viewer, Action.READ, Application.objects.select_related("cluster")).order_by(
        "cluster__name", "namespace", "name"
    )


def clusters(viewer: Any) -> QuerySet[Cluster]:
    return restrict(viewer, Action.READ, Cluster.objects.all()).order_by("name")
