"""Running one run: claim it by compare-and-swap, apply the job's rules, call the target, record the attempt.

A claim is a token written on the run (state running, ``claim_expires_at`` = now + timeout + margin) under
a lock on the job's row, which serialises the concurrency rules (``forbid`` skips, ``replace`` cancels the
running one). Finishing compares the token too: a run cancelled or re-claimed meanwhile keeps its new state,
and the late attempt is recorded as cancelled. A worker killed mid-run leaves its claim to expire; the
scheduler re-sends the run and the next claim retries it under the same idempotency key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import random
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from django.db import transaction

from apps.core import calendar, outbound
from apps.cron import events, metrics, signals
from apps.cron.models import Attempt, FreezePolicy, Job, Run, RunState, SkipReason, TargetKind, slot_text
from apps.cron.outcomes import Claim, Outcome
from apps.cron.services.jobs import secret_headers, signing_secret

logger = logging.getLogger(__name__)

CLAIM_MARGIN = timedelta(seconds=10)
KUBE_CLAIM_MARGIN = timedelta(seconds=120)  # a Job's completion arrives through the watcher
BODY_EXCERPT = 2048
MAX_RESPONSE_HEADERS = 30
CANCEL_POLL_SECONDS = 0.5
SIGNATURE_HEADER = "X-ICC-Signature"
_pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="icc-cron-http")


def utcnow() -> datetime:
    return datetime.now(UTC)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _skip(run: Run, reason: str, note: str) -> None:
    now = utcnow()
    Run.objects.filter(pk=run.pk).update(state=RunState.SKIPPED, skip_reason=reason, reason=note[:300], finished_at=now)
    metrics.RUNS.labels(state=RunState.SKIPPED).inc()


def _held(job: Job, run: Run, now: datetime) -> bool:
    """Rule: a scheduled run is skipped while its job is suspended, or inside a change freeze covering the job
    when its freeze policy is ``skip`` (the freeze's end and reason are the run's reason). Manual runs are not."""
    if run.manual:
        return False
    if job.suspended:
        _skip(run, SkipReason.SUSPENDED, "the job was suspended")
        return True
    window = calendar.frozen(job.freeze_scope(), now) if job.freeze_policy == FreezePolicy.SKIP else None
    if window is not None:
        _skip(run, SkipReason.FREEZE, f"change freeze until {window.ends:%Y-%m-%d %H:%M}Z: {window.reason}")
        return True
    return False


def _cancel_others(job: Job, run: Run, now: datetime) -> list[Run]:
    running = list(Run.objects.select_for_update().filter(job=job, state=RunState.RUNNING).exclude(pk=run.pk))
    for other in running:
        other.state = RunState.CANCELLED
        Run.objects.filter(pk=other.pk).update(
            state=RunState.CANCELLED, reason=f"replaced by the run of {run.slot:%Y-%m-%d %H:%M:%S}Z", finished_at=now
        )
        metrics.RUNS.labels(state=RunState.CANCELLED).inc()
    return running


def claim(run_id: int, worker: str) -> Claim | None:
    """Take the run if it is ours to take (see the module docstring); None when it is not."""
    with transaction.atomic():
        run = Run.objects.filter(pk=run_id).first()
        if run is None:
            return None
        job = Job.objects.select_for_update().get(pk=run.job_id)
        run = Run.objects.select_for_update().get(pk=run_id)
        now = utcnow()
        reclaim = run.state == RunState.RUNNING and run.claim_expires_at is not None and run.claim_expires_at < now
        if not ((run.state == RunState.SCHEDULED and run.not_before <= now + timedelta(milliseconds=50)) or reclaim):
            return None
        first = run.attempts == 0
        if first and run.state == RunState.SCHEDULED:
            if _held(job, run, now):
                return None
            deadline = job.starting_deadline_seconds
            if deadline is not None and not run.manual and now > run.due_at + timedelta(seconds=deadline):
                _skip(run, SkipReason.DEADLINE, f"not started within the starting deadline of {deadline} s")
                return None
            others = Run.objects.filter(job=job, state=RunState.RUNNING).exclude(pk=run.pk)
            if job.concurrency == "forbid" and others.exists():
                _skip(run, SkipReason.CONCURRENCY, "another run of this job was still running (concurrency forbid)")
                return None
            if job.concurrency == "replace":
                replaced = _cancel_others(job, run, now)
                if replaced:
                    transaction.on_commit(lambda: _stop_replaced(job, replaced))
        margin = KUBE_CLAIM_MARGIN if job.target_kind == TargetKind.KUBERNETES else CLAIM_MARGIN
        token = uuid.uuid4()
        attempt_number = run.attempts + 1
        update: dict[str, Any] = {
            "state": RunState.RUNNING,
            "claim_token": token,
            "claimed_by": worker[:200],
            "claim_expires_at": now + timedelta(seconds=job.timeout_seconds) + margin,
            "attempts": attempt_number,
        }
        if run.started_at is None:
            update["started_at"] = now
            lateness = max(0.0, (now - run.due_at).total_seconds())
            update["lateness_ms"] = int(lateness * 1000)
            metrics.LATENESS.labels(target=job.target_kind).observe(lateness)
        Run.objects.filter(pk=run.pk).update(**update)
        for key, value in update.items():
            setattr(run, key, value)
        attempt = Attempt.objects.create(run=run, number=attempt_number, worker=worker[:200], started_at=now)
    return Claim(run, job, token, attempt)


def _stop_replaced(job: Job, replaced: list[Run]) -> None:
    if job.target_kind == TargetKind.KUBERNETES:
        from apps.cron import kube_target

        for other in replaced:
            kube_target.stop(job, other)
    events.runs_changed([job.pk], "cancel")


def record_attempt(
    attempt: Attempt,
    job: Job,
    outcome: Outcome,
    state: str,
    duration_ms: int,
    *,
    finished_at: datetime,
    started_at: datetime | None = None,
) -> None:
    """An attempt's end: its state (``cancelled`` when the run was no longer ours), answer and duration."""
    extra = {"started_at": started_at} if started_at is not None else {}
    Attempt.objects.filter(pk=attempt.pk).update(
        finished_at=finished_at,
        outcome=state,
        status_code=outcome.status_code,
        response_headers=outcome.headers,
        body_excerpt=outcome.body,
        error=outcome.error[:500],
        duration_ms=duration_ms,
        **extra,
    )
    metrics.DURATION.labels(target=job.target_kind).observe(duration_ms / 1000)


