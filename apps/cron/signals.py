"""Domain events of the cron app, for other apps to subscribe to (notifications will).

``run_late``: a run not started, or not finished, within its job's grace period (kwargs ``run``, ``job``,
``what``: "start" or "finish"). ``run_failed``: a run finished failed or timed out after its last attempt
(kwargs ``run``, ``job``). Both are sent after the change is committed.
"""

from __future__ import annotations

from django.dispatch import Signal

run_late = Signal()
run_failed = Signal()
