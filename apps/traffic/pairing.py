"""Pairing client spans with the server spans they caused, across services and flush batches.

A client span waits under ``<trace id><its span id>``; a server span under ``<trace id><its parent span id>`` —
the same key when one caused the other. Whichever arrives second finds the first and the pair becomes a graph edge
with both sides' latencies. What waits longer than ``TRAFFIC_PAIRING_SECONDS`` comes back from :func:`expired` as
unpaired (a call to something that sends no spans, or a caller that sends none). With Redis the waiting sides are
keys with a deadline in a sorted set, shared by every flusher (``SET NX`` settles two flushers racing on one key);
without, an in-process dict.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import redis
from django.conf import settings

from apps.core import redis_client

PREFIX = "icc:traffic:pair:"
PENDING = "icc:traffic:pending"
Waiting = list[Any]  # [side "c"/"s", application id, end, duration_ms, error, peer, address]


class _Memory:
    def __init__(self) -> None:
        self.waiting: dict[str, tuple[Waiting, float]] = {}
        self.lock = threading.Lock()


_memory = _Memory()


def _redis() -> redis.Redis | None:
    return redis_client.client(5.0)


def _match_memory(items: list[tuple[str, Waiting]], deadline: float) -> list[tuple[Waiting, Waiting]]:
    pairs = []
    with _memory.lock:
        for key, mine in items:
            other = _memory.waiting.get(key)
            if other is not None and other[0][0] != mine[0]:
                del _memory.waiting[key]
                pairs.append((mine, other[0]))
            elif other is None:
                _memory.waiting[key] = (mine, deadline)
    return pairs


def _pairs(mine: list[tuple[str, Waiting]], found: list[Any]) -> tuple[list[tuple[Waiting, Waiting]], list[int]]:
    """Pairs of each waiting side with what its key held (when that is the other side), and the indexes left."""
    pairs, left = [], []
    for index, ((_, side), other) in enumerate(zip(mine, found, strict=True)):
        theirs = orjson.loads(other) if other else None
        if theirs is not None and theirs[0] != side[0]:
            pairs.append((side, theirs))
        else:
            left.append(index)
    return pairs, left


def _getdel(client: redis.Redis, keys: list[str]) -> list[Any]:
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.getdel(key)
        return list(pipe.execute())


def match(items: list[tuple[str, Waiting]]) -> list[tuple[Waiting, Waiting]]:
    """Pair each (key, waiting side) with the other side if it is there, else leave it waiting; returns the pairs
    as (this side, the other side)."""
    if not items:
        return []
    window = float(settings.TRAFFIC_PAIRING_SECONDS)
    deadline = time.time() + window
    client = _redis()
    if client is None:
        return _match_memory(items, deadline)
    keyed = [(PREFIX + key, side) for key, side in items]
    pairs, left_at = _pairs(keyed, _getdel(client, [key for key, _ in keyed]))
    left = [keyed[i] for i in left_at]
    if not left:
        return pairs
    with client.pipeline(transaction=False) as pipe:
        for key, side in left:
            pipe.set(key, orjson.dumps(side), nx=True, ex=int(window * 2) + 1)
        stored = pipe.execute()
    waiting = {key: deadline for (key, _), ok in zip(left, stored, strict=True) if ok}
    if waiting:
        client.zadd(PENDING, waiting)
    late = [item for item, ok in zip(left, stored, strict=True) if not ok]  # the other side came in between
    if late:
        more, _ = _pairs(late, _getdel(client, [key for key, _ in late]))
        pairs.extend(more)
    return pairs


def expired(now: float | None = None, limit: int = 5000) -> list[Waiting]:
    """Sides that waited past their deadline, each returned once (then forgotten)."""
    now = time.time() if now is None else now
    client = _redis()
    if client is None:
        with _memory.lock:
            gone = [k for k, (_, deadline) in _memory.waiting.items() if deadline <= now][:limit]
            return [_memory.waiting.pop(k)[0] for k in gone]
    found: Any = client.zrangebyscore(PENDING, "-inf", now, start=0, num=limit)
    keys = [k.decode() if isinstance(k, bytes) else str(k) for k in found]
    if not keys:
        return []
    client.zrem(PENDING, *keys)
    return [orjson.loads(v) for v in _getdel(client, keys) if v]  # GETDEL: each side comes back to one flusher only


def clear() -> None:
    client = _redis()
    if client is None:
        with _memory.lock:
            _memory.waiting.clear()
        return
    keys = list(client.scan_iter(match=PREFIX + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.delete(PENDING)