def due_times(run_ids: list[int]) -> list[tuple[int, datetime]]:
    return list(Run.objects.filter(pk__in=run_ids).values_list("pk", "due_at"))


def backoff(job: Job, attempt: int) -> float:
    """Rule: exponential backoff with equal jitter, capped: base·2^(n-1), between half and all of it."""
    delay = min(float(job.max_backoff_seconds), float(job.backoff_seconds) * 2 ** max(0, attempt - 1))
    return delay / 2 + random.random() * delay / 2  # noqa: S311 - jitter, not cryptography


def finish(claimed: Claim, outcome: Outcome) -> tuple[str, float | None]:
    """Record the attempt and the run's new state (a retry, or final); returns the run's state and, for a
    retry, in how many seconds it is due (the task enqueues it)."""
    run, job = claimed.run, claimed.job
    now = utcnow()
    duration = max(0, int((now - claimed.attempt.started_at).total_seconds() * 1000))
    retry_in: float | None = None
    with transaction.atomic():
        live = Run.objects.select_for_update().filter(pk=run.pk, claim_token=claimed.token, state=RunState.RUNNING)
        current = live.first()
        attempt_state = outcome.state if current is not None else RunState.CANCELLED
        record_attempt(claimed.attempt, job, outcome, attempt_state, duration, finished_at=now)
        if current is None:  # cancelled or re-claimed meanwhile: its new state stands
            return Run.objects.filter(pk=run.pk).values_list("state", flat=True).first() or RunState.CANCELLED, None
        failed = outcome.state in (RunState.FAILED, RunState.TIMED_OUT)
        if failed and current.attempts < job.max_attempts and job.target_kind == TargetKind.HTTP:
            retry_in = backoff(job, current.attempts)
            state = str(RunState.SCHEDULED)
            live.update(
                state=state,
                claim_token=None,
                claim_expires_at=None,
                not_before=now + timedelta(seconds=retry_in),
                reason=f"attempt {current.attempts} {outcome.state}: {outcome.error}"[:300],
                dispatched_at=now,
            )
        else:
            state = str(outcome.state)
            total = int((now - (current.started_at or now)).total_seconds() * 1000)
            live.update(
                state=state, finished_at=now, duration_ms=total, claim_expires_at=None, reason=outcome.error[:300]
            )
            metrics.RUNS.labels(state=state).inc()
            if failed:
                transaction.on_commit(lambda: signals.run_failed.send(sender=Run, run=current, job=job))
        transaction.on_commit(lambda: events.runs_changed([job.pk]))
    return state, retry_in


# --- HTTP target ------------------------------------------------------------------------------------------------


