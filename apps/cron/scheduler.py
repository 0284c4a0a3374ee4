"""The scheduler: turns due slots into run rows and hands them to workers at their due time.

Exactly once per slot without trusting a single leader: every scheduler replica inserts the run rows of the
due slots with ``INSERT ... ON CONFLICT (job_id, slot) DO NOTHING RETURNING id`` — only the replica whose insert
won hands the run to a worker — and moves the job's ``next_slot_at`` forward by compare-and-swap. Workers
claim a run by compare-and-swap too (:mod:`apps.cron.execution`), so a run handed out twice still runs once.

The loop sleeps until the earliest due time (woken early when jobs change, :mod:`apps.cron.services.wake`),
materialises slots ``LEAD`` ahead so the inserts are done when the slot comes, and sends each run at its due
time. Every few seconds it re-sends runs a worker never took or whose claim expired (a killed worker), marks
late runs, and trims run history to each job's limits.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Min, Q

from apps.cron import events, kube_target, metrics, schedule, signals
from apps.cron.batch import BATCH_SIZE, EARLY
from apps.cron.models import FINISHED_STATES, CatchUp, Job, Run, RunState, SkipReason
from apps.cron.services import wake

logger = logging.getLogger(__name__)

LEAD = timedelta(seconds=2)  # materialise this far ahead of the due time
SCAN_LIMIT = 100_000  # slots enumerated per job and pass (a per-second job down for a day stays bounded)
SKIP_ROWS_LIMIT = 100  # skipped catch-up slots recorded per pass (the count is in the reason)
WARN_MISSED = 100
REDISPATCH_AFTER = timedelta(seconds=30)
HOUSEKEEPING_SECONDS = 5.0
PRUNE_SECONDS = 60.0


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(order=True)
class Pending:
    due_at: datetime
    run_id: int = field(compare=False)


def _missed_after() -> timedelta:
    return timedelta(seconds=settings.CRON_MISSED_AFTER_SECONDS)


def _plan(job: Job, now: datetime, horizon: datetime) -> tuple[list[tuple[datetime, str]], datetime | None, int]:
    """The slots of ``job`` due by ``horizon``, each with "" (run) or a skip note, the next slot after them,
    and how many were missed. Rule: a slot due more than CRON_MISSED_AFTER_SECONDS ago was missed (the
    scheduler was down); the job's catch-up policy decides which missed slots still run."""
    assert job.next_slot_at is not None
    slots = [job.next_slot_at]
    for slot in schedule.slots_after(job.schedule, job.timezone, job.next_slot_at):
        if job.due_at(slot) > horizon or len(slots) >= SCAN_LIMIT:
            following = slot
            break
        slots.append(slot)
    else:  # pragma: no cover - slots_after never ends
        following = None
    cutoff = now - _missed_after()
    missed = [s for s in slots if job.due_at(s) < cutoff]
    on_time = slots[len(missed) :]
    if len(missed) > WARN_MISSED:
        logger.warning("cron job %s (%s) missed %d slots while the scheduler was down", job.pk, job.name, len(missed))
    if job.catch_up == CatchUp.SKIP:
        keep = 0
    elif job.catch_up == CatchUp.LATEST:
        keep = 1
    else:
        keep = job.catch_up_limit
    run_missed = missed[len(missed) - keep :] if keep else []
    skipped = missed[: len(missed) - len(run_missed)]
    note = f"missed while the scheduler was down ({len(missed)} missed; catch-up: {job.catch_up})"
    plan = [(s, note) for s in skipped[-SKIP_ROWS_LIMIT:]] + [(s, "") for s in run_missed + on_time]
    return plan, following, len(missed)


