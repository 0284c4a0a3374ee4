"""Periodic audit work: verify the chain, write a signed checkpoint."""

from __future__ import annotations

import logging
from typing import Any

from apps.audit.verification import record_verify_result, verify_chain, write_checkpoint
from apps.core.tasking import icc_task

logger = logging.getLogger(__name__)


@icc_task(name="audit.verify_chain", queue="analysis", soft_time_limit=3000, time_limit=3300)
def audit_verify_chain() -> dict[str, Any]:
    result = verify_chain()
    summary = record_verify_result(result)
    if not result.ok:
        logger.error("audit chain broken at seq %s: %s", result.first_bad_seq, result.reason)
    return summary


@icc_task(name="audit.write_checkpoint", queue="analysis", soft_time_limit=300)
def audit_write_checkpoint() -> str:
    return str(write_checkpoint())