def signature(secret: bytes, timestamp: int, idempotency_key: str, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>.<idempotency key>.<body>">`` (receivers recompute it)."""
    message = f"{timestamp}.{idempotency_key}.".encode() + body
    return f"t={timestamp},v1={hmac.new(secret, message, hashlib.sha256).hexdigest()}"


def request_headers(job: Job, run: Run, attempt: int, body: bytes) -> dict[str, str]:
    key = job.idempotency_key(run.slot)
    headers = {**(job.http_headers or {}), **secret_headers(job)}
    headers.update(
        {
            "User-Agent": "icc-cron/1",
            "Idempotency-Key": key,
            "X-ICC-Job": str(job.pk),
            "X-ICC-Slot": slot_text(run.slot),
            "X-ICC-Attempt": str(attempt),
            SIGNATURE_HEADER: signature(signing_secret(job), int(time.time()), key, body),
        }
    )
    if body and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    return headers


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in text)


def new_pool() -> urllib3.PoolManager:
    """Connections for target calls: every one passes the outbound address policy when it connects (the address
    is checked again then: DNS may have changed since the job was saved); no proxies from the environment."""
    return outbound.guard_pool_manager(urllib3.PoolManager(num_pools=64, maxsize=8, retries=False))


def _call(pool: urllib3.PoolManager, job: Job, headers: dict[str, str], body: bytes) -> Outcome:
    timeout = urllib3.Timeout(connect=min(5.0, float(job.timeout_seconds)), read=float(job.timeout_seconds))
    try:
        response = pool.request(
            job.http_method,
            job.http_url,
            headers=headers,
            body=body or None,
            timeout=timeout,
            retries=False,
            redirect=False,
            preload_content=False,
        )
    except outbound.OutboundRefused as exc:
        return Outcome(RunState.FAILED, error=f"refused by the outbound address policy: {exc.message}")
    except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError):
        return Outcome(RunState.TIMED_OUT, error=f"no answer within {job.timeout_seconds} s")
    except urllib3.exceptions.HTTPError as exc:
        return Outcome(RunState.FAILED, error=f"connection failed: {type(exc).__name__}")
    try:
        excerpt = response.read(BODY_EXCERPT, decode_content=True) or b""
    except Exception:  # a body that breaks off still leaves the status
        excerpt = b""
    finally:
        if response.length_remaining is not None and response.length_remaining <= 65536:
            response.drain_conn()  # the connection is kept for the next call
        else:
            response.close()
    kept = {k: v[:200] for k, v in list(response.headers.items())[:MAX_RESPONSE_HEADERS] if k.lower() != "set-cookie"}
    ok = job.is_expected_status(response.status)
    return Outcome(
        RunState.SUCCEEDED if ok else RunState.FAILED,
        status_code=response.status,
        headers=kept,
        body=_printable(excerpt.decode("utf-8", errors="replace")),
        error="" if ok else f"unexpected status {response.status}",
    )


def _still_ours(claimed: Claim) -> bool:
    return Run.objects.filter(pk=claimed.run.pk, claim_token=claimed.token, state=RunState.RUNNING).exists()


def call_http(claimed: Claim) -> Outcome:
    """The HTTP call, abandoned when the run is cancelled meanwhile (``replace``, or an operator's cancel)."""
    job, run = claimed.job, claimed.run
    body = job.http_body.encode()
    headers = request_headers(job, run, claimed.attempt.number, body)
    pool = new_pool()
    started = time.monotonic()
    future = _pool.submit(_call, pool, job, headers, body)
    try:
        while True:
            try:
                return future.result(timeout=CANCEL_POLL_SECONDS)
            except FutureTimeout:
                if time.monotonic() - started > job.timeout_seconds + 1:
                    return Outcome(RunState.TIMED_OUT, error=f"no answer within {job.timeout_seconds} s")
                if not _still_ours(claimed):
                    return Outcome(RunState.CANCELLED, error="cancelled while the call was in flight")
    finally:
        if not future.done():
            pool.clear()  # closes the connection under the abandoned call


def execute_once(run_id: int, worker: str | None = None) -> tuple[str | None, float | None]:
    """Claim and run one run: its state afterwards (None when it was not ours to run) and, when it is to be
    retried, in how many seconds."""
    claimed = claim(run_id, worker or worker_name())
    if claimed is None:
        return None, None
    events.runs_changed([claimed.job.pk], "start")
    if claimed.job.target_kind == TargetKind.KUBERNETES:
        from apps.cron import kube_target

        outcome = kube_target.start(claimed)
        if outcome is None:
            return RunState.RUNNING, None  # the watcher reports the Job's completion
        return finish(claimed, outcome)
    return finish(claimed, call_http(claimed))


def execute(run_id: int, worker: str | None = None) -> str | None:
    """:func:`execute_once` without the retry delay (tests and callers that re-send runs themselves)."""
    return execute_once(run_id, worker)[0]
