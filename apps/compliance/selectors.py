"""Reads for the compliance page and API: every query is restricted to the results the viewer may read.

The results list puts failing checks first (then errors, skips and passes), the most severe first within each;
the summary counts the same selection by status and, for failing checks, by severity, and scores it as the
share of passes among passes and fails (every check counts once, whatever its severity; errors, skips and
excepted failures are left out), and beside it a weighted score where each check counts by its severity
(``SEVERITY_WEIGHTS``). The overview scores each cluster and namespace the same way; the trend scores
each history snapshot (:mod:`apps.compliance.history`) of what the viewer may read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypedDict

from django.conf import settings
from django.db.models import Case, Count, IntegerField, Q, QuerySet, Sum, Value, When
from django.utils import timezone

from apps.clusters.models import Application, ApplicationVersion, Cluster
from apps.compliance.checks import Severity
from apps.compliance.history import TOTAL
from apps.compliance.models import HistoryPoint, Result, ResultStatus
from apps.core.access import Action, restrict
from apps.core.selectors import contains_any

SEARCH_FIELDS = ("workload__name", "check_id")
STATUS_ORDER = (ResultStatus.FAIL, ResultStatus.ERROR, ResultStatus.EXCEPTED, ResultStatus.SKIP, ResultStatus.PASS)
SEVERITY_ORDER = tuple(Severity)
# A check's weight in the weighted score: each severity counts twice the one below; info does not count.
SEVERITY_WEIGHTS = {"critical": 8, "high": 4, "medium": 2, "low": 1, "info": 0}


class Summary(TypedDict):
    total: int
    by_status: dict[str, int]
    failing_by_severity: dict[str, int]
    score: float | None  # percent of passes among passes and fails; None when there are neither
    weighted_score: float | None  # the same with each check weighted by its severity (SEVERITY_WEIGHTS)


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
    check: str = "",
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
    if check:
        rows = rows.filter(check_id=check)
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
    counts |= {f"passing_{s}": Count("id", filter=Q(status=ResultStatus.PASS, severity=s)) for s in Severity}
    found = rows.order_by().aggregate(total=Count("id"), **counts)
    by_status = {s: int(found[f"status_{s}"]) for s in ResultStatus.values}
    passes, fails = by_status[ResultStatus.PASS], by_status[ResultStatus.FAIL]
    weighted_passes = sum(SEVERITY_WEIGHTS.get(str(s), 0) * int(found[f"passing_{s}"]) for s in Severity)
    weighted_fails = sum(SEVERITY_WEIGHTS.get(str(s), 0) * int(found[f"severity_{s}"]) for s in Severity)
    return {
        "total": int(found["total"]),
        "by_status": by_status,
        "failing_by_severity": {str(s): int(found[f"severity_{s}"]) for s in Severity},
        "score": score(passes, fails),
        "weighted_score": score(weighted_passes, weighted_fails),
    }


def score(passes: int, fails: int) -> float | None:
    """Rule: the percentage of passes among passes and fails, to one decimal; None when there are neither."""
    return round(100 * passes / (passes + fails), 1) if passes + fails else None


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


# --- the overview: current results per cluster and namespace --------------------------------------------------


class ScopeCounts(TypedDict):
    cluster: int
    cluster_name: str
    namespace: str  # "" for a cluster's row
    passed: int
    failed: int
    errored: int
    skipped: int
    excepted: int
    total: int
    score: float | None


class Overview(TypedDict):
    clusters: list[ScopeCounts]
    namespaces: list[ScopeCounts]


STATUS_COUNTS = {
    "passed": ResultStatus.PASS,
    "failed": ResultStatus.FAIL,
    "errored": ResultStatus.ERROR,
    "skipped": ResultStatus.SKIP,
    "excepted": ResultStatus.EXCEPTED,
}


def _scored(cluster: int, cluster_name: str, namespace: str, counts: dict[str, int]) -> ScopeCounts:
    return {
        "cluster": cluster,
        "cluster_name": cluster_name,
        "namespace": namespace,
        "passed": counts["passed"],
        "failed": counts["failed"],
        "errored": counts["errored"],
        "skipped": counts["skipped"],
        "excepted": counts["excepted"],
        "total": sum(counts.values()),
        "score": score(counts["passed"], counts["failed"]),
    }


def _worst_first(row: ScopeCounts) -> tuple[float, int, str, str]:
    return (101.0 if row["score"] is None else row["score"], -row["failed"], row["cluster_name"], row["namespace"])


def overview(rows: QuerySet[Result]) -> Overview:
    """Counts and score of ``rows`` (a selection from :func:`results`) per cluster and per namespace, lowest
    score first; one query."""
    group = ("cluster_id", "cluster__name", "namespace")
    grouped = (
        rows.order_by()
        .values(*group)
        .annotate(**{name: Count("id", filter=Q(status=status)) for name, status in STATUS_COUNTS.items()})
        .values_list(*group, *STATUS_COUNTS)
    )
    namespaces: list[ScopeCounts] = []
    per_cluster: dict[int, tuple[str, dict[str, int]]] = {}
    for cluster_id, cluster_name, namespace, *values in grouped:
        counts = dict(zip(STATUS_COUNTS, (int(v) for v in values), strict=True))
        namespaces.append(_scored(cluster_id, cluster_name, namespace, counts))
        _, total = per_cluster.setdefault(cluster_id, (cluster_name, dict.fromkeys(STATUS_COUNTS, 0)))
        for name, value in counts.items():
            total[name] += value
    clusters = [_scored(pk, name, "", counts) for pk, (name, counts) in per_cluster.items()]
    return {"clusters": sorted(clusters, key=_worst_first), "namespaces": sorted(namespaces, key=_worst_first)}


# --- history: trends and releases ---------------------------------------------------------------------------------

HISTORY_SUMS = {f"n_{name}": Sum(name) for name in STATUS_COUNTS}
TREND_POINTS = 60  # snapshots in the page's trend line
VERSIONS_SHOWN = 20
# A release's template is observed a moment before the controller names its revision (which records the version):
# failures that began this long before the rollout was seen are counted as the release's.
RELEASE_GRACE = timedelta(minutes=2)


def history_rows(rows: QuerySet[HistoryPoint], *, policy: str = "", severity: str = "") -> QuerySet[HistoryPoint]:
    """The rows of ``rows`` to sum: the per-policy and per-severity rows for a policy or severity, otherwise each
    scope's total row (a fraction of the detail)."""
    if not policy and not severity:
        return rows.filter(policy=TOTAL, severity=TOTAL)
    rows = rows.exclude(policy=TOTAL)
    return rows.filter(**{k: v for k, v in {"policy": policy, "severity": severity}.items() if v})


