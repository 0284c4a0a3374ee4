"""The cron core on real PostgreSQL and a real HTTP receiver: DST, exactly-once inserts and claims, the
concurrency policies, starting deadline, catch-up, suspend and run-now, retries, expired claims, signatures."""

from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from apps.cron import execution, schedule, scheduler
from apps.cron.models import Job, Run, RunState
from apps.cron.services.jobs import job_create, job_set_suspended
from apps.cron.services.runs import job_run_now
from tests.support.components import wait_for
from tests.support.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def make_job(receiver: Receiver, **values) -> Job:
    values.setdefault("name", "nightly")
    values.setdefault("schedule", "* * * * *")
    values.setdefault("http_url", f"{receiver.url}/hook")
    job, _ = job_create(**values)
    return job


def local_days(runs, tz: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for run in runs:
        local = run.slot.astimezone(ZoneInfo(tz))
        out.setdefault(local.strftime("%Y-%m-%d"), []).append(local.strftime("%H:%M"))
    return out


def step_through(job: Job, start: datetime, end: datetime, step: timedelta) -> None:
    Job.objects.filter(pk=job.pk).update(next_slot_at=schedule.next_slot(job.schedule, job.timezone, start))
    job.refresh_from_db()
    job.set_next_slot(job.next_slot_at)
    job.save(update_fields=["next_due_at"])
    now = start
    while now < end:
        scheduler.materialize(now, lead=timedelta(0))
        now += step


# --- DST -----------------------------------------------------------------------------------------------------


def test_a_daily_0230_berlin_job_fires_once_on_both_2026_dst_nights(receiver, settings):
    settings.CRON_MISSED_AFTER_SECONDS = 86400  # stepping an hour at a time is not downtime
    job = make_job(receiver, schedule="30 2 * * *", timezone="Europe/Berlin")
    for start in (datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 10, 23, tzinfo=UTC)):
        step_through(job, start, start + timedelta(days=4), timedelta(minutes=30))
    days = local_days(Run.objects.filter(job=job).order_by("slot"), "Europe/Berlin")
    assert days["2026-03-29"] == ["03:00"], "02:30 does not exist that night: once, at the first valid minute"
    assert days["2026-10-25"] == ["02:30"], "02:30 happens twice that night: once"
    assert days["2026-03-28"] == ["02:30"] and days["2026-10-26"] == ["02:30"]
    assert Run.objects.filter(job=job).count() == 8


def test_an_hourly_new_york_job_follows_real_hours_across_both_2026_changes(receiver, settings):
    settings.CRON_MISSED_AFTER_SECONDS = 86400
    job = make_job(receiver, schedule="0 * * * *", timezone="America/New_York")
    tz = ZoneInfo("America/New_York")
    for day in (8, 1):  # 2026-03-08 and 2026-11-01, midnight to midnight local time
        month = 3 if day == 8 else 11
        start = datetime(2026, month, day, tzinfo=tz).astimezone(UTC)
        end = datetime(2026, month, day + 1, tzinfo=tz).astimezone(UTC)
        step_through(job, start - timedelta(seconds=1), end, timedelta(minutes=20))
    days = local_days(Run.objects.filter(job=job), "America/New_York")
    assert len(days["2026-03-08"]) == 23, "the spring day has 23 hours"
    assert len(days["2026-11-01"]) == 25, "the autumn day has 25 hours"
    slots = list(Run.objects.filter(job=job).values_list("slot", flat=True))
    assert len(slots) == len(set(slots)) == 23 + 25


def test_the_preview_marks_the_dst_shift():
    slots = schedule.preview("30 2 * * *", "Europe/Berlin", count=4, after=datetime(2026, 3, 27, tzinfo=UTC))
    assert [s.offset_changed for s in slots] == [False, False, True, False]
    assert slots[2].local.strftime("%H:%M") == "03:00"


# --- exactly once ----------------------------------------------------------------------------------------------


def test_two_schedulers_insert_each_slot_once_and_only_the_winner_hands_it_out(receiver):
    jobs = [make_job(receiver, name=f"job-{i}") for i in range(20)]
    now = max(j.next_due_at for j in jobs) + timedelta(seconds=1)
    results: list[list[scheduler.Pending]] = []
    barrier = threading.Barrier(2)

    def one() -> None:
        from django.db import connection

        barrier.wait()
        results.append(scheduler.materialize(now, lead=timedelta(0)))
        connection.close()

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handed = [p.run_id for batch in results for p in batch]
    assert len(handed) == len(set(handed)) == 20, "each run handed out by exactly one scheduler"
    assert Run.objects.count() == 20
    assert all(Job.objects.get(pk=j.pk).next_slot_at > j.next_slot_at for j in jobs)


