"""Reads for the cron pages and API: every query is restricted to what the viewer may read.

The jobs list shows each job with its latest run (a correlated subquery over the viewer's restricted runs) and
a sparkline of its recent durations (one query for the whole page); a job's page reads its runs, one run its
attempts and, for a Kubernetes Job target, the pods the watcher saw for that Job (``job-name`` label). ICC's
own periodic work comes from Celery beat's schedule and the last runs :func:`apps.core.tasking.task_runs` kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import F, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import RowNumber

from apps.clusters.models import Application, Cluster, Pod
from apps.core.access import GLOBAL, Action, can_at, restrict
from apps.core.tasking import task_runs
from apps.cron import schedule
from apps.cron.models import Attempt, Job, Run, RunState

SPARKLINE_RUNS = 20
SPARK_WIDTH, SPARK_HEIGHT = 100, 20


def _latest_runs(viewer: Any) -> QuerySet[Run]:
    """The viewer's runs that started or finished (scheduled ones have no outcome yet), newest first."""
    return (
        restrict(viewer, Action.READ, Run.objects.all())
        .exclude(state=RunState.SCHEDULED)
        .filter(job=OuterRef("pk"))
        .order_by("-slot", "-id")
    )


def jobs(
    viewer: Any,
    *,
    search: str = "",
    state: str = "",
    target_kind: str = "",
    application: int | None = None,
    suspended: bool | None = None,
) -> QuerySet[Job]:
    """The jobs the viewer may read, each with the fields of its latest run (``last_*``)."""
    latest = _latest_runs(viewer)
    rows = (
        restrict(viewer, Action.READ, Job.objects.all())
        .select_related("application__cluster", "cluster")
        .annotate(
            last_state=Subquery(latest.values("state")[:1]),
            last_slot=Subquery(latest.values("slot")[:1]),
            last_duration_ms=Subquery(latest.values("duration_ms")[:1]),
        )
        .order_by("name", "id")
    )
    if search:
        rows = rows.filter(
            Q(name__icontains=search) | Q(description__icontains=search) | Q(application__name__icontains=search)
        )
    if state == "never":
        rows = rows.filter(last_state__isnull=True)
    elif state:
        rows = rows.filter(last_state=state)
    if target_kind:
        rows = rows.filter(target_kind=target_kind)
    if application:
        rows = rows.filter(application_id=application)
    if suspended is not None:
        rows = rows.filter(suspended=suspended)
    return rows


def job(viewer: Any, pk: int) -> Job | None:
    return (
        restrict(viewer, Action.READ, Job.objects.select_related("application__cluster", "cluster", "created_by"))
        .filter(pk=pk)
        .first()
    )


def runs(viewer: Any, job: Job) -> QuerySet[Run]:
    """The run timeline of ``job``, newest slot first."""
    return restrict(viewer, Action.READ, Run.objects.filter(job=job)).select_related("requested_by")


def all_runs(viewer: Any) -> QuerySet[Run]:
    return restrict(viewer, Action.READ, Run.objects.all()).select_related("requested_by")


def run(viewer: Any, job: Job, pk: int) -> Run | None:
    return runs(viewer, job).filter(pk=pk).first()


def attempts(viewer: Any, run: Run) -> list[Attempt]:
    return list(restrict(viewer, Action.READ, Attempt.objects.filter(run=run)).order_by("number"))


def run_pods(viewer: Any, job: Job, run: Run) -> list[Pod]:
    """The pods of a Kubernetes Job target's run, as the watcher observed them (Kubernetes labels a Job's pods
    with ``job-name``)."""
    if not run.kube_job or job.cluster_id is None:
        return []
    pods = Pod.objects.filter(
        cluster_id=job.cluster_id, namespace=job.namespace, labels__contains={"job-name": run.kube_job}
    )
    return list(restrict(viewer, Action.READ, pods).order_by("name"))


def applications(viewer: Any) -> QuerySet[Application]:
    """Applications a job may belong to, for the filters and the editor."""
    return restrict(viewer, Action.READ, Application.objects.select_related("cluster")).order_by(
        "cluster__name", "namespace", "name"
    )


def clusters(viewer: Any) -> QuerySet[Cluster]:
    return restrict(viewer, Action.READ, Cluster.objects.all()).order_by("name")


# --- what the list shows beside each job ------------------------------------------------------------------------


