"""Leases: one atomic statement to take or renew on the database clock, a generation that fences a holder that
lost its lease, real processes failing over after SIGKILL and handing over at once after SIGTERM, a holder that
cannot renew stepping down before its lease can expire elsewhere, the elected beat, the audit checkpoint once per
window, and the same code on the embedded SQLite default."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from apps.core.leases import (
    LeaderElector,
    lease_acquire,
    lease_holder,
    lease_release,
    lease_renew,
    lease_valid,
    leases,
)
from apps.core.models import Lease
from tests.support.components import ROOT, wait_for
from tests.support.server import server_env, stop_process

pytestmark = pytest.mark.django_db(transaction=True)  # lease holders in threads and processes commit


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def db_dsn() -> str:
    db = settings.DATABASES["default"]
    password = f" password={db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = f"host={db.get('HOST') or '127.0.0.1'} port={db.get('PORT') or 5432}"
    return f"{host} dbname={db['NAME']} user={db['USER']}{password}"


def expire(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE core_lease SET expires_at = statement_timestamp() - interval '1 second' WHERE name = %s", [name]
        )


# --- the statements ---


def test_a_valid_lease_is_nobody_elses_and_an_expired_one_goes_to_one_new_holder_with_a_new_generation():
    name = unique("single")
    first = lease_acquire(name, "a:1:x", 30)
    assert first is not None and first.generation == 1
    assert lease_acquire(name, "b:2:y", 30) is None, "a valid lease is nobody else's"
    again = lease_acquire(name, "a:1:x", 30)
    assert again is not None and again.generation == 1 and again.expires_at >= first.expires_at, "kept, not re-won"
    expire(name)
    second = lease_acquire(name, "b:2:y", 30)
    assert second is not None and second.generation == 2
    assert lease_renew(first, 30) is None, "the old holder cannot renew"
    assert not lease_valid(name, first.generation), "the fence refuses the old generation"
    assert lease_valid(name, second.generation)
    assert lease_renew(second, 30) is not None


def test_concurrent_takers_have_exactly_one_winner_and_expiry_uses_the_database_clock():
    name = unique("race")
    barrier = threading.Barrier(8)
    winners: list[str] = []

    def take(holder: str) -> None:
        try:
            barrier.wait(10)
            if lease_acquire(name, holder, 30) is not None:
                winners.append(holder)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(f"h:{i}:r",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(winners) == 1 and lease_holder(name) == winners[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT expires_at - renewed_at FROM core_lease WHERE name = %s", [name])
        assert cursor.fetchone()[0].total_seconds() == pytest.approx(30)


def test_release_frees_the_lease_at_once_and_keeps_its_generation_for_the_next_holder():
    name = unique("release")
    held = lease_acquire(name, "a:1:x", 600)
    assert held is not None and lease_release(held)
    assert lease_holder(name) is None
    nxt = lease_acquire(name, "b:2:y", 600)
    assert nxt is not None and nxt.generation == held.generation + 1
    assert not lease_release(held), "releasing what one no longer holds changes nothing"
    assert lease_holder(name) == "b:2:y"
    listed = next(item for item in leases() if item["name"] == name)
    assert listed["valid"] is True and listed["holder"] == "b:2:y" and listed["generation"] == 2


# --- the elector in a process ---


def test_a_holder_that_cannot_reach_the_database_steps_down_before_its_lease_expires():
    """The table is locked by another session, so renewals hang: the elector must stop acting at ttl - margin,
    while the lease row still says it is valid (nobody else could have taken it yet)."""
    name = unique("stall")
    deposed = threading.Event()
    elector = LeaderElector(name, ttl=4, renew_every=1, margin=1, on_deposed=deposed.set).start()
    try:
        wait_for("the elector to be elected", lambda: elector.is_leader, timeout=10)
        with psycopg.connect(db_dsn(), autocommit=False) as blocker:
            blocker.execute("LOCK TABLE core_lease IN ACCESS EXCLUSIVE MODE")
            locked_at = time.monotonic()
            wait_for("the stalled leader to step down", deposed.is_set, timeout=10)
            took = time.monotonic() - locked_at
            row = blocker.execute(
                "SELECT expires_at > statement_timestamp(), holder FROM core_lease WHERE name = %s", [name]
            ).fetchone()
            assert row == (True, elector.holder), "stepped down while the lease was still its own"
            assert not elector.is_leader and elector.generation is None
            print(f"\nstalled leader stepped down {took:.1f}s after the database stopped answering (ttl 4 s)")
            blocker.rollback()
        wait_for("it to lead again once the database answers", lambda: elector.is_leader, timeout=10)
    finally:
        elector.stop()
    assert lease_holder(name) is None, "a graceful stop releases the lease"


def test_a_leader_whose_lease_was_taken_stops_acting_within_one_renewal():
    name = unique("stolen")
    elector = LeaderElector(name, ttl=5, renew_every=1).start()
    try:
        wait_for("the elector to be elected", lambda: elector.is_leader, timeout=10)
        Lease.objects.filter(name=name).update(holder="thief:9:z", generation=99)
        stolen_at = time.monotonic()
        wait_for("the leader to notice", lambda: not elector.is_leader, timeout=5)
        assert time.monotonic() - stolen_at < 2.5, "one renewal period (1 s) plus scheduling"
    finally:
        elector.stop()
    assert lease_holder(name) == "thief:9:z", "stop releases only its own lease"


# --- real processes ---


@pytest.fixture
def holders(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop_process(process)
    for log in sorted(tmp_path.glob("hold-*.log")):
        print(log.name, log.read_text()[-1500:], file=sys.stderr)


def start_holder(tmp_path: Path, name: str, index: int, *args: str) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"hold-{index}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "manage.py", "lease_hold", name, *args],
        cwd=ROOT,
        env=server_env(LOG_LEVEL="WARNING"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def events(tmp_path: Path, index: int) -> list[dict[str, object]]:
    lines = (tmp_path / f"hold-{index}.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith('{"event"')]


def test_two_processes_compete_and_the_survivor_takes_over_after_sigkill(tmp_path, holders):
    name = unique("failover")
    holders.append(start_holder(tmp_path, name, 0))
    holders.append(start_holder(tmp_path, name, 1))
    holder = wait_for("one process to hold the lease", lambda: lease_holder(name), timeout=60)
    wait_for("both processes to compete", lambda: all(events(tmp_path, i) for i in range(2)), timeout=60)
    time.sleep(4)  # longer than a renewal period: the holder keeps it, the other stays standby
    assert lease_holder(name) == holder
    owner = next(p for p in holders if f":{p.pid}:" in holder)
    other = next(p for p in holders if p is not owner)
    first_generation = Lease.objects.get(name=name).generation

    killed = time.monotonic()
    os.kill(owner.pid, signal.SIGKILL)
    new_holder = wait_for(
        "the survivor to take over", lambda: (h := lease_holder(name)) not in (None, holder) and h, timeout=20
    )
    took = time.monotonic() - killed
    print(f"\nlease failover after SIGKILL of the holder: {took:.1f}s (ttl 10 s, renewals every 3 s)")
    assert f":{other.pid}:" in new_holder
    assert Lease.objects.get(name=name).generation == first_generation + 1
    assert took < 15, "the functional requirement: failover within 15 s"
    elected = [e for e in events(tmp_path, holders.index(other)) if e["event"] == "elected"]
    assert elected and elected[-1]["generation"] == first_generation + 1


def test_sigterm_releases_the_lease_and_the_other_process_takes_over_at_once(tmp_path, holders):
    name = unique("handover")
    for index in range(2):
        holders.append(start_holder(tmp_path, name, index, "--ttl", "60", "--renew-every", "3"))
    holder = wait_for("one process to hold the lease", lambda: lease_holder(name), timeout=60)
    wait_for("both processes to compete", lambda: all(events(tmp_path, i) for i in range(2)), timeout=60)
    owner = next(p for p in holders if f":{p.pid}:" in holder)
    other = next(p for p in holders if p is not owner)

    stopped = time.monotonic()
    owner.send_signal(signal.SIGTERM)
    assert owner.wait(20) == 0
    new_holder = wait_for("the other to take over", lambda: (h := lease_holder(name)) not in (None, holder) and h)
    took = time.monotonic() - stopped
    print(f"\nlease handover after SIGTERM: {took:.1f}s (ttl 60 s)")
    assert f":{other.pid}:" in new_holder
    assert took < 10, "released at once, not left to expire (60 s)"
    assert [e["event"] for e in events(tmp_path, holders.index(owner))][-2:] == ["deposed", "stopped"]


def test_only_the_elected_beat_sends_and_a_standby_takes_over_after_sigkill(tmp_path):
    """Two ``celery beat`` processes with a 1 s heartbeat entry: only the holder of the ``beat`` lease sends it;
    after SIGKILL of the holder the other starts sending (within 15 s)."""
    Lease.objects.filter(name="beat").delete()
    env = server_env(ICC_HEARTBEAT_SECONDS="1", LOG_FORMAT="text")
    beats: list[subprocess.Popen[bytes]] = []
    logs = [tmp_path / f"beat-{i}.log" for i in range(2)]

    def sent(index: int) -> int:
        return logs[index].read_text().count("Sending due task core.heartbeat")

    try:
        for index in range(2):
            with logs[index].open("wb") as log:
                command = [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "iccapp",
                    "beat",
                    "--schedule",
                    str(tmp_path / f"s{index}"),
                ]
                beats.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        holder = wait_for("a beat to be elected", lambda: lease_holder("beat"), timeout=60)
        owner = next(i for i, p in enumerate(beats) if f":{p.pid}:" in holder)
        other = 1 - owner
        wait_for("the leader to send", lambda: sent(owner) >= 3, timeout=30)
        assert sent(other) == 0, "the standby sends nothing"

        killed = time.monotonic()
        os.kill(beats[owner].pid, signal.SIGKILL)
        wait_for("the standby to send", lambda: sent(other) >= 1, timeout=20)
        took = time.monotonic() - killed
        print(f"\nbeat failover after SIGKILL: first send by the standby after {took:.1f}s")
        assert f":{beats[other].pid}:" in (lease_holder("beat") or "")
        assert took < 15
    finally:
        for process in beats:
            stop_process(process)
        for log in logs:
            print(log.read_text()[-2000:], file=sys.stderr)
    assert lease_holder("beat") is None, "SIGTERM released the beat lease"


def test_the_audit_checkpoint_is_written_once_however_often_it_is_sent(tmp_path, settings):
    from apps.audit.tasks import audit_write_checkpoint

    settings.AUDIT_CHECKPOINT_DIR = tmp_path
    Lease.objects.filter(name="audit:checkpoint").delete()
    first = audit_write_checkpoint()
    assert first is not None and Path(first).exists()
    assert audit_write_checkpoint() is None, "a second send within the window is skipped"
    assert len(list(tmp_path.glob("checkpoint-*.json"))) == 1
    expire("audit:checkpoint")
    assert audit_write_checkpoint() is not None, "the next window writes again"
    assert Lease.objects.get(name="audit:checkpoint").generation == 2


def test_the_same_code_works_on_the_embedded_sqlite_default(tmp_path):
    drop = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_", "PYTEST_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(ICC_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="iccapp.settings", LOG_LEVEL="WARNING")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    script = "import django; django.setup()\n" + textwrap.dedent(
        """
        import time
        from django.db import connection
        from apps.core.leases import *
        assert connection.vendor == "sqlite"
        a = lease_acquire("beat", "a", 1)
        assert a.generation == 1 and lease_acquire("beat", "b", 1) is None
        assert lease_renew(a, 1) is not None
        time.sleep(1.1)
        b = lease_acquire("beat", "b", 30)
        assert b.generation == 2 and lease_renew(a, 1) is None and not lease_valid("beat", 1)
        assert lease_release(b) and lease_holder("beat") is None
        e = LeaderElector("solo", ttl=3, renew_every=1).start()
        deadline = time.monotonic() + 10
        while not e.is_leader and time.monotonic() < deadline:
            time.sleep(0.05)
        print("leader", e.is_leader, e.generation)
        e.stop()
        print("released", lease_holder("solo"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:2] == ["leader True 1", "released None"]
