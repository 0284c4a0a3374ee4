"""Waking the scheduler early when jobs change, so it can sleep until the earliest due slot instead of polling.

In one process (the embedded default, tests) a ``threading.Event``; across processes a Redis pub/sub message
on ``icc:cron:wake`` that every scheduler's listener thread turns into the same event. A lost message costs
at most the scheduler's longest sleep (``CRON_MAX_SLEEP_SECONDS``).
"""

from __future__ import annotations

import logging
import threading

import redis
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

CHANNEL = "icc:cron:wake"
event = threading.Event()


def notify() -> None:
    event.set()
    if not settings.REDIS_URL:
        return
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        client.publish(CHANNEL, b"1")
        client.close()
    except redis.RedisError as exc:  # the scheduler still wakes at its longest sleep
        logger.warning("could not wake the cron scheduler: %s", type(exc).__name__)


def after_commit() -> None:
    transaction.on_commit(notify)


def listen(stop: threading.Event) -> None:
    """Turn wake messages from other processes into ``event`` until ``stop`` is set (a daemon thread)."""
    if not settings.REDIS_URL:
        return
    while not stop.is_set():
        try:
            client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(CHANNEL)
            while not stop.is_set():
                if pubsub.get_message(timeout=1.0):
                    event.set()
        except redis.RedisError as exc:
            logger.warning("cron wake listener: %s; reconnecting", type(exc).__name__)
            stop.wait(2.0)
