"""Cron tasks on the ``cron`` queue: execute one run, or a batch of runs due together (the scheduler and the
reaper send them)."""

from __future__ import annotations

from apps.core.tasking import icc_task
from apps.cron import batch, execution


@icc_task(name="cron.execute_run", queue="cron", soft_time_limit=3600, time_limit=3700)
def execute_run(run_id: int) -> str | None:
    """Claim and run one run (a no-op when another worker has it, or it is no longer due); a failed attempt
    with attempts left comes back after its backoff."""
    state, retry_in = execution.execute_once(run_id)
    if retry_in is not None:
        execute_run.apply_async(args=[run_id], queue="cron", countdown=retry_in)
    return state


@icc_task(name="cron.execute_batch", queue="cron", soft_time_limit=3600, time_limit=3700)
def execute_batch(run_ids: list[int]) -> int:
    """Runs due together: the plain ones claimed and fired at once (:mod:`apps.cron.batch`), the others each
    sent to ``execute_run`` at its due time; retries come back after their backoff."""
    rest, retries = batch.execute_batch(run_ids, execution.worker_name())
    for run_id, delay in retries:
        execute_run.apply_async(args=[run_id], queue="cron", countdown=delay)
    if rest:
        due = dict(execution.due_times(rest))
        now = execution.utcnow()
        for run_id in rest:
            wait = max(0.0, (due[run_id] - now).total_seconds()) if run_id in due else 0.0
            execute_run.apply_async(args=[run_id], queue="cron", countdown=wait)
    return len(run_ids) - len(rest)
