"""Core periodic tasks."""

from __future__ import annotations

import time

from django.core.cache import cache

from apps.core import metrics
from apps.core.events import DASHBOARD, send_now
from apps.core.tasking import icc_task

HEARTBEAT_KEY = "icc:heartbeat"


@icc_task(name="core.heartbeat", queue="default", soft_time_limit=10)
def heartbeat(scheduled_at: float | None = None) -> dict[str, float]:
    """Proves the scheduler and a worker are alive: records both times and refreshes live dashboards."""
    now = time.time()
    beat = {"worker_at": now, "scheduler_at": scheduled_at or now}
    cache.set(HEARTBEAT_KEY, beat, timeout=None)
    metrics.HEARTBEAT_AGE.labels(role="worker").set(0)
    send_now(DASHBOARD, {"reason": "heartbeat"})
    return beat


@icc_task(name="core.ping", queue="default", soft_time_limit=10)
def ping() -> dict[str, str]:
    """Diagnostic: answers with the worker's view of the request context (proves request ids reach tasks)."""
    import socket

    from apps.core import context

    ctx = context.current()
    return {"pong": "ok", "request_id": ctx.request_id, "task": ctx.task, "host": socket.gethostname()}