def per_scan(rows: QuerySet[HistoryPoint]) -> QuerySet[HistoryPoint]:
    """``rows`` summed per scan: ``taken_at`` and ``n_passed``, ``n_failed``, ``n_errored``, ``n_skipped``,
    ``n_excepted``, newest first."""
    return rows.order_by().values("taken_at").annotate(**HISTORY_SUMS).order_by("-taken_at")  # type: ignore[return-value]


def history(
    viewer: Any,
    *,
    cluster: int | None = None,
    namespace: str = "",
    application: int | None = None,
    policy: str = "",
    severity: str = "",
    since: datetime | None = None,
) -> QuerySet[HistoryPoint]:
    """The viewer's history snapshots summed per scan (see :func:`per_scan`): only the scopes the viewer may read
    count."""
    rows = restrict(viewer, Action.READ, HistoryPoint.objects.all())
    scope = {"cluster_id": cluster, "namespace": namespace, "application_id": application, "taken_at__gte": since}
    rows = rows.filter(**{name: value for name, value in scope.items() if value})
    return per_scan(history_rows(rows, policy=policy, severity=severity))


def trend_window() -> datetime:
    """Where the page's trend starts looking: twice its points' worth of scan periods back (it bounds the rows a
    trend reads; on-demand scans only add points)."""
    return timezone.now() - timedelta(seconds=2 * TREND_POINTS * settings.COMPLIANCE_SCAN_SECONDS)