def test_two_workers_claiming_the_same_run_call_the_target_once(receiver):
    job = make_job(receiver)
    run = job_run_now(job=job)
    states: list[str | None] = []
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        from django.db import connection

        barrier.wait()
        states.append(execution.execute(run.pk, worker=name))
        connection.close()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(states, key=str) == [None, "succeeded"] or sorted(map(str, states)) == ["None", "succeeded"]
    assert len(receiver.requests) == 1
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED and run.attempts == 1 and run.manual


def test_the_call_carries_the_idempotency_key_and_a_verifiable_signature(receiver):
    job, secret = job_create(
        name="signed", schedule="@hourly", http_url=f"{receiver.url}/x", http_body='{"a": 1}', http_method="PUT"
    )
    run = job_run_now(job=job)
    assert execution.execute(run.pk) == RunState.SUCCEEDED
    request = receiver.requests[0]
    key = request.headers["Idempotency-Key"]
    assert key == f"{job.pk}:{run.slot.strftime('%Y-%m-%dT%H:%M:%S')}.{run.slot.microsecond // 1000:03d}Z"
    parts = dict(p.split("=", 1) for p in request.headers["X-ICC-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.{key}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert request.method == "PUT" and request.body == b'{"a": 1}'
    wrong = hmac.new(b"another-secret", f"{parts['t']}.{key}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert parts["v1"] != wrong


# --- concurrency, deadline, catch-up, suspend ------------------------------------------------------------------


def held_run(receiver: Receiver, job: Job) -> tuple[Run, threading.Thread, list[str | None]]:
    """A run of ``job`` whose call the receiver holds (the run stays running until ``receiver.hold`` is set)."""
    receiver.hold = threading.Event()
    first = job_run_now(job=job)
    out: list[str | None] = []

    def work() -> None:
        from django.db import connection

        out.append(execution.execute(first.pk, worker="holder"))
        connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    receiver.wait_for(1)
    return first, thread, out


def test_forbid_skips_a_run_while_another_runs(receiver):
    job = make_job(receiver, concurrency="forbid")
    first, thread, out = held_run(receiver, job)
    second = Run.objects.create(
        job=job, slot=first.slot + timedelta(seconds=5), due_at=first.slot, not_before=first.slot
    )
    assert execution.execute(second.pk) is None
    second.refresh_from_db()
    assert second.state == RunState.SKIPPED and second.skip_reason == "concurrency"
    receiver.hold.set()
    thread.join(10)
    assert out == [RunState.SUCCEEDED]
    assert len(receiver.requests) == 1


def test_replace_cancels_the_running_call(receiver):
    job = make_job(receiver, concurrency="replace")
    first, thread, out = held_run(receiver, job)
    second = Run.objects.create(
        job=job, slot=first.slot + timedelta(seconds=5), due_at=first.slot, not_before=first.slot
    )
    receiver.hold = None  # the replacement's call is answered at once
    assert execution.execute(second.pk) == RunState.SUCCEEDED
    thread.join(10)
    assert out == [RunState.CANCELLED], "the first call was abandoned, its run cancelled"
    first.refresh_from_db()
    assert first.state == RunState.CANCELLED and "replaced" in first.reason
    assert first.attempt_rows.get().outcome == RunState.CANCELLED


def test_a_run_not_started_within_the_starting_deadline_is_skipped(receiver):
    job = make_job(receiver, starting_deadline_seconds=60)
    due = datetime.now(UTC) - timedelta(seconds=120)
    run = Run.objects.create(job=job, slot=due, due_at=due, not_before=due)
    assert execution.execute(run.pk) is None
    run.refresh_from_db()
    assert run.state == RunState.SKIPPED and run.skip_reason == "deadline"
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("policy", "limit", "runs", "skipped"), [("skip", 10, 0, 10), ("latest", 10, 1, 9), ("all", 5, 5, 5)]
)
def test_catch_up_after_ten_missed_slots(receiver, policy, limit, runs, skipped):
    job = make_job(receiver, catch_up=policy, catch_up_limit=limit)
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    down_since = now.replace(second=0) - timedelta(minutes=10)  # slots :-10 .. :-1 were missed (older than 60 s)
    job.set_next_slot(down_since)
    job.save(update_fields=["next_slot_at", "next_due_at"])
    pending = scheduler.materialize(now, lead=timedelta(0))
    missed = Run.objects.filter(job=job, slot__lt=now - timedelta(seconds=60))
    assert missed.count() == 10
    assert missed.filter(state=RunState.SKIPPED, skip_reason="catch_up").count() == skipped
    assert missed.filter(state=RunState.SCHEDULED).count() == runs
    latest_run = missed.filter(state=RunState.SCHEDULED).order_by("-slot").first()
    if runs:
        assert latest_run is not None and latest_run.slot == now.replace(second=0) - timedelta(minutes=1)
    assert {p.run_id for p in pending} == set(
        Run.objects.filter(job=job, state=RunState.SCHEDULED).values_list("id", flat=True)
    )
    job.refresh_from_db()
    assert job.next_slot_at > now


def test_a_suspended_job_is_not_scheduled_but_runs_when_asked_and_resuming_does_not_fire_missed_slots(receiver):
    job = make_job(receiver)
    job = job_set_suspended(job=job, suspended=True)
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert scheduler.materialize(later) == []
    run = job_run_now(job=job)
    assert execution.execute(run.pk) == RunState.SUCCEEDED
    assert len(receiver.requests) == 1
    job = job_set_suspended(job=job, suspended=False)
    assert job.next_slot_at > datetime.now(UTC), "resuming starts from the next slot, not the missed ones"


def test_a_scheduled_run_of_a_job_suspended_meanwhile_is_skipped(receiver):
    job = make_job(receiver)
    due = datetime.now(UTC)
    run = Run.objects.create(job=job, slot=due, due_at=due, not_before=due)
    job_set_suspended(job=job, suspended=True)
    assert execution.execute(run.pk) is None
    run.refresh_from_db()
    assert run.state == RunState.SKIPPED and run.skip_reason == "suspended"


# --- failures, retries, expired claims -------------------------------------------------------------------------


def test_a_failing_call_is_retried_with_backoff_then_fails(receiver):
    receiver.status = 503
    job = make_job(receiver, max_attempts=2, backoff_seconds=1, max_backoff_seconds=1)
    run = job_run_now(job=job)
    assert execution.execute(run.pk) == RunState.SCHEDULED
    run.refresh_from_db()
    assert run.state == RunState.SCHEDULED and run.not_before > datetime.now(UTC) - timedelta(seconds=1)
    assert execution.execute(run.pk) is None, "not before its backoff"
    Run.objects.filter(pk=run.pk).update(not_before=datetime.now(UTC))
    assert execution.execute(run.pk) == RunState.FAILED
    run.refresh_from_db()
    assert run.attempts == 2 and "503" in run.reason
    attempts = list(run.attempt_rows.values_list("status_code", "outcome"))
    assert attempts == [(503, "failed"), (503, "failed")]
    keys = receiver.keys()
    assert len(keys) == 2 and keys[0] == keys[1], "a retry keeps the idempotency key"


def test_an_expired_claim_is_redispatched_and_retried_under_the_same_key(receiver):
    job = make_job(receiver)
    run = job_run_now(job=job)
    claimed = execution.claim(run.pk, "worker-that-dies")
    assert claimed is not None
    assert execution.claim(run.pk, "another") is None, "a live claim is not taken"
    # As if the claim was taken a minute ago by a worker that died: it expired a second ago.
    Run.objects.filter(pk=run.pk).update(
        dispatched_at=datetime.now(UTC) - timedelta(seconds=60),
        claim_expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    assert run.pk in scheduler.redispatch()
    assert execution.execute(run.pk, worker="survivor") == RunState.SUCCEEDED
    run.refresh_from_db()
    assert run.attempts == 2 and run.claimed_by == "survivor"
    assert receiver.keys() == [job.idempotency_key(run.slot)]


def test_a_lost_redispatch_of_an_expired_claim_is_sent_again_once_stale(receiver):
    """Found by bench/chaos.py: a run whose claim expired was re-sent, and that task was lost too (its worker
    killed holding it); the run must not stay running until the broker's visibility timeout."""
    job = make_job(receiver)
    run = job_run_now(job=job)
    assert execution.claim(run.pk, "worker-that-dies") is not None
    now = datetime.now(UTC)
    # Re-sent 5 s ago, after the claim expired: that re-send is still in flight, not sent again.
    Run.objects.filter(pk=run.pk).update(
        claim_expires_at=now - timedelta(seconds=60), dispatched_at=now - timedelta(seconds=5)
    )
    assert run.pk not in scheduler.redispatch()
    # Re-sent longer ago than REDISPATCH_AFTER and still running under the expired claim: lost, sent again.
    Run.objects.filter(pk=run.pk).update(dispatched_at=now - scheduler.REDISPATCH_AFTER - timedelta(seconds=5))
    assert run.pk in scheduler.redispatch()
    assert execution.execute(run.pk, worker="survivor") == RunState.SUCCEEDED
    assert receiver.keys() == [job.idempotency_key(run.slot)]


def test_a_timeout_is_recorded_as_timed_out(receiver):
    receiver.delay = 3
    job = make_job(receiver, timeout_seconds=1)
    run = job_run_now(job=job)
    assert execution.execute(run.pk) == RunState.TIMED_OUT
    run.refresh_from_db()
    assert "1 s" in run.reason


def test_history_is_trimmed_to_the_limits(receiver):
    job = make_job(receiver, keep_succeeded=2, keep_failed=1)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        Run.objects.create(job=job, slot=base + timedelta(minutes=i), due_at=base, not_before=base, state="succeeded")
        Run.objects.create(
            job=job, slot=base + timedelta(minutes=i, seconds=1), due_at=base, not_before=base, state="failed"
        )
    scheduler.prune()
    assert Run.objects.filter(job=job, state="succeeded").count() == 2
    assert Run.objects.filter(job=job, state="failed").count() == 1
    newest = Run.objects.filter(job=job, state="succeeded").order_by("-slot").first()
    assert newest is not None and newest.slot == base + timedelta(minutes=4)


def test_late_runs_are_marked_once_and_announced(receiver):
    from apps.cron import signals

    job = make_job(receiver, grace_seconds=10)
    due = datetime.now(UTC) - timedelta(seconds=30)
    run = Run.objects.create(job=job, slot=due, due_at=due, not_before=due)
    heard = []

    def listener(**kwargs):
        heard.append((kwargs["run"].pk, kwargs["what"]))

    signals.run_late.connect(listener)
    try:
        assert scheduler.mark_late() == 1
        assert scheduler.mark_late() == 0
    finally:
        signals.run_late.disconnect(listener)
    assert heard == [(run.pk, "start")]


# --- the batch path ---------------------------------------------------------------------------------------------


def test_a_batch_claims_its_plain_runs_once_fires_them_at_their_due_time_and_leaves_the_rest(receiver):
    from apps.cron import batch

    plain = [make_job(receiver, name=f"plain-{i}") for i in range(5)]
    forbid = make_job(receiver, name="careful", concurrency="forbid")
    due = datetime.now(UTC) + timedelta(milliseconds=400)
    runs = [Run.objects.create(job=job, slot=due, due_at=due, not_before=due) for job in [*plain, forbid]]
    ids = [run.pk for run in runs]
    rest, retries = batch.execute_batch(ids, "batch-worker")
    assert rest == [runs[-1].pk] and retries == [], "the forbid job's run takes the per-run path"
    got = receiver.wait_for(5)
    assert all(r.at >= due.timestamp() - 0.005 for r in got), "nothing fires before it is due"
    assert sorted(receiver.keys()) == sorted(job.idempotency_key(due) for job in plain)
    assert set(Run.objects.filter(pk__in=ids[:5]).values_list("state", flat=True)) == {RunState.SUCCEEDED}
    assert all(run.lateness_ms is not None for run in Run.objects.filter(pk__in=ids[:5]))
    # Sent again (a re-dispatch racing the first): nothing is claimed twice, nothing called twice.
    rest, _ = batch.execute_batch(ids, "another-worker")
    assert len(receiver.requests) == 5 and set(rest) == set(ids)


def test_a_stopping_scheduler_hands_its_pending_runs_to_the_workers(receiver):
    job = make_job(receiver, schedule="@yearly")
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=60)
    run = Run.objects.create(job=job, slot=later, due_at=later, not_before=later)
    loop = scheduler.Scheduler(name="test")
    loop.pending.append(scheduler.Pending(later, run.pk))  # inserted by this scheduler, due in a minute
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        wait_for("the scheduler's first pass", lambda: loop._housekeeping_at > 0, timeout=10)
        run.refresh_from_db()
        assert run.dispatched_at is None, "not sent while it is a minute away"
    finally:
        loop.stop()
        thread.join(10)
    run.refresh_from_db()
    assert run.dispatched_at is not None, "handed over on the way out, not left for the reaper"


def test_a_kubernetes_run_without_an_outcome_after_its_timeout_is_timed_out_by_icc():
    from apps.cron import kube_target
    from tests.support.rows import cluster_row

    cluster = cluster_row("far-away")
    job = Job.objects.create(
        name="stuck",
        schedule="@hourly",
        target_kind="kubernetes",
        cluster=cluster,
        namespace="jobs",
        timeout_seconds=60,
    )
    started = datetime.now(UTC) - timedelta(seconds=95)
    run = Run.objects.create(
        job=job, slot=started, due_at=started, not_before=started, state="running", started_at=started, kube_job="x"
    )
    fresh = Run.objects.create(
        job=job,
        slot=datetime.now(UTC),
        due_at=started,
        not_before=started,
        state="running",
        started_at=datetime.now(UTC),
    )
    assert kube_target.expire_overdue() == 1
    run.refresh_from_db()
    fresh.refresh_from_db()
    assert run.state == RunState.TIMED_OUT and "60 s" in run.reason
    assert fresh.state == RunState.RUNNING
