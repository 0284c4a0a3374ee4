"""Graceful shutdown and restarts of real processes: SIGTERM closes websockets with 1012 (the client reconnects)
and removes the web role's heartbeat; a worker finishes its task on SIGTERM, and a task whose worker process is
SIGKILLed is re-queued and run again; a web process outlives a Redis restart and a PostgreSQL connection loss,
with /readyz and the dashboard's banner naming the missing dependency while it is down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
import requests
from django.conf import settings
from django.test import Client

from apps.core import heartbeats
from tests.support.components import ROOT, free_port, wait_for
from tests.support.server import running_icc, server_env, stop_process

pytestmark = pytest.mark.django_db(transaction=True)


def db_dsn() -> str:
    db = settings.DATABASES["default"]
    password = f" password={db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = f"host={db.get('HOST') or '127.0.0.1'} port={db.get('PORT') or 5432}"
    return f"{host} dbname={db['NAME']} user={db['USER']}{password}"


def session_cookie(persona) -> str:  # type: ignore[no-untyped-def]
    browser = Client()
    assert browser.login(username=persona.username, password=persona.password)
    return f"sessionid={browser.cookies['sessionid'].value}"


# --- web ---


def test_sigterm_closes_websockets_with_1012_and_the_web_process_leaves_the_role_list(
    admin_persona, tmp_path, collected_static
):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect
    from websockets.typing import Origin

    cookie = session_cookie(admin_persona)
    port = free_port()
    with running_icc(tmp_path, collected_static, port) as server:
        process_id = f":{server.process.pid}"
        wait_for("the web heartbeat", lambda: any(p["process"].endswith(process_id) for p in heartbeats.processes()))
        web = next(p for p in heartbeats.processes() if p["process"].endswith(process_id))
        assert web["role"] == "web" and web["version"] == heartbeats.icc_version()
        with connect(
            f"ws://127.0.0.1:{port}/ws/?topics=dashboard",
            origin=Origin(f"http://127.0.0.1:{port}"),
            additional_headers={"Cookie": cookie},
            open_timeout=10,
        ) as ws:
            time.sleep(0.5)  # subscribed
            server.process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=15)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012, "service restart: clients reconnect"
        assert server.process.wait(30) in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
    assert not any(p["process"].endswith(process_id) for p in heartbeats.processes()), "gone at once, not after TTL"


def test_the_websocket_client_reconnects_after_a_1012_close():
    """The vendored htmx ws extension the portal uses retries on 1006/1011/1012/1013 (with backoff)."""
    source = (ROOT / "static" / "vendor" / "htmx-ext-ws.min.js").read_text()
    assert "[1006,1011,1012,1013].indexOf(e.code)>=0" in source
    assert 'hx-ext="ws" ws-connect=' in (ROOT / "templates" / "base.html").read_text()


# --- workers ---


@pytest.fixture
def locked_clusters() -> Iterator[psycopg.Connection]:
    """The cluster table locked by another session: ``clusters.sync_due`` (which reads it) blocks inside the worker
    until the test rolls this back, as it would on a database that stopped answering."""
    with psycopg.connect(db_dsn(), autocommit=False) as blocker:
        blocker.execute("LOCK TABLE clusters_cluster IN ACCESS EXCLUSIVE MODE")
        yield blocker
        blocker.rollback()


def start_worker(tmp_path: Path, name: str, *pool: str) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = tmp_path / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "iccapp", "worker", *pool, "-Q", "reconcile"),
                *("--hostname", f"{name}@%h", "--without-mingle", "--without-gossip", "--loglevel", "INFO"),
            ],
            cwd=ROOT,
            env=server_env(WORKER_METRICS_PORT="0", LOG_FORMAT="text"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_for(f"worker {name} to be ready", lambda: "ready" in log_path.read_text(), timeout=60)
    return process, log_path


def send_sync_due() -> str:
    from iccapp.celery import app

    return str(app.send_task("clusters.sync_due", queue="reconcile").id)


def test_sigterm_lets_the_worker_finish_its_running_task(tmp_path, locked_clusters):
    worker, log_path = start_worker(tmp_path, "warm", "--pool", "solo")
    try:
        wait_for("a worker heartbeat", lambda: [p for p in heartbeats.processes() if p["role"] == "worker"])
        task_id = send_sync_due()
        wait_for("the task to start", lambda: "task started" in log_path.read_text(), timeout=30)
        worker.send_signal(signal.SIGTERM)
        time.sleep(2)
        assert worker.poll() is None, "a warm shutdown waits for the running task"
        locked_clusters.rollback()  # the database answers again: the task completes
        assert worker.wait(30) == 0
        assert f"Task clusters.sync_due[{task_id}] succeeded" in log_path.read_text(), "finished before leaving"
        assert not [p for p in heartbeats.processes() if p["role"] == "worker"], "its heartbeat left with it"
    finally:
        stop_process(worker)
        print(log_path.read_text()[-3000:], file=sys.stderr)


def test_a_task_whose_worker_process_is_killed_is_requeued_and_runs_again(tmp_path, locked_clusters):
    """Prefork pool: SIGKILL of the child running the task; the parent rejects the message
    (``task_reject_on_worker_lost`` with late acks) and it runs again in a new child."""
    worker, log_path = start_worker(tmp_path, "prefork", "--pool", "prefork", "--concurrency", "1")
    try:
        task_id = send_sync_due()
        wait_for("the task to start", lambda: log_path.read_text().count("task started") == 1, timeout=30)
        children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
        assert len(children) == 1
        os.kill(int(children[0]), signal.SIGKILL)
        wait_for("the task to start again", lambda: log_path.read_text().count("task started") == 2, timeout=60)
        assert "WorkerLostError" in log_path.read_text()
        locked_clusters.rollback()
        wait_for(
            "the re-run to succeed",
            lambda: f"Task clusters.sync_due[{task_id}] succeeded" in log_path.read_text(),
            timeout=30,
        )
    finally:
        stop_process(worker)
        print(log_path.read_text()[-3000:], file=sys.stderr)


# --- dependencies restarting under a running process ---


def pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A Redis server of this test's own (the shared one must not be stopped): ``start()`` / ``stop()``."""
    port = free_port()
    state: dict[str, object] = {"url": f"redis://127.0.0.1:{port}/0", "process": None}

    def start() -> None:
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
        )
        state["process"] = process
        wait_for("redis", lambda: pings(str(state["url"])), timeout=10, interval=0.1)

    def stop() -> None:
        process = state["process"]
        assert isinstance(process, subprocess.Popen)
        process.terminate()
        process.wait(10)

    state["start"], state["stop"] = start, stop
    start()
    yield state
    process = state["process"]
    if isinstance(process, subprocess.Popen) and process.poll() is None:
        stop()