def sparkline_points(durations: list[int]) -> str:
    """SVG polyline points of ``durations`` (oldest first) scaled into SPARK_WIDTH x SPARK_HEIGHT."""
    if not durations:
        return ""
    top = max(durations) or 1
    step = SPARK_WIDTH / max(1, len(durations) - 1)
    points = []
    for i, value in enumerate(durations):
        x = round(i * step, 1) if len(durations) > 1 else SPARK_WIDTH / 2
        y = round(SPARK_HEIGHT - 1 - (SPARK_HEIGHT - 2) * value / top, 1)
        points.append(f"{x},{y}")
    return " ".join(points)


def recent_durations(viewer: Any, job_ids: list[int], *, per_job: int = SPARKLINE_RUNS) -> dict[int, list[int]]:
    """The durations of each job's last ``per_job`` finished runs, oldest first (one query for all jobs)."""
    if not job_ids:
        return {}
    ranked = (
        restrict(viewer, Action.READ, Run.objects.filter(job_id__in=job_ids, duration_ms__isnull=False))
        .annotate(rank=Window(RowNumber(), partition_by=[F("job_id")], order_by=[F("slot").desc(), F("id").desc()]))
        .filter(rank__lte=per_job)
        .values_list("job_id", "duration_ms", "slot")
    )
    found: dict[int, list[tuple[datetime, int]]] = {}
    for job_id, duration, slot in ranked:
        found.setdefault(job_id, []).append((slot, int(duration or 0)))
    return {pk: [d for _, d in sorted(rows)] for pk, rows in found.items()}


def next_run_local(job: Job) -> datetime | None:
    """When the job fires next, in its own time zone (the UTC instant is ``job.next_due_at``)."""
    if job.next_due_at is None:
        return None
    return job.next_due_at.astimezone(ZoneInfo(job.timezone))


def local_text(moment: datetime | None) -> str:
    """``moment`` as written in its own zone (templates would convert it to the viewer's zone)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z") if moment is not None else ""


def decorate(viewer: Any, rows: list[Job]) -> list[Job]:
    """Add what each row of the list shows beside the job's fields: the schedule in words, the next run in the
    job's zone and the duration sparkline."""
    durations = recent_durations(viewer, [j.pk for j in rows])
    for row in rows:
        row.schedule_words = schedule.explain(row.schedule)  # type: ignore[attr-defined]
        row.next_local = local_text(next_run_local(row))  # type: ignore[attr-defined]
        series = durations.get(row.pk, [])
        row.spark_points = sparkline_points(series)  # type: ignore[attr-defined]
        row.spark_max_ms = max(series) if series else None  # type: ignore[attr-defined]
    return rows


# --- ICC's own periodic work ---------------------------------------------------------------------------------------


@dataclass
class SystemJob:
    name: str
    task: str
    schedule: str  # in words
    expression: str  # the cron expression or the interval
    last_runs: list[dict[str, Any]] = field(default_factory=list)


def _celery_schedule(entry: Any) -> tuple[str, str]:
    """(expression, words) of a beat entry's schedule: an interval in seconds or a crontab."""
    if isinstance(entry, (int, float)):
        seconds = float(entry)
        return f"{seconds:g} s", f"Every {seconds:g} seconds"
    if isinstance(entry, timedelta):
        return f"{entry.total_seconds():g} s", f"Every {entry.total_seconds():g} seconds"
    run_every = getattr(entry, "run_every", None)
    parts = [getattr(entry, f"_orig_{name}", None) for name in ("minute", "hour", "day_of_month", "month_of_year")]
    weekday = getattr(entry, "_orig_day_of_week", None)
    if all(p is not None for p in parts) and weekday is not None:
        expression = " ".join(str(p) for p in (*parts, weekday))
        return expression, schedule.explain(expression)
    if isinstance(run_every, timedelta):
        return f"{run_every.total_seconds():g} s", f"Every {run_every.total_seconds():g} seconds"
    return str(entry), str(entry)


def system_jobs(viewer: Any) -> list[SystemJob]:
    """Celery beat's schedule (ICC's own periodic work) with each task's last runs, for global readers only."""
    if not can_at(viewer, Action.READ, GLOBAL):
        return []
    from celery import current_app

    out = []
    for name, entry in sorted((current_app.conf.beat_schedule or {}).items()):
        task = str(entry.get("task", name))
        expression, words = _celery_schedule(entry.get("schedule"))
        runs = [
            {**r, "at": datetime.fromtimestamp(float(r.get("at") or 0), UTC)}
            for r in task_runs(task)
            if isinstance(r.get("at"), (int, float))
        ]
        out.append(SystemJob(name=name, task=task, schedule=words, expression=expression, last_runs=runs))
    return out
