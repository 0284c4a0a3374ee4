"""One Redis client per process and timeout, and the publish/listen pair that processes use to tell each other
that something changed (cron's scheduler wake-up, compliance's admission snapshot).

Everything here answers None / False / returns at once when ``REDIS_URL`` is empty (the embedded default): callers
then fall back to what one process can do alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

_clients: dict[tuple[str, float], redis.Redis] = {}
_lock = threading.Lock()


def client(timeout: float = 5.0) -> redis.Redis | None:
    """The shared client for ``REDIS_URL`` with this socket timeout (None without Redis). Thread-safe: redis-py
    clients hold a connection pool."""
    url = settings.REDIS_URL
    if not url:
        return None
    key = (url, timeout)
    found = _clients.get(key)
    if found is None:
        with _lock:
            found = _clients.get(key)
            if found is None:
                found = _clients[key] = redis.Redis.from_url(
                    url, socket_timeout=timeout, socket_connect_timeout=timeout
                )
    return found


def publish(channel: str, what: str) -> bool:
    """Tell every listener of ``channel`` (``what`` names the change in the warning if Redis is unreachable)."""
    found = client(2.0)
    if found is None:
        return False
    try:
        found.publish(channel, b"1")
    except redis.RedisError as exc:
        logger.warning("could not announce %s: %s", what, type(exc).__name__)
        return False
    return True


def listen(
    channel: str, on_message: Callable[[], None], *, stop: threading.Event, idle: Callable[[], None] | None = None
) -> None:
    """Call ``on_message`` for every message on ``channel`` and ``idle`` about every second, until ``stop`` is set;
    reconnects after Redis errors (calling ``idle`` then too, so nothing waits on a lost message for long)."""
    while not stop.is_set():
        found = client(5.0)
        if found is None:
            stop.wait(1.0)
            if idle is not None:
                idle()
            continue
        try:
            pubsub = found.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(channel)
            while not stop.is_set():
                if pubsub.get_message(timeout=1.0):
                    on_message()
                elif idle is not None:
                    idle()
        except redis.RedisError as exc:
            logger.warning("listener of %s: %s; reconnecting", channel, type(exc).__name__)
            stop.wait(2.0)
            if idle is not None:
                idle()
