"""Live topics of the traffic pages and their payloads: the one place their names are built.

* ``traffic``: the Traffic page (every application the viewer reads);
* ``traffic.application.<id>``: one application's Traffic tab.

A flush publishes for the applications that got data in it, at most once every ``THROTTLE_SECONDS`` per
application across every flusher (a Redis ``SET NX`` with an expiry; in one process without Redis): pages
re-read rollups, so more pushes would only cost queries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import TypedDict

import redis

from apps.core import redis_client
from apps.core.events import publish_many

logger = logging.getLogger(__name__)

TRAFFIC = "traffic"  # the Traffic page; prefix of the per-application topics
APPLICATION = f"{TRAFFIC}.application"
THROTTLE_SECONDS = 5
_THROTTLE_KEY = "icc:traffic:live:"
_recent: dict[int, float] = {}
_lock = threading.Lock()


def application(application_id: int) -> str:
    """One application's Traffic tab."""
    return f"{APPLICATION}.{application_id}"


class TrafficChanged(TypedDict):
    application: int  # 0 on the Traffic page's topic: several


def _due(application_ids: list[int]) -> list[int]:
    """The applications not announced within the last ``THROTTLE_SECONDS`` (and mark them announced)."""
    found = redis_client.client(2.0)
    if found is not None:
        try:
            pipe = found.pipeline(transaction=False)
            for pk in application_ids:
                pipe.set(f"{_THROTTLE_KEY}{pk}", b"1", nx=True, ex=THROTTLE_SECONDS)
            return [pk for pk, fresh in zip(application_ids, pipe.execute(), strict=True) if fresh]
        except redis.RedisError as exc:
            logger.warning("traffic live throttle unavailable: %s", type(exc).__name__)
    now = time.monotonic()
    with _lock:
        due = [pk for pk in application_ids if now - _recent.get(pk, -THROTTLE_SECONDS) >= THROTTLE_SECONDS]
        for pk in due:
            _recent[pk] = now
    return due


def traffic_flushed(application_ids: Iterable[int]) -> list[int]:
    """After commit of a flush: the Traffic page and the tabs of ``application_ids`` re-read their figures;
    returns the applications announced (the others were announced moments ago)."""
    due = _due(sorted({int(pk) for pk in application_ids if pk}))
    if not due:
        return []
    first: TrafficChanged = {"application": 0}
    items: list[tuple[str, dict[str, object]]] = [(TRAFFIC, dict(first))]
    for pk in due:
        payload: TrafficChanged = {"application": pk}
        items.append((application(pk), dict(payload)))
    publish_many(items)
    return due
