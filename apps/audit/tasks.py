"""Periodic audit work: verify the chain, write a signed checkpoint."""

from __future__ import annotations

import logging
from typing import Any

from apps.audit.verification import record_verify_result, verify_chain, write_checkpoint
from apps.core.leases import Held, lease_valid, run_once
from apps.core.tasking import icc_task

logger = logging.getLogger(__name__)


@icc_task(name="audit.verify_chain", queue="analysis", soft_time_limit=3000, time_limit=3300)
def audit_verify_chain() -> dict[str, Any]:
    result = verify_chain()
    summary = record_verify_result(result)
    if not result.ok:
        logger.error("audit chain broken at seq %s: %s", result.first_bad_seq, result.reason)
    return summary


CHECKPOINT_LEASE = "audit:checkpoint"


@icc_task(name="audit.write_checkpoint", queue="analysis", soft_time_limit=300)
def audit_write_checkpoint() -> str | None:
    """Write one checkpoint however many times the task is sent within its time limit (two beats, a re-queued
    task): the first to take the ``audit:checkpoint`` lease writes; the lease lapses on its own."""

    def write(held: Held) -> str | None:
        if not lease_valid(held.name, held.generation):  # the fence: the lease lapsed (a stalled worker)
            return None
        return str(write_checkpoint())

    ran, path = run_once(CHECKPOINT_LEASE, 330, write, release=False)
    if not ran or path is None:
        logger.info("audit checkpoint skipped: another process holds the %s lease", CHECKPOINT_LEASE)
        return None
    return str(path)