def _insert(rows: list[tuple[Any, ...]]) -> list[tuple[int, datetime, str]]:
    """Insert run rows, ignoring slots another scheduler already inserted; returns (id, due_at, state) of ours."""
    if not rows:
        return []
    adapt = connection.ops.adapt_datetimefield_value
    columns = (
        "(job_id, slot, due_at, not_before, state, skip_reason, reason, manual, attempts, late, kube_job, "
        "claimed_by, created_at, finished_at)"
    )
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, FALSE, 0, FALSE, '', '', %s, %s)"] * len(rows))
    params: list[Any] = []
    for job_id, slot, due_at, state, skip_reason, reason, now in rows:
        finished = adapt(now) if state == RunState.SKIPPED else None
        params += [
            job_id,
            adapt(slot),
            adapt(due_at),
            adapt(due_at),
            str(state),
            str(skip_reason),
            reason,
            adapt(now),
            finished,
        ]
    sql = (
        f"INSERT INTO cron_run {columns} VALUES {values} "  # noqa: S608 - placeholders only
        "ON CONFLICT (job_id, slot) DO NOTHING RETURNING id, due_at, state"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    convert = _datetime_converter()
    return [(int(pk), convert(due), str(state)) for pk, due, state in fetched]


def _datetime_converter() -> Any:
    if connection.vendor == "sqlite":
        from django.utils.dateparse import parse_datetime

        def parse(value: Any) -> datetime:
            if isinstance(value, datetime):
                return value if value.tzinfo else value.replace(tzinfo=UTC)
            parsed = parse_datetime(str(value))
            assert parsed is not None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

        return parse
    return lambda value: value


def materialize(now: datetime | None = None, *, lead: timedelta = LEAD) -> list[Pending]:
    """Insert the runs of every slot due by ``now + lead``; returns the runs this call inserted to start."""
    now = now or utcnow()
    horizon = now + lead
    pending: list[Pending] = []
    jobs = list(Job.objects.filter(suspended=False, next_due_at__lte=horizon).order_by("next_due_at")[:5000])
    if not jobs:
        return pending
    rows: list[tuple[Any, ...]] = []
    moves: list[tuple[Job, datetime | None]] = []
    warnings: list[tuple[Job, int]] = []
    for job in jobs:
        plan, following, missed = _plan(job, now, horizon)
        for slot, note in plan:
            state, reason = (RunState.SKIPPED, SkipReason.CATCH_UP) if note else (RunState.SCHEDULED, "")
            rows.append((job.pk, slot, job.due_at(slot), state, reason, note, now))
        moves.append((job, following))
        if missed > WARN_MISSED:
            warnings.append((job, missed))
    with transaction.atomic():
        inserted = []
        for start in range(0, len(rows), 500):
            inserted += _insert(rows[start : start + 500])
        for job, following in moves:
            due = job.due_at(following) if following else None
            Job.objects.filter(pk=job.pk, next_slot_at=job.next_slot_at).update(next_slot_at=following, next_due_at=due)
    for job, missed in warnings:
        _warn_missed(job, missed)
    metrics.SCHEDULED.inc(len(inserted))
    pending = [Pending(due, pk) for pk, due, state in inserted if state == RunState.SCHEDULED]
    if inserted:
        events.runs_changed([job.pk for job in jobs], "scheduled")
    return pending


def _warn_missed(job: Job, missed: int) -> None:
    from apps.core.events import dashboard_changed

    dashboard_changed(f"cron job {job.name} missed {missed} slots")


def dispatch(run_ids: list[int]) -> None:
    """Hand runs to the cron workers now, in batches (:mod:`apps.cron.batch`: the workers fire each at its due
    time)."""
    if not run_ids:
        return
    from apps.cron.tasks import execute_batch

    Run.objects.filter(pk__in=run_ids).update(dispatched_at=utcnow())
    for start in range(0, len(run_ids), BATCH_SIZE):
        execute_batch.apply_async(args=[run_ids[start : start + BATCH_SIZE]], queue="cron")


def redispatch(now: datetime | None = None) -> list[int]:
    """Runs a worker should have taken by now: scheduled and due but never (or long ago) handed out, or
    running under a claim that expired (its worker died) and not re-sent since, or re-sent long ago. The claim's
    compare-and-swap keeps them single."""
    now = now or utcnow()
    stale = now - REDISPATCH_AFTER
    lost = Q(state=RunState.SCHEDULED, not_before__lte=now - timedelta(seconds=2)) & (
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale)
    )
    # Re-sent once the claim expired, and again whenever that re-send is itself stale (its task was lost too:
    # a worker killed holding it, a broker restart), or the run would stay running until the broker's visibility
    # timeout gave the message back.
    expired = Q(state=RunState.RUNNING, claim_expires_at__lt=now) & (
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=F("claim_expires_at")) | Q(dispatched_at__lt=stale)
    )
    ids = list(Run.objects.filter(lost | expired).order_by("due_at").values_list("id", flat=True)[:1000])
    if ids:
        logger.info("re-dispatching %d cron runs (lost or with an expired claim)", len(ids))
        dispatch(ids)
    return ids


def mark_late(now: datetime | None = None) -> int:
    """Rule: a run not started within its job's grace period after its due time, or not finished within grace
    after its timeout, is late; it is marked once and ``run_late`` sent."""
    now = now or utcnow()
    marked = 0
    candidates = Run.objects.filter(late=False, state__in=(RunState.SCHEDULED, RunState.RUNNING)).select_related("job")
    for run in candidates.filter(due_at__lt=now)[:1000]:
        job = run.job
        if run.state == RunState.SCHEDULED:
            late, what = run.due_at + timedelta(seconds=job.grace_seconds) < now, "start"
        else:
            limit = (run.started_at or run.due_at) + timedelta(seconds=job.timeout_seconds + job.grace_seconds)
            late, what = limit < now, "finish"
        if late and Run.objects.filter(pk=run.pk, late=False).update(late=True):
            marked += 1
            metrics.LATE.labels(what=what).inc()
            signals.run_late.send(sender=Run, run=run, job=job, what=what)
    return marked


