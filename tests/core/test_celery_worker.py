"""Tasks run in a real Celery worker process over Redis, with the request id carried along."""

from __future__ import annotations

import time

import pytest
import requests
from django.core.cache import cache

from apps.core import context
from apps.core.tasks import HEARTBEAT_KEY, heartbeat, ping
from tests.support.components import free_port
from tests.support.server import start_celery_worker, stop_process


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path):
    metrics_port = free_port()
    log_path = tmp_path / "worker.log"
    process = start_celery_worker(
        log_path,
        queue="default",
        hostname=f"test-{metrics_port}",
        WORKER_METRICS_PORT=str(metrics_port),
        WORKER_METRICS_ADDR="127.0.0.1",
    )
    try:
        yield process, metrics_port, log_path
    finally:
        code = stop_process(process)
        assert code == 0, log_path.read_text()


def test_a_task_runs_in_a_real_worker_process(celery_worker_process):
    process, metrics_port, log_path = celery_worker_process
    token = context.bind(request_id="req-from-web-1234")
    try:
        result = ping.apply_async()
        heartbeat_result = heartbeat.apply_async(args=[1234.5])
    finally:
        context.reset(token)

    answer = result.get(timeout=60)
    assert answer["pong"] == "ok"
    assert answer["request_id"] == "req-from-web-1234", "the request id travels into the task"
    assert answer["task"] == "core.ping"
    assert heartbeat_result.get(timeout=30)["scheduler_at"] == 1234.5
    beat = cache.get(HEARTBEAT_KEY)  # written by the worker process into the shared Redis cache
    assert beat is not None and beat["scheduler_at"] == 1234.5
    assert process.poll() is None

    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
        if 'icc_task_runs_total{outcome="success",task="core.ping"} 1.0' in text:
            break
        time.sleep(0.2)
    assert 'icc_task_runs_total{outcome="success",task="core.ping"} 1.0' in text
    assert "icc_task_duration_seconds_bucket" in text
    assert "req-from-web-1234" in log_path.read_text(), "the worker's log lines carry the request id"
