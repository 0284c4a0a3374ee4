"""Benchmark of ICC's cron: lateness, duplicates and missed slots of 1,000 jobs a minute, beside Celery beat.

In one run, against a local HTTP receiver (asyncio, 127.0.0.1, records arrival time and ``Idempotency-Key``,
answers 200 at once):

1. **ICC**: ``--jobs`` jobs on ``* * * * *`` created through ``job_create`` (half with ``spread``, half all due
   on second :00), two Celery worker processes on the ``cron`` queue (threads pool) and two
   ``manage.py cron_scheduler`` processes, for ``--minutes`` measured slots. Mid-run one worker gets SIGKILL
   (and is started again 5 s later) and one scheduler is restarted (SIGTERM, then a new process).
   Lateness is the receiver's arrival minus the run's due time (``Job.due_at(slot)``: slot plus spread
   offset), read from ``X-ICC-Job`` and ``X-ICC-Slot``. A key that reaches the receiver twice counts as
   *retried after the kill* when the killed worker held an attempt of that run, else as a duplicate, as does a
   run ICC recorded as succeeded more than once. Missed: expected (job, slot) pairs of the measured slots
   the receiver never saw.
2. **anchor**: Celery beat with its default ``PersistentScheduler`` (``bench/anchors/cron_beat.py``, its own queue
   and key prefix) firing the same number of ``crontab()`` entries to the same receiver through two worker
   processes: one beat for ``--beat-minutes`` slots, then two beats (each with its own schedule file, the
   usual mistake with two replicas) for as many: the known duplicate-run case.

Targets (printed, not asserted): lateness p99 <= 500 ms, 0 duplicates, 0 missed. The last line of output is
one line of JSON. Run: ``.venv/bin/python bench/cron.py [--quick] [--jobs N] [--minutes N]``; the full run takes
about 12 minutes, ``--quick`` (40 jobs, one slot per phase, anchor alongside ICC) about 2. The database
``icc_bench_cron`` and the Redis db (14) are dropped and reused; never point them at data you keep.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from subprocess import Popen
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: bench.harness, apps

from bench import harness

SUFFIX = "_cron"  # database icc_bench_cron (BENCH_DATABASE_URL's name + this)
TARGET_LATENESS_P99_MS = 500.0
WORKER_CONCURRENCY = 16  # a worker is CPU-bound near 75 runs/s on this host with 4 threads or 32
SLOT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
SETTLE_S = 8.0  # after the last due time: runs still in flight (and retries after the kill) arrive
SPREAD_SETTLE_S = 60.0  # a spread job's offset is at most 59 s past its slot
WARMUP_S = 12.0  # processes started and one warm-up pass before the first measured slot


# --- the receiver ---------------------------------------------------------------------------------------------


@dataclass
class Arrival:
    at: float  # time.time() once the request's headers were read
    key: str
    attempt: str


class Receiver(harness.LoopbackReceiver):
    """Records every arrival and answers 200 at once."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[Arrival] = []

    async def received(self, headers: dict[str, str], at: float) -> None:
        self.arrivals.append(Arrival(at, headers.get("idempotency-key", ""), headers.get("x-icc-attempt", "")))


# --- processes ------------------------------------------------------------------------------------------------

LOG_DIR: list[Path] = []  # the run's data dir: each child writes its banner and warnings to <name>.log there


def start_logged(env: dict[str, str], name: str, *args: str) -> Popen[bytes]:
    """``harness.start_process`` with the child's output in a log file instead of this bench's output."""
    log = (LOG_DIR[0] if LOG_DIR else Path("/tmp")) / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=harness.ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc.log = log  # type: ignore[attr-defined]
    return proc


def log_tail(proc: Popen[bytes], lines: int = 20) -> str:
    log = getattr(proc, "log", None)
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def icc_worker(env: dict[str, str], name: str) -> Popen[bytes]:
    args = ["-m", "celery", "-A", "iccapp", "worker", "-Q", "cron", "--pool", "threads"]
    args += ["--concurrency", str(WORKER_CONCURRENCY), "-n", f"{name}@%h"]
    args += ["--without-mingle", "--without-gossip", "--loglevel", "WARNING"]
    return start_logged(env, name, *args)


def icc_scheduler(env: dict[str, str], name: str) -> Popen[bytes]:
    return start_logged(env, name, "manage.py", "cron_scheduler")