def prune() -> int:
    """Trim each job's finished runs to its history limits (succeeded, and everything else)."""
    finished = [str(s) for s in FINISHED_STATES]
    placeholders = ", ".join(["%s"] * len(finished))
    sql = f"""
        DELETE FROM cron_run WHERE id IN (
            SELECT id FROM (
                SELECT r.id, r.state, j.keep_succeeded, j.keep_failed,
                       ROW_NUMBER() OVER (
                           PARTITION BY r.job_id, CASE WHEN r.state = 'succeeded' THEN 1 ELSE 0 END
                           ORDER BY r.slot DESC, r.id DESC) AS position
                FROM cron_run r JOIN cron_job j ON j.id = r.job_id
                WHERE r.state IN ({placeholders})
            ) ranked
            WHERE (ranked.state = 'succeeded' AND ranked.position > ranked.keep_succeeded)
               OR (ranked.state <> 'succeeded' AND ranked.position > ranked.keep_failed)
        )"""  # noqa: S608 - placeholders only
    with connection.cursor() as cursor:
        cursor.execute(sql, finished)
        return int(cursor.rowcount or 0)


def next_wake(now: datetime) -> datetime | None:
    earliest: datetime | None = Job.objects.filter(suspended=False).aggregate(at=Min("next_due_at"))["at"]
    return earliest - LEAD if earliest else None


class Scheduler:
    """One scheduler loop (run as many as you like: see the module docstring)."""

    def __init__(self, *, name: str = "cron-scheduler") -> None:
        self.name = name
        self.stop_event = threading.Event()
        self.pending: list[Pending] = []
        self._housekeeping_at = 0.0
        self._pruned_at = 0.0

    def step(self) -> float:
        """One pass; returns how long to sleep before the next."""
        now = utcnow()
        for item in materialize(now):
            heapq.heappush(self.pending, item)
        due: list[int] = []
        while self.pending and self.pending[0].due_at <= utcnow() + EARLY:
            due.append(heapq.heappop(self.pending).run_id)
        dispatch(due)
        clock = time.monotonic()
        if clock - self._housekeeping_at >= HOUSEKEEPING_SECONDS:
            self._housekeeping_at = clock
            redispatch()
            mark_late()
            kube_target.expire_overdue()
        if clock - self._pruned_at >= PRUNE_SECONDS:
            self._pruned_at = clock
            prune()
        now = utcnow()
        candidates = [now + timedelta(seconds=settings.CRON_MAX_SLEEP_SECONDS)]
        if self.pending:
            candidates.append(self.pending[0].due_at - EARLY)
        upcoming = next_wake(now)
        if upcoming is not None:
            candidates.append(upcoming)
        sleep = max(0.0, (min(candidates) - utcnow()).total_seconds())
        sleep = min(sleep, max(0.0, HOUSEKEEPING_SECONDS - (time.monotonic() - self._housekeeping_at)))
        metrics.SCHEDULER_SLEEP.set(sleep)
        return sleep

    def run(self) -> None:
        listener = threading.Thread(target=wake.listen, args=(self.stop_event,), name=f"{self.name}-wake", daemon=True)
        listener.start()
        logger.info("cron scheduler %s started", self.name)
        while not self.stop_event.is_set():
            try:
                close_old_connections()
                sleep = self.step()
            except Exception:  # a database hiccup must not end the loop
                logger.exception("cron scheduler pass failed; retrying in 1 s")
                sleep = 1.0
            if sleep > 0 and wake.event.wait(sleep):
                wake.event.clear()
        self.hand_over()
        close_old_connections()
        logger.info("cron scheduler %s stopped", self.name)

    def hand_over(self) -> None:
        """On the way out: the runs this scheduler inserted but has not sent yet go to the workers now (they wait
        for each run's due time), so a restart makes no run late."""
        pending = [heapq.heappop(self.pending).run_id for _ in range(len(self.pending))]
        try:
            dispatch(pending)
        except Exception:  # the reaper of another replica (or of the next start) re-sends them
            logger.exception("could not hand over %d pending cron runs", len(pending))

    def stop(self) -> None:
        self.stop_event.set()
        wake.event.set()


_embedded: dict[str, Any] = {}


def start_embedded() -> None:
    scheduler = Scheduler(name="cron-scheduler-embedded")
    thread = threading.Thread(target=scheduler.run, name="icc-cron-scheduler", daemon=True)
    thread.start()
    _embedded.update(scheduler=scheduler, thread=thread)


def stop_embedded() -> None:
    if _embedded:
        _embedded["scheduler"].stop()
        _embedded["thread"].join(10)
        _embedded.clear()
