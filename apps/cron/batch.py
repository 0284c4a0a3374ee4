"""The fast path for runs due together (hundreds of jobs at ``0 * * * *``): claimed in bulk ahead of time, fired
concurrently at their due time, recorded in one transaction.

The scheduler hands out runs in batches ``EARLY`` before they are due. A worker claims every plain run of the
batch — an HTTP job with concurrency ``allow``, not suspended, without a starting deadline — with one
compare-and-swap ``UPDATE … WHERE state = 'scheduled'`` per distinct timeout (the same rule as a single claim:
a run another worker took is not taken), creates the attempts in one insert, prepares each request, waits until
each run is due and then fires all calls at once from a thread pool over kept-alive connections. Results are
recorded with the claim token compared, as a single claim's are. Runs that need the per-run rules
(``forbid``/``replace``, a deadline, a Kubernetes Job, a suspended job) go to :func:`execution.execute_once` at
their due time.

Difference from a single run: an operator's cancel of an in-flight batch call takes effect when the call ends
(the call is not abandoned); the run keeps the cancelled state either way.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F

from apps.cron import events, metrics, signals
from apps.cron.execution import CLAIM_MARGIN, _call, backoff, new_pool, record_attempt, request_headers
from apps.cron.models import Attempt, Concurrency, Job, Run, RunState, TargetKind
from apps.cron.outcomes import Outcome

EARLY = timedelta(seconds=1)  # batches reach workers this long before they are due
BATCH_SIZE = 20
_local = threading.local()
_pool = ThreadPoolExecutor(max_workers=128, thread_name_prefix="icc-cron-batch")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _connections() -> Any:
    """This thread's kept-alive connections (a receiver's connection is reused from call to call)."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = new_pool()
    return pool


@dataclass
class Fired:
    run: Run
    attempt: Attempt
    outcome: Outcome
    fired_at: datetime
    finished_at: datetime


def claim_plain(run_ids: list[int], worker: str) -> tuple[uuid.UUID, list[Run], list[int]]:
    """Claim the plain runs of ``run_ids`` in bulk; returns the token, the claimed runs (with their jobs) and the
    ids left for the per-run path."""
    now = utcnow()
    token = uuid.uuid4()
    plain = Run.objects.filter(
        pk__in=run_ids,
        state=RunState.SCHEDULED,
        not_before__lte=now + EARLY,
        job__target_kind=TargetKind.HTTP,
        job__concurrency=Concurrency.ALLOW,
        job__suspended=False,
        job__starting_deadline_seconds__isnull=True,
    )
    by_timeout: dict[int, list[int]] = defaultdict(list)
    for pk, timeout in plain.values_list("pk", "job__timeout_seconds"):
        by_timeout[timeout].append(pk)
    for timeout, ids in by_timeout.items():
        Run.objects.filter(pk__in=ids, state=RunState.SCHEDULED).update(
            state=RunState.RUNNING,
            claim_token=token,
            claimed_by=worker[:200],
            claim_expires_at=now + EARLY + timedelta(seconds=timeout) + CLAIM_MARGIN,
            attempts=F("attempts") + 1,
        )
    claimed = list(Run.objects.filter(pk__in=run_ids, claim_token=token).select_related("job"))
    taken = {run.pk for run in claimed}
    return token, claimed, [pk for pk in run_ids if pk not in taken]


def _fire(run: Run, job: Job, attempt: int) -> tuple[Outcome, datetime, datetime]:
    body = job.http_body.encode()
    headers = request_headers(job, run, attempt, body)
    wait = (run.due_at - utcnow()).total_seconds()
    if wait > 0:
        time.sleep(wait)
    fired = utcnow()
    outcome = _call(_connections(), job, headers, body)
    return outcome, fired, utcnow()


def execute_batch(run_ids: list[int], worker: str) -> tuple[list[int], list[tuple[int, float]]]:
    """Claim, fire and record the plain runs of a batch; returns the ids left for the per-run path and the
    runs to retry with their delays."""
    token, claimed, rest = claim_plain(run_ids, worker)
    if not claimed:
        return rest, []
    now = utcnow()
    attempts = Attempt.objects.bulk_create(
        [Attempt(run=run, number=run.attempts, worker=worker[:200], started_at=now) for run in claimed]
    )
    wait = (min(run.due_at for run in claimed) - utcnow()).total_seconds()
    if wait > 0:  # the requests wait in this thread, not in the pool's
        time.sleep(wait)
    futures = {
        _pool.submit(_fire, run, run.job, attempt.number): (run, attempt)
        for run, attempt in zip(claimed, attempts, strict=True)
    }
    retries: list[tuple[int, float]] = []
    for future in as_completed(futures):  # each recorded as soon as it is done: a hung call delays no other
        run, attempt = futures[future]
        try:
            outcome, at, done = future.result()
        except Exception as exc:  # a bug in one call must not lose the others' results
            outcome, at, done = Outcome(RunState.FAILED, error=f"internal error: {type(exc).__name__}"), now, utcnow()
        retries += record(token, [Fired(run, attempt, outcome, at, done)])
    return rest, retries


def _announce_failed(failed: list[tuple[Run, Job]]) -> None:
    for run, job in failed:
        signals.run_failed.send(sender=Run, run=run, job=job)


def record(token: uuid.UUID, fired: list[Fired]) -> list[tuple[int, float]]:
    """Record every fired call's attempt and run in one transaction (claim token compared); returns retries."""
    retries: list[tuple[int, float]] = []
    failed_runs: list[tuple[Run, Job]] = []
    with transaction.atomic():
        for item in fired:
            run, job, outcome = item.run, item.run.job, item.outcome
            duration = max(0, int((item.finished_at - item.fired_at).total_seconds() * 1000))
            first = run.started_at is None
            started = run.started_at or item.fired_at
            live = Run.objects.filter(pk=run.pk, claim_token=token, state=RunState.RUNNING)
            failed = outcome.state in (RunState.FAILED, RunState.TIMED_OUT)
            common: dict[str, Any] = {"started_at": started}
            if first:
                lateness = max(0.0, (item.fired_at - run.due_at).total_seconds())
                common["lateness_ms"] = int(lateness * 1000)
                metrics.LATENESS.labels(target=job.target_kind).observe(lateness)
            if failed and run.attempts < job.max_attempts:
                delay = backoff(job, run.attempts)
                updated = live.update(
                    state=RunState.SCHEDULED,
                    claim_token=None,
                    claim_expires_at=None,
                    not_before=item.finished_at + timedelta(seconds=delay),
                    reason=f"attempt {run.attempts} {outcome.state}: {outcome.error}"[:300],
                    dispatched_at=item.finished_at,
                    **common,
                )
                if updated:
                    retries.append((run.pk, delay))
            else:
                total = int((item.finished_at - started).total_seconds() * 1000)
                updated = live.update(
                    state=outcome.state,
                    finished_at=item.finished_at,
                    duration_ms=total,
                    claim_expires_at=None,
                    reason=outcome.error[:300],
                    **common,
                )
                if updated:
                    metrics.RUNS.labels(state=outcome.state).inc()
                    if failed:
                        failed_runs.append((run, job))
            state = outcome.state if updated else RunState.CANCELLED
            record_attempt(
                item.attempt, job, outcome, state, duration, finished_at=item.finished_at, started_at=item.fired_at
            )
        job_ids = sorted({item.run.job_id for item in fired})
        transaction.on_commit(lambda: events.runs_changed(job_ids))
        if failed_runs:
            transaction.on_commit(lambda: _announce_failed(failed_runs))
    return retries
