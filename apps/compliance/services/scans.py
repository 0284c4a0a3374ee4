"""Scanning every observed workload on demand (besides every ``COMPLIANCE_SCAN_SECONDS``).

``scan_request`` needs the act right globally (a scan reads the whole fleet), is audited
``compliance.scan.request`` and enqueues ``compliance.scan`` after commit. One request a minute: a second one
within it is a conflict (the first is still running or just ran), so a button held down never floods the queue.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db import transaction

from apps.audit.services import audit_record
from apps.core.access import GLOBAL, Action, can_at
from apps.core.errors import ConflictError, ForbiddenError

THROTTLE_KEY = "compliance:scan-requested"
THROTTLE_SECONDS = 60


def scan_request(*, by: Any = None) -> None:
    if by is not None and not can_at(by, Action.ACT, GLOBAL):
        raise ForbiddenError("your role does not allow scanning the whole fleet")
    if not cache.add(THROTTLE_KEY, 1, THROTTLE_SECONDS):
        raise ConflictError("a scan was requested less than a minute ago; its results are on their way", field="scan")
    from apps.compliance.tasks import scan

    with transaction.atomic():
        audit_record(action="compliance.scan.request", message="scan of every observed workload requested")
        transaction.on_commit(lambda: scan.apply_async(queue="analysis"))
