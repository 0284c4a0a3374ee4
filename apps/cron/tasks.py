"""Cron tasks on the ``cron`` queue: execute one run (the scheduler and the reaper send them)."""

from __future__ import annotations

from apps.core.tasking import icc_task
from apps.cron import execution


@icc_task(name="cron.execute_run", queue="cron", soft_time_limit=3600, time_limit=3700)
def execute_run(run_id: int) -> str | None:
    """Claim and run one run (a no-op when another worker has it, or it is no longer due); a failed attempt
    with attempts left comes back after its backoff."""
    state, retry_in = execution.execute_once(run_id)
    if retry_in is not None:
        execute_run.apply_async(args=[run_id], queue="cron", countdown=retry_in)
    return state
