"""The Celery task decorator every ICC task uses.

``icc_task`` insists on an explicit name and queue, sets soft and hard time limits, logs start and
end as structured records carrying the originating request id, and counts runs and durations in
Prometheus. Tasks take ids, call services, and are enqueued with ``enqueue_on_commit``. The last few runs of
each task are kept in the cache (``task_runs``), so the portal can show ICC's own periodic work beside cron jobs.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.core.cache import cache
from django.db import transaction

from apps.core import context, metrics

logger = logging.getLogger("icc.tasks")
F = TypeVar("F", bound=Callable[..., Any])

QUEUES = ("default", "reconcile", "decisions", "cron", "analysis")
TASK_RUNS_KEPT = 10
TASK_RUNS_TTL = 7 * 86400


def _task_runs_key(name: str) -> str:
    return f"icc:task-runs:{name}"


def task_run_record(name: str, *, at: float, outcome: str, duration_ms: float) -> None:
    """Remember one run of task ``name`` (the newest ``TASK_RUNS_KEPT``). Best effort: a cache that is down or
    a race between two workers loses a record, never a task."""
    try:
        key = _task_runs_key(name)
        runs = cache.get(key) or []
        if not isinstance(runs, list):
            runs = []
        entry = {"at": round(at, 3), "outcome": outcome, "duration_ms": round(duration_ms, 2)}
        cache.set(key, [entry, *runs][:TASK_RUNS_KEPT], TASK_RUNS_TTL)
    except Exception:  # the record is a courtesy to the portal; the task's own outcome stands
        logger.debug("could not record the run of %s", name, exc_info=True)


def task_runs(name: str) -> list[dict[str, Any]]:
    """The last runs of task ``name``, newest first: ``[{"at": unix seconds, "outcome", "duration_ms"}]``."""
    try:
        runs = cache.get(_task_runs_key(name)) or []
    except Exception:  # an unreachable cache shows no runs rather than failing the page
        return []
    return [r for r in runs if isinstance(r, dict)][:TASK_RUNS_KEPT] if isinstance(runs, list) else []


def icc_task(
    *,
    name: str,
    queue: str = "default",
    soft_time_limit: int = 60,
    time_limit: int | None = None,
    acks_late: bool | None = None,
    **options: Any,
) -> Callable[[F], Any]:
    """Declare a Celery task: ``@icc_task(name="clusters.sync", queue="reconcile", soft_time_limit=120)``."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; known: {', '.join(QUEUES)}")
    hard = time_limit if time_limit is not None else soft_time_limit + 30
    if hard <= soft_time_limit:
        raise ValueError("time_limit must exceed soft_time_limit")

    if acks_late is not None:  # None: the app's default (late acknowledgement, iccapp.celery)
        options["acks_late"] = acks_late

    def decorate(func: F) -> Any:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            started_at = time.time()
            outcome = "success"
            logger.info("task started", extra={"task": name})
            try:
                return func(*args, **kwargs)
            except SoftTimeLimitExceeded:
                outcome = "timeout"
                logger.error("task hit its soft time limit of %ss", soft_time_limit, extra={"task": name})
                raise
            except Exception:
                outcome = "failure"
                logger.exception("task failed", extra={"task": name})
                raise
            finally:
                elapsed = time.perf_counter() - started
                metrics.TASK_RUNS.labels(task=name, outcome=outcome).inc()
                metrics.TASK_DURATION.labels(task=name).observe(elapsed)
                task_run_record(name, at=started_at, outcome=outcome, duration_ms=elapsed * 1000)
                logger.info(
                    "task finished", extra={"task": name, "outcome": outcome, "duration_ms": round(elapsed * 1000, 2)}
                )

        return shared_task(
            name=name,
            queue=queue,
            soft_time_limit=soft_time_limit,
            time_limit=hard,
            **options,
        )(run)

    return decorate


def enqueue_on_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    """Send ``task`` once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: task.apply_async(args=args, kwargs=kwargs))


def current_request_id() -> str:
    return context.current().request_id
