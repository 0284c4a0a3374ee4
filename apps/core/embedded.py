"""The embedded default's task machinery: a real Celery worker and beat scheduler as threads.

With no broker configured, ``manage.py run`` starts them inside the web process, consuming from
kombu's in-process ``memory://`` transport. Tasks, retries and periodic schedules behave as they do
with separate worker and beat roles (minus hard time limits, which need the prefork pool).
It also runs the background loops apps register (:mod:`apps.core.registry`), such as the cluster watcher
with ICC_WATCHER_EMBEDDED (by default whenever tasks are embedded), as threads.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

_state: dict[str, Any] = {}


def start(*, concurrency: int = 4) -> None:
    """Start the worker and the scheduler threads (idempotent)."""
    if _state:
        return
    from celery import current_app as app  # the project's app, made current when iccapp is imported
    from celery.beat import EmbeddedService
    from celery.utils.nodenames import anon_nodename

    from apps.core.tasking import QUEUES

    worker = app.WorkController(
        app=app,
        concurrency=concurrency,
        pool="threads",
        hostname=f"embedded-{anon_nodename()}",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        queues=list(QUEUES),  # every queue ICC's tasks use (without it, only the default one)
        loglevel=settings.LOG_LEVEL,
    )
    worker_thread = threading.Thread(target=worker.start, name="icc-embedded-worker", daemon=True)
    worker_thread.start()
    schedule_file = str(settings.ICC_DATA_DIR / "beat-schedule")
    beat: Any = EmbeddedService(app, thread=True, schedule_filename=schedule_file)
    beat.name = "icc-embedded-beat"
    beat.start()
    _state.update(worker=worker, worker_thread=worker_thread, beat=beat)
    logger.info("embedded worker (%d threads) and scheduler started", concurrency)


def running() -> bool:
    return bool(_state)


def healthy() -> bool:
    return bool(_state) and _state["worker_thread"].is_alive() and _state["beat"].is_alive()


def stop(timeout: float = 10.0) -> None:
    """Stop the scheduler, then let the worker finish its current tasks."""
    if not _state:
        return
    from celery.worker import state as worker_state

    _state["beat"].stop()
    worker_state.should_terminate = 0  # type: ignore[assignment]
    try:
        _state["worker"].stop(in_sighandler=False)
    except Exception:  # the worker may already be stopping on its own
        logger.debug("worker stop raised", exc_info=True)
    _state["worker_thread"].join(timeout)
    worker_state.should_terminate = None
    _state.clear()
    logger.info("embedded worker and scheduler stopped")


def start_background() -> list[str]:
    """Start the background loops apps registered (the cluster watcher) as threads of this process."""
    from apps.core.registry import background_start

    return background_start()


def stop_background(names: list[str]) -> None:
    """Stop them in reverse order (the watcher releases its leases)."""
    from apps.core.registry import background_stop

    background_stop(names)
