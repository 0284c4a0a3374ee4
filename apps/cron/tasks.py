"""Cron tasks on the ``cron`` queue: execute one run (the scheduler and the reaper send them)."""

from __future__ import annotations

from apps.core.tasking import icc_task
from apps.cron import execution


@icc_task(name="cron.execute_run", queue="cron", soft_time_limit=3600, time_limit=3700)
def execute_run(run_id: int) -> str | None:
    """Claim and run one run (a no-op when another worker has it, or it is no longer due)."""
    return execution.execute(run_id)
