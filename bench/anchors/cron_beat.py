"""The anchor of ``bench/cron.py``: a tiny Celery app whose beat fires the same entries as ICC's cron jobs.

Celery beat with its default ``PersistentScheduler`` (a shelve file per beat) sends ``BENCH_BEAT_ENTRIES``
entries on ``crontab()`` (every minute); this app's workers POST each to the bench's receiver with the key
``beat:<entry>:<slot>``. The slot is the minute in which beat published the message (stamped by a
``before_task_publish`` hook in the beat process), so the receiver can tell a late run from the next minute's.

Nothing of ICC is imported: its own queue and task name, its own key prefix on the bench's Redis db
(``BENCH_BEAT_BROKER``), and no Django fixup.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import requests
from celery import Celery
from celery.schedules import crontab
from celery.signals import before_task_publish

QUEUE = "bench_beat"
TASK = "bench_beat.fire"
KEY_PREFIX = "icc-bench-beat:"

app = Celery("icc_bench_beat", broker=os.environ.get("BENCH_BEAT_BROKER", "memory://"), fixups=[])
app.conf.update(
    broker_transport_options={"global_keyprefix": KEY_PREFIX, "visibility_timeout": 3600},
    broker_connection_retry_on_startup=True,
    task_default_queue=QUEUE,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    timezone="UTC",
    enable_utc=True,
    worker_hijack_root_logger=False,
    beat_schedule={
        f"entry-{number:04d}": {"task": TASK, "schedule": crontab(), "args": (f"entry-{number:04d}",)}
        for number in range(int(os.environ.get("BENCH_BEAT_ENTRIES", "0")))
    },
)


@before_task_publish.connect(dispatch_uid="icc-bench-beat-slot")
def _stamp_slot(sender: str | None = None, body: Any = None, **_: Any) -> None:
    """In the beat process: the minute the message is published in, as the run's slot (its key)."""
    if sender != TASK or not isinstance(body, tuple | list) or len(body) < 2 or not isinstance(body[1], dict):
        return
    body[1]["slot"] = datetime.now(UTC).replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@app.task(name=TASK, ignore_result=True)
def fire(entry: str, slot: str = "") -> None:
    """POST to the receiver, as ICC's cron worker does (a new connection per call)."""
    requests.post(
        os.environ["BENCH_BEAT_RECEIVER"],
        headers={"Idempotency-Key": f"beat:{entry}:{slot}"},
        timeout=10,
    )
