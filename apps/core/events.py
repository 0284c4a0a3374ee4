"""Live-update events: published to a Channels group only after the surrounding transaction commits.

A topic is a name the page subscribes to (``dashboard``, later ``cluster.42``); its Channels group is
``topic.<name>``. Payloads are small dicts; consumers re-render the topic's fragment for each viewer,
so what a viewer sees is always filtered by their own rights.
"""

from __future__ import annotations

import logging
import re
from typing import Any, TypedDict

from asgiref.sync import async_to_sync
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


def send_many(items: list[tuple[str, dict[str, Any]]]) -> None:
    """Send several events in one round of the event loop (one Redis connection, sends in parallel)."""
    layer = get_channel_layer()
    if layer is None or not items:
        return

    async def send_all() -> None:
        messages = [
            (group_for(topic), TopicEvent(type="topic.event", topic=topic, payload=payload)) for topic, payload in items
        ]
        # One after another on this loop's connection: concurrent sends would each open a connection.
        for group, message in messages:
            await layer.group_send(group, message)

    try:
        async_to_sync(send_all)()
    except Exception:  # a live view missing one update must never fail the write that caused it
        logger.exception("live update to %d topic(s) failed", len(items))


def publish(topic: str, payload: dict[str, Any] | None = None, *, using: str | None = None) -> None:
    """Publish ``payload`` to ``topic`` once the current transaction commits (at once outside one)."""
    publish_many([(topic, payload or {})], using=using)


def publish_many(items: list[tuple[str, dict[str, Any]]], *, using: str | None = None) -> None:
    """Publish several events after commit, sent together."""
    for topic, _ in items:
        group_for(topic)  # validate early, inside the caller's code path
    data = [(topic, dict(payload)) for topic, payload in items]
    transaction.on_commit(lambda: send_many(data), using=using)
