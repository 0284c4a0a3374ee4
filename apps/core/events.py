"""Live-update events: published to a Channels group only after the surrounding transaction commits.

A topic is a name the page subscribes to (``dashboard``, later ``cluster.42``); its Channels group is
``topic.<name>``. Payloads are small dicts; consumers re-render the topic's fragment for each viewer,
so what a viewer sees is always filtered by their own rights.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import re
import threading
from typing import Any, TypedDict

from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

TOPIC_RE = re.compile(r"^[a-z][a-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*$")


class TopicEvent(TypedDict):
    type: str  # the consumer handler: "topic.event"
    topic: str
    payload: dict[str, Any]


def group_for(topic: str) -> str:
    """The Channels group of a topic; raises ValueError for names Channels would reject."""
    if not TOPIC_RE.match(topic) or len(topic) > 90:
        raise ValueError(f"invalid topic name {topic!r}")
    return f"topic.{topic}"


def send_now(topic: str, payload: dict[str, Any]) -> None:
    """Send to the topic's group immediately (use :func:`publish` inside transactions)."""
    send_many([(topic, payload)])


class _Publisher:
    """A long-lived event loop in a daemon thread that sends live updates for this process.

    ``async_to_sync`` per commit would build a new event loop and new Redis connections every time
    (about 4 ms per write); this loop keeps the channel layer's connections. Sends are fire-and-forget:
    a write never waits for, nor fails because of, a live update.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="icc-live-publisher", daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def submit(self, items: list[tuple[str, dict[str, Any]]]) -> concurrent.futures.Future[None]:
        future = asyncio.run_coroutine_threadsafe(_send_all(items), self.loop())
        future.add_done_callback(_log_failure)
        return future


_publisher = _Publisher()


async def _send_all(items: list[tuple[str, dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    # One after another on this loop's connection: concurrent sends would each open a connection.
    for topic, payload in items:
        await layer.group_send(group_for(topic), TopicEvent(type="topic.event", topic=topic, payload=payload))


def _log_failure(future: concurrent.futures.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("live update failed: %s", future.exception())


def send_many(items: list[tuple[str, dict[str, Any]]]) -> concurrent.futures.Future[None] | None:
    """Hand events to this process' publisher (returns a future for callers that want to wait)."""
    if not items:
        return None
    try:
        return _publisher.submit(items)
    except Exception:  # a live view missing one update must never fail the write that caused it
        logger.exception("live update to %d topic(s) failed", len(items))
        return None


def publish(topic: str, payload: dict[str, Any] | None = None, *, using: str | None = None) -> None:
    """Publish ``payload`` to ``topic`` once the current transaction commits (at once outside one)."""
    publish_many([(topic, payload or {})], using=using)


def publish_many(items: list[tuple[str, dict[str, Any]]], *, using: str | None = None) -> None:
    """Publish several events after commit, sent together."""
    for topic, _ in items:
        group_for(topic)  # validate early, inside the caller's code path
    data = [(topic, dict(payload)) for topic, payload in items]
    transaction.on_commit(lambda: send_many(data), using=using)


# --- core's own live topic ----------------------------------------------------------------------------------

DASHBOARD = "dashboard"  # the dashboard's counters


class DashboardChanged(TypedDict):
    reason: str  # what changed, e.g. ``cluster.registered``


def dashboard_changed(reason: str) -> None:
    """After commit: every open dashboard re-renders its counters."""
    payload: DashboardChanged = {"reason": reason}
    publish(DASHBOARD, dict(payload))