def readyz(url: str) -> tuple[int, dict[str, object]]:
    response = requests.get(f"{url}/readyz", timeout=10)
    return response.status_code, response.json()


def test_a_redis_restart_is_named_on_readyz_and_the_dashboard_and_needs_no_process_restart(
    own_redis, viewer_persona, tmp_path, collected_static
):
    cookie = {"Cookie": session_cookie(viewer_persona)}
    with running_icc(tmp_path, collected_static, free_port(), REDIS_URL=str(own_redis["url"])) as server:
        assert readyz(server.url)[0] == 200
        assert "data-dependency-banner" not in requests.get(f"{server.url}/", headers=cookie, timeout=10).text

        own_redis["stop"]()
        _, body = wait_for("readyz to fail", lambda: (r := readyz(server.url))[0] == 503 and r, timeout=15)
        assert "redis" in body["failing"] and body["checks"]["database"] == "ok"

        def dashboard() -> str:
            page = requests.get(f"{server.url}/", headers=cookie, timeout=20)
            assert page.status_code == 200, "the dashboard still renders (sessions fall back to the database)"
            return page.text

        # The banner's answer is remembered for 3 s per process: it appears within that.
        wait_for("the banner", lambda: 'data-dependency-banner="redis broker"' in dashboard(), timeout=10)

        own_redis["start"]()
        wait_for("readyz to recover", lambda: readyz(server.url)[0] == 200, timeout=30)
        wait_for("the banner to go", lambda: "data-dependency-banner" not in dashboard(), timeout=15)
        assert server.process.poll() is None, "the same process, never restarted"


def test_losing_every_postgresql_connection_costs_no_failed_request(tmp_path, collected_static):
    """What a PostgreSQL restart does to a running process: every connection it had is gone. Pooled connections
    are checked before use (CONN_HEALTH_CHECKS), so not one request fails afterwards."""
    with running_icc(tmp_path, collected_static, free_port(), PGAPPNAME="icc-under-test") as server:
        for _ in range(5):
            assert readyz(server.url)[0] == 200
        with psycopg.connect(db_dsn(), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                ["icc-under-test"],
            ).fetchone()
        assert killed is not None and killed[0] >= 1, "the server's connections were found"
        answers = [readyz(server.url)[0] for _ in range(5)]
        assert answers == [200] * 5, answers
