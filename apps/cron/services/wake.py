"""Waking the scheduler early when jobs change, so it can sleep until the earliest due slot instead of polling.

In one process (the embedded default, tests) a ``threading.Event``; across processes a Redis pub/sub message
on ``icc:cron:wake`` that every scheduler's listener thread turns into the same event. A lost message costs
at most the scheduler's longest sleep (``CRON_MAX_SLEEP_SECONDS``).
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.db import transaction

from apps.core import redis_client

CHANNEL = "icc:cron:wake"
event = threading.Event()


def notify() -> None:
    event.set()
    redis_client.publish(CHANNEL, "a cron job change")  # the scheduler still wakes at its longest sleep


def after_commit() -> None:
    transaction.on_commit(notify)


def listen(stop: threading.Event) -> None:
    """Turn wake messages from other processes into ``event`` until ``stop`` is set (a daemon thread)."""
    if settings.REDIS_URL:
        redis_client.listen(CHANNEL, event.set, stop=stop)