def beat_env(env: dict[str, str], receiver: Receiver, entries: int) -> dict[str, str]:
    beat = {k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"}  # the anchor app is not ICC
    beat.update(BENCH_BEAT_BROKER=env["REDIS_URL"], BENCH_BEAT_RECEIVER=receiver.url, BENCH_BEAT_ENTRIES=str(entries))
    return beat


def beat_worker(env: dict[str, str], name: str) -> Popen[bytes]:
    args = ["-m", "celery", "-A", "bench.anchors.cron_beat", "worker", "-Q", "bench_beat", "--pool", "threads"]
    args += ["--concurrency", str(WORKER_CONCURRENCY), "-n", f"{name}@%h"]
    args += ["--without-mingle", "--without-gossip", "--loglevel", "WARNING"]
    return start_logged(env, name, *args)


def beat(env: dict[str, str], schedule_file: Path) -> Popen[bytes]:
    args = ["-m", "celery", "-A", "bench.anchors.cron_beat", "beat", "-s", str(schedule_file), "--loglevel", "WARNING"]
    return start_logged(env, schedule_file.name, *args)


def sleep_until(at: float, watched: list[Popen[bytes]]) -> None:
    """Sleep until wall-clock ``at``; stop the bench when a process it relies on died."""
    while (left := at - time.time()) > 0:
        for proc in watched:
            if proc.poll() is not None:
                raise SystemExit(f"process {proc.args!r} exited with status {proc.returncode}:\n{log_tail(proc)}")
        time.sleep(min(0.5, left))


def next_minute(after: float) -> float:
    return (int(after) // 60 + 1) * 60.0


def slot_text(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime(SLOT_FORMAT)


def clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")


# --- figures --------------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    return round(harness.percentile(values, q), 1) if values else None


def icc_figures(
    receiver: Receiver, slots: list[float], killed_pid: int | None, window: tuple[float, float]
) -> dict[str, Any]:
    """Lateness, duplicates, retries after the kill and missed slots of ICC's runs (receiver and database)."""
    from django.db.models import Count, Q

    from apps.cron.models import Attempt, Job, Run

    jobs = {job.pk: job for job in Job.objects.all()}
    icc = [a for a in receiver.arrivals if a.key and not a.key.startswith("beat:")]
    seen: dict[str, list[Arrival]] = defaultdict(list)
    for arrival in icc:
        seen[arrival.key].append(arrival)
    measured = {slot_text(s) for s in slots}
    lateness: list[float] = []
    lateness_unspread: list[float] = []
    for key, arrivals in seen.items():
        job_id, _, slot = key.partition(":")
        if slot not in measured or int(job_id) not in jobs:
            continue
        job = jobs[int(job_id)]
        due = job.due_at(datetime.strptime(slot, SLOT_FORMAT).replace(tzinfo=UTC)).timestamp()
        late_ms = (arrivals[0].at - due) * 1000
        lateness.append(late_ms)
        if not job.spread:
            lateness_unspread.append(late_ms)
    expected = {f"{pk}:{slot}" for pk in jobs for slot in measured}
    missed = sorted(expected - seen.keys())
    # Keys that reached the receiver more than once: explained when the killed worker held an attempt of the run.
    repeated = {key for key, arrivals in seen.items() if len(arrivals) > 1}
    killed_runs: set[str] = set()  # runs with an attempt the killed worker never finished
    if killed_pid is not None:
        cut = Attempt.objects.filter(worker__contains=f":{killed_pid}:", finished_at__isnull=True)
        for run in Run.objects.filter(attempt_rows__in=cut).select_related("job").distinct():
            killed_runs.add(run.job.idempotency_key(run.slot))
    retried_after_kill = repeated & killed_runs
    double_success = Run.objects.annotate(ok=Count("attempt_rows", filter=Q(attempt_rows__outcome="succeeded")))
    recorded_twice = {
        run.job.idempotency_key(run.slot) for run in double_success.filter(ok__gt=1).select_related("job")
    }
    duplicates = (repeated - killed_runs) | recorded_twice
    states = dict(Run.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    claim_lateness = [float(v) for v in Run.objects.values_list("lateness_ms", flat=True) if v is not None]
    in_window = [a for a in icc if window[0] <= a.at <= window[1]]
    drains = burst_drains(icc, jobs, slots)
    return {
        "jobs": len(jobs),
        "slots": len(slots),
        "expected_runs": len(expected),
        "received_keys": len(expected & seen.keys()),
        "lateness_p50_ms": pct(lateness, 0.50),
        "lateness_p99_ms": pct(lateness, 0.99),
        "lateness_max_ms": round(max(lateness), 1) if lateness else None,
        "lateness_unspread_p50_ms": pct(lateness_unspread, 0.50),
        "lateness_unspread_p99_ms": pct(lateness_unspread, 0.99),
        "late_over_1s": sum(1 for v in lateness if v > 1000),
        "claim_lateness_p99_ms": pct(claim_lateness, 0.99),
        "duplicates": len(duplicates),
        "duplicate_keys": sorted(duplicates)[:10],
        "recorded_succeeded_twice": len(recorded_twice),
        "retried_after_kill": len(retried_after_kill),
        "cut_by_kill": len(killed_runs),
        "missed": len(missed),
        "missed_keys": missed[:10],
        "runs_per_s": round(len(in_window) / max(1e-9, window[1] - window[0]), 2),
        "burst_drain_p50_ms": pct(drains, 0.5),
        "burst_runs_per_s": round(sum(1 for j in jobs.values() if not j.spread) / (statistics.median(drains) / 1000), 1)
        if drains
        else None,
        "run_states": states,
        "attempts": Attempt.objects.count(),
    }


def burst_drains(icc: list[Arrival], jobs: dict[int, Any], slots: list[float]) -> list[float]:
    """Per measured slot: ms from :00 to the last first-arrival of the jobs all due on :00."""
    last: dict[str, float] = {}
    firsts: dict[str, float] = {}
    for arrival in icc:
        firsts.setdefault(arrival.key, arrival.at)
    for key, at in firsts.items():
        job_id, _, slot = key.partition(":")
        job = jobs.get(int(job_id))
        if job is not None and not job.spread:
            last[slot] = max(last.get(slot, 0.0), at)
    return [(last[slot_text(s)] - s) * 1000 for s in slots if slot_text(s) in last]


def beat_figures(receiver: Receiver, entries: int, slots: list[float]) -> dict[str, Any]:
    """Lateness (arrival minus the slot), duplicates and missed keys of the beat anchor's measured slots."""
    measured = {slot_text(s): s for s in slots}
    counts: Counter[str] = Counter()
    first: dict[str, float] = {}
    for arrival in receiver.arrivals:
        if not arrival.key.startswith("beat:"):
            continue
        if arrival.key.split(":", 2)[-1] not in measured:
            continue
        counts[arrival.key] += 1
        first.setdefault(arrival.key, arrival.at)
    lateness = [(at - measured[key.split(":", 2)[-1]]) * 1000 for key, at in first.items()]
    expected = {f"beat:entry-{n:04d}:{slot}" for n in range(entries) for slot in measured}
    return {
        "lateness_p50_ms": pct(lateness, 0.5),
        "lateness_p99_ms": pct(lateness, 0.99),
        "duplicates": sum(1 for n in counts.values() if n > 1),
        "missed": len(expected - counts.keys()),
        "runs": sum(counts.values()),
    }


# --- the run --------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    jobs: int
    icc_slots: int
    beat_slots: int
    together: bool  # quick: the anchor runs alongside ICC (shorter; the figures mean little)


def create_jobs(count: int, url: str) -> float:
    from apps.cron.services.jobs import job_create

    started = time.monotonic()
    for number in range(count):
        job_create(
            name=f"bench-{number:04d}",
            schedule="* * * * *",
            timezone="UTC",
            spread=number % 2 == 0,
            target_kind="http",
            http_url=url,
            http_method="POST",
            timeout_seconds=10,
            max_attempts=1,
        )
    harness.close_django()
    return time.monotonic() - started


def main() -> int:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=None, help="jobs (1,000; quick 40), half of them spread")
    parser.add_argument("--minutes", type=int, default=None, help="measured ICC slots (5; quick 1)")
    parser.add_argument("--beat-minutes", type=int, default=None, help="measured slots per beat phase (2; quick 1)")
    args = parser.parse_args()
    plan = Plan(
        jobs=args.jobs or (40 if args.quick else 1000),
        icc_slots=args.minutes or (1 if args.quick else 5),
        beat_slots=args.beat_minutes or (1 if args.quick else 2),
        together=args.quick,
    )
    receiver = Receiver().start()
    processes: list[Popen[bytes]] = []
    try:
        with harness.bench_run(
            SUFFIX,
            WORKER_METRICS_PORT="0",  # two workers on one host
            DATABASE_POOL_SIZE=str(WORKER_CONCURRENCY + 4),  # a worker thread holds a connection through its run
        ) as run:
            print(f"receiver on {receiver.url}; creating {plan.jobs} jobs through job_create", flush=True)
            create_s = create_jobs(plan.jobs, receiver.url)
            print(f"  {plan.jobs} jobs in {create_s:.1f} s", flush=True)
            icc, anchor_one, anchor_two, events = run_phases(run, receiver, plan, processes)
    finally:
        for proc in reversed(processes):
            harness.stop_process(proc)
        receiver.stop()
    report(plan, icc, anchor_one, anchor_two, events, quick=args.quick)
    return 0


def run_phases(
    run: harness.Run, receiver: Receiver, plan: Plan, processes: list[Popen[bytes]]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    env = run.env
    LOG_DIR.append(run.data_dir)
    workers = [icc_worker(env, "cron-a"), icc_worker(env, "cron-b")]
    schedulers = [icc_scheduler(env, "scheduler-a"), icc_scheduler(env, "scheduler-b")]
    processes += workers + schedulers
    started_at = time.time()
    first = next_minute(started_at + WARMUP_S)
    icc_slots = [first + 60 * n for n in range(plan.icc_slots)]
    # The worker is killed and a scheduler restarted mid-minute, in the second measured minute (the first when
    # only one is measured), while spread jobs are firing.
    disturb = icc_slots[min(1, len(icc_slots) - 1)]
    kill_at, restart_at = disturb + 25, disturb + 38
    icc_end = icc_slots[-1] + SPREAD_SETTLE_S + SETTLE_S

    beat_processes: list[Popen[bytes]] = []
    benv = beat_env(env, receiver, plan.jobs)

    def start_beat_one() -> float:
        beat_processes.extend(
            [beat_worker(benv, "beat-a"), beat_worker(benv, "beat-b"), beat(benv, run.data_dir / "beat-a")]
        )
        processes.extend(beat_processes)
        return time.time()

    if plan.together:
        start_beat_one()
        beat_one_slots = icc_slots[: plan.beat_slots]
    print(
        f"ICC: 2 workers, 2 schedulers started at {clock(started_at)}; measured slots from {clock(first)}", flush=True
    )

    events: dict[str, Any] = {}
    sleep_until(kill_at, workers + schedulers)
    victim = workers[0]
    in_flight = sum(1 for a in receiver.arrivals if a.at > kill_at - 5)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(10)
    events["killed_worker_at"] = clock(kill_at)
    events["killed_pid"] = victim.pid
    print(f"  {clock(time.time())} SIGKILL to worker pid {victim.pid} ({in_flight} arrivals in the last 5 s)")
    time.sleep(5)
    workers[0] = icc_worker(env, "cron-a2")
    processes.append(workers[0])
    print(f"  {clock(time.time())} worker started again (pid {workers[0].pid})", flush=True)
    sleep_until(restart_at, workers + schedulers)
    harness.stop_process(schedulers[0])
    schedulers[0] = icc_scheduler(env, "scheduler-a2")
    processes.append(schedulers[0])
    events["restarted_scheduler_at"] = clock(time.time())
    print(f"  {clock(time.time())} scheduler restarted (SIGTERM, new pid {schedulers[0].pid})", flush=True)

    if plan.together:
        beat_two_slots = [s + 60 * plan.beat_slots for s in beat_one_slots]
        sleep_until(beat_one_slots[-1] + 10, workers + schedulers + beat_processes)
        beat_processes.append(beat(benv, run.data_dir / "beat-b"))
        processes.append(beat_processes[-1])
        print(f"  {clock(time.time())} anchor: second beat started", flush=True)
        sleep_until(max(icc_end, beat_two_slots[-1] + 20), workers + schedulers + beat_processes)
    else:
        sleep_until(icc_end, workers + schedulers)
    for proc in schedulers:
        harness.stop_process(proc)
    time.sleep(2)  # runs handed out just before the schedulers stopped
    for proc in workers:
        harness.stop_process(proc)
    icc = icc_figures(receiver, icc_slots, events["killed_pid"], (icc_slots[0], icc_slots[-1] + 60))

    if not plan.together:
        beat_started = start_beat_one()
        beat_one_slots = [next_minute(beat_started + WARMUP_S) + 60 * n for n in range(plan.beat_slots)]
        print(f"anchor: one beat, 2 workers; measured slots from {clock(beat_one_slots[0])}", flush=True)
        beat_two_slots = [s + 60 * plan.beat_slots for s in beat_one_slots]
        sleep_until(beat_one_slots[-1] + 30, beat_processes)  # the one-beat burst drained first
        beat_processes.append(beat(benv, run.data_dir / "beat-b"))
        processes.append(beat_processes[-1])
        print(f"  {clock(time.time())} second beat started; measured slots from {clock(beat_two_slots[0])}")
        sleep_until(beat_two_slots[-1] + 50, beat_processes)  # two beats send twice as many runs to drain
    for proc in beat_processes:
        harness.stop_process(proc)
    return (
        icc,
        beat_figures(receiver, plan.jobs, beat_one_slots),
        beat_figures(receiver, plan.jobs, beat_two_slots),
        events,
    )


def report(
    plan: Plan, icc: dict[str, Any], one: dict[str, Any], two: dict[str, Any], events: dict[str, Any], *, quick: bool
) -> None:
    print()
    print(f"{'figure':<40}{'ICC cron':>12}{'Celery beat':>14}{'target':>10}")
    rows = [
        ("lateness p50 (ms)", icc["lateness_p50_ms"], one["lateness_p50_ms"], ""),
        ("lateness p99 (ms)", icc["lateness_p99_ms"], one["lateness_p99_ms"], f"<= {TARGET_LATENESS_P99_MS:.0f}"),
        ("lateness p50, due on :00 (ms)", icc["lateness_unspread_p50_ms"], one["lateness_p50_ms"], ""),
        ("lateness p99, due on :00 (ms)", icc["lateness_unspread_p99_ms"], one["lateness_p99_ms"], ""),
        ("duplicates (ICC: 2 schedulers; 1 beat)", icc["duplicates"], one["duplicates"], "0"),
        ("duplicates (2 beats)", "", two["duplicates"], "0"),
        ("missed (1 beat; 2 beats)", icc["missed"], f"{one['missed']}; {two['missed']}", "0"),
    ]
    for name, ours, theirs, target in rows:
        print(f"{name:<40}{ours!s:>12}{theirs!s:>14}{target:>10}")
    print(
        f"ICC: {icc['jobs']} jobs x {icc['slots']} slots = {icc['expected_runs']} runs; {icc['runs_per_s']} runs/s; "
        f"the :00 burst drained in {icc['burst_drain_p50_ms']} ms (p50, {icc['burst_runs_per_s']} runs/s); "
        f"max lateness {icc['lateness_max_ms']} ms, {icc['late_over_1s']} runs over 1 s; "
        f"retried after the kill {icc['retried_after_kill']} (of {icc['cut_by_kill']} attempts the kill cut short); "
        f"recorded succeeded twice {icc['recorded_succeeded_twice']}; states {icc['run_states']}"
    )
    if icc["duplicate_keys"] or icc["missed_keys"]:
        print(f"  duplicate keys {icc['duplicate_keys']}; missed keys {icc['missed_keys']}")
    print(f"events: {events}")
    harness.emit(
        {
            "quick": quick,
            "jobs": icc["jobs"],
            "minutes": icc["slots"],
            "lateness_p50_ms": icc["lateness_p50_ms"],
            "lateness_p99_ms": icc["lateness_p99_ms"],
            "lateness_max_ms": icc["lateness_max_ms"],
            "lateness_unspread_p99_ms": icc["lateness_unspread_p99_ms"],
            "duplicates": icc["duplicates"],
            "retried_after_kill": icc["retried_after_kill"],
            "cut_by_kill": icc["cut_by_kill"],
            "missed": icc["missed"],
            "runs_per_s": icc["runs_per_s"],
            "burst_runs_per_s": icc["burst_runs_per_s"],
            "celery_beat_lateness_p50_ms": one["lateness_p50_ms"],
            "celery_beat_lateness_p99_ms": one["lateness_p99_ms"],
            "celery_beat_missed": one["missed"],
            "celery_beat_two_beats_duplicates": two["duplicates"],
            "celery_beat_two_beats_runs": two["runs"],
            "target_lateness_p99_ms": TARGET_LATENESS_P99_MS,
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
    )


if __name__ == "__main__":
    raise SystemExit(main())
