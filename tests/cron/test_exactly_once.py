"""Exactly once across replicas and a killed worker: two scheduler processes and two Celery worker processes
over the same jobs on real PostgreSQL and Redis, real HTTP receivers; one worker is killed with SIGKILL in the
middle of a call. Every slot runs, each idempotency key succeeds once, and the killed call is retried by the
other worker under the same key once its claim expired."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from apps.cron.models import Job, Run, RunState
from apps.cron.services.jobs import job_create
from tests.support.components import ROOT, free_port, wait_for
from tests.support.receiver import Receiver
from tests.support.server import server_env, start_celery_worker, stop_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(10 * 60)]


def start_scheduler(log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", "cron_scheduler"],
            cwd=ROOT,
            env=server_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def test_two_schedulers_and_two_workers_one_killed_mid_call_run_every_slot_once(tmp_path):
    fast, victim_receiver = Receiver().start(), Receiver().start()
    victim_receiver.hold = threading.Event()  # the victim job's first call hangs until its worker is killed
    jobs = [
        job_create(name=f"fleet-{i}", schedule="* * * * *", http_url=f"{fast.url}/j{i}", timeout_seconds=5)[0]
        for i in range(10)
    ]
    victim, _ = job_create(name="victim", schedule="* * * * *", http_url=f"{victim_receiver.url}/v", timeout_seconds=5)
    processes = {
        "scheduler-1": start_scheduler(tmp_path / "scheduler-1.log"),
        "scheduler-2": start_scheduler(tmp_path / "scheduler-2.log"),
    }
    for n in (1, 2):
        processes[f"worker-{n}"] = start_celery_worker(
            tmp_path / f"worker-{n}.log", queue="cron", hostname=f"cron-{n}-{free_port()}", WORKER_METRICS_PORT="0"
        )
    workers = {processes[f"worker-{n}"].pid: f"worker-{n}" for n in (1, 2)}
    try:
        victim_receiver.wait_for(1, timeout=120)  # the first slot came and a worker is inside the victim's call
        held = wait_for(
            "the victim's running run",
            lambda: Run.objects.filter(job=victim, state=RunState.RUNNING).first(),
            timeout=10,
        )
        # Calls that completed are recorded as each completes; the kill then catches only the victim in flight
        # (a worker killed between a call's answer and its record would repeat that call too, under its key).
        wait_for(
            "the rest of the first slot to be recorded",
            lambda: Run.objects.filter(slot=held.slot, state=RunState.SUCCEEDED).count() == len(jobs),
            timeout=30,
        )
        pid = int(held.claimed_by.split(":")[1])
        assert pid in workers, f"claimed by {held.claimed_by}, not one of this test's workers"
        os.kill(pid, signal.SIGKILL)
        processes[workers[pid]].wait(10)
        victim_receiver.hold.set()
        victim_receiver.hold = None  # later calls are answered at once
        first_slot = held.slot

        def two_slots_done() -> bool:
            done = Run.objects.filter(state=RunState.SUCCEEDED, slot__gte=first_slot)
            return (
                done.filter(slot__gt=first_slot).count() >= len(jobs) + 1
                and done.filter(slot=first_slot).count() == len(jobs) + 1
            )

        wait_for("two slots of every job to succeed", two_slots_done, timeout=180, interval=0.5)
    finally:
        logs = {name: (tmp_path / f"{name}.log") for name in processes}
        for process in processes.values():
            stop_process(process)
        fast.stop()
        victim_receiver.stop()

    second_slot = Run.objects.filter(slot__gt=first_slot).order_by("slot").values_list("slot", flat=True).first()
    slots = [first_slot, second_slot]
    every = Run.objects.filter(slot__in=slots)
    assert every.count() == 2 * (len(jobs) + 1), "one run per job and slot"
    assert set(every.values_list("state", flat=True)) == {RunState.SUCCEEDED}, {
        n: p.read_text(errors="replace")[-2000:] for n, p in logs.items()
    }
    expected = {job.idempotency_key(slot) for job in jobs for slot in slots}
    seen = Counter(fast.keys())
    assert expected <= set(seen), f"missing: {sorted(expected - set(seen))}"
    assert all(seen[key] == 1 for key in expected), "no key reached the fast receiver twice"
    victim_keys = Counter(victim_receiver.keys())
    killed_key = victim.idempotency_key(first_slot)
    assert victim_keys[killed_key] == 2, "the killed call is retried once, under the same key"
    assert victim_keys[victim.idempotency_key(second_slot)] == 1
    killed_run = Run.objects.get(job=victim, slot=first_slot)
    assert killed_run.attempts == 2 and int(killed_run.claimed_by.split(":")[1]) != pid
    assert Job.objects.count() == len(jobs) + 1