class TrendPoint(TypedDict):
    taken_at: datetime
    passed: int
    failed: int
    score: float | None


def trend(points: QuerySet[HistoryPoint], limit: int = TREND_POINTS) -> list[TrendPoint]:
    """The newest ``limit`` snapshots of :func:`history`, oldest first, with their scores."""
    newest = list(points[:limit])
    return [
        {
            "taken_at": p["taken_at"],  # type: ignore[index]
            "passed": int(p["n_passed"]),  # type: ignore[index]
            "failed": int(p["n_failed"]),  # type: ignore[index]
            "score": score(int(p["n_passed"]), int(p["n_failed"])),  # type: ignore[index]
        }
        for p in reversed(newest)
    ]


def sparkline(points: list[TrendPoint], width: int = 160, height: int = 32) -> str:
    """SVG polyline points of the trend's scores (0 to 100 % from bottom to top); "" with fewer than one score."""
    scored = [p["score"] for p in points if p["score"] is not None]
    if not scored:
        return ""
    step = width / max(1, len(scored) - 1)
    return " ".join(
        f"{round(i * step, 1) if len(scored) > 1 else width / 2},{round(height - 1 - (height - 2) * s / 100, 1)}"
        for i, s in enumerate(scored)
    )


class ReleaseCounts(TypedDict):
    version: ApplicationVersion
    passed: int | None  # at the last scan while this version was the newest; None: no scan then
    failed: int | None
    score: float | None
    failed_change: int | None  # against the previous (older) version's


def releases(viewer: Any, application: Application) -> list[ReleaseCounts]:
    """The application's newest versions (rollouts), newest first, each with its counts at the last scan taken
    while it was the newest, and how its failures compare with the version before."""
    versions = list(
        restrict(viewer, Action.READ, ApplicationVersion.objects.filter(application=application)).order_by(
            "-observed_at", "-id"
        )[: VERSIONS_SHOWN + 1]
    )
    if not versions:
        return []
    snapshots = (
        restrict(viewer, Action.READ, HistoryPoint.objects.filter(application=application, version__in=versions))
        .filter(policy=TOTAL, severity=TOTAL)
        .order_by()
        .values("version_id", "taken_at")
        .annotate(**HISTORY_SUMS)
        .order_by("version_id", "-taken_at")
        .values_list("version_id", "n_passed", "n_failed")  # type: ignore[misc]  # the sums are annotations
    )
    last: dict[int, tuple[int, int]] = {}
    for version_id, passed, failed in snapshots:
        last.setdefault(version_id, (int(passed), int(failed)))
    found: list[ReleaseCounts] = []
    for index, version in enumerate(versions[:VERSIONS_SHOWN]):
        counts = last.get(version.pk)
        older = last.get(versions[index + 1].pk) if index + 1 < len(versions) else None
        found.append(
            {
                "version": version,
                "passed": counts[0] if counts else None,
                "failed": counts[1] if counts else None,
                "score": score(*counts) if counts else None,
                "failed_change": counts[1] - older[1] if counts and older else None,
            }
        )
    return found


def current_release(viewer: Any, application: Application) -> ApplicationVersion | None:
    """The application's newest version (its latest rollout), if the viewer may read it."""
    versions = restrict(viewer, Action.READ, ApplicationVersion.objects.filter(application=application))
    return versions.order_by("-observed_at", "-id").first()


def new_since_release(rows: QuerySet[Result], version: ApplicationVersion) -> QuerySet[Result]:
    """The failures among ``rows`` that began with ``version``'s rollout or after it (see ``RELEASE_GRACE``)."""
    return rows.filter(
        application_id=version.application_id,
        status=ResultStatus.FAIL,
        since__gte=version.observed_at - RELEASE_GRACE,
    )
