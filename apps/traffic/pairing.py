"""Pairing client spans with the server spans they caused, across services and flush batches.

A client span waits under ``<trace id><its span id>``; a server span under ``<trace id><its parent span id>`` —
the same key when one caused the other. Whichever arrives second finds the first and the pair becomes a graph edge
with both sides' latencies. What waits longer than ``TRAFFIC_PAIRING_SECONDS`` comes back from :func:`expired` as
unpaired (a call to something that sends no spans, or a caller that sends none). Sides that meet inside one flush
batch pair at once, in memory. The others wait: with Redis as keys with a deadline in a sorted set, shared by every
flusher (Lua scripts take or leave each side atomically, one round trip per 2,000 sides); without, an in-process
dict.
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


# Atomic in Redis (one round trip per chunk, no race between flushers): each side takes its other side if that is
# waiting (removing it) or waits under its key with a deadline. KEYS: the pending set, then the sides' keys; ARGV:
# the expiry in seconds, the deadline, then the sides (JSON lists: the first 4 bytes are '["c"' or '["s"').
_MATCH = """
local out = {}
for i = 2, #KEYS do
  local side = ARGV[i + 1]
  local other = redis.call('GET', KEYS[i])
  if not other then
    redis.call('SET', KEYS[i], side, 'EX', ARGV[1])
    redis.call('ZADD', KEYS[1], ARGV[2], KEYS[i])
    out[i - 1] = false
  elseif string.sub(other, 1, 4) ~= string.sub(side, 1, 4) then
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', KEYS[1], KEYS[i])
    out[i - 1] = other
  else
    out[i - 1] = false
  end
end
return out
"""
# KEYS: the pending set; ARGV: now, limit. The sides' keys come from the set (standalone Redis, as everywhere).
_EXPIRED = """
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, key in ipairs(keys) do
  local side = redis.call('GET', key)
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], key)
  if side then out[#out + 1] = side end
end
return out
"""
CHUNK = 2000  # sides per script call: Redis runs one call at a time, so keep each short
_scripts: dict[int, tuple[Any, Any]] = {}


def _script(client: redis.Redis) -> tuple[Any, Any]:
    found = _scripts.get(id(client))
    if found is None:
        found = _scripts[id(client)] = (client.register_script(_MATCH), client.register_script(_EXPIRED))
    return found


def _within(items: list[tuple[str, Waiting]]) -> tuple[list[tuple[Waiting, Waiting]], list[tuple[str, Waiting]]]:
    """Pairs found inside the batch itself (most are: a round of spans flushes together), and the sides left."""
    first: dict[str, Waiting] = {}
    pairs = []
    for key, side in items:
        other = first.get(key)
        if other is None:
            first[key] = side
        elif other[0] != side[0]:
            del first[key]
            pairs.append((side, other))
    return pairs, list(first.items())


def match(items: list[tuple[str, Waiting]]) -> list[tuple[Waiting, Waiting]]:
    """Pair each (key, waiting side) with the other side if it is there, else leave it waiting; returns the pairs
    as (this side, the other side)."""
    pairs, left = _within(items)
    if not left:
        return pairs
    window = float(settings.TRAFFIC_PAIRING_SECONDS)
    deadline = time.time() + window
    client = _redis()
    if client is None:
        return pairs + _match_memory(left, deadline)
    script = _script(client)[0]
    for at in range(0, len(left), CHUNK):
        chunk = left[at : at + CHUNK]
        keys = [PENDING, *(PREFIX + key for key, _ in chunk)]
        found = script(keys=keys, args=[int(window * 2) + 1, deadline, *(orjson.dumps(side) for _, side in chunk)])
        pairs.extend((side, orjson.loads(other)) for (_, side), other in zip(chunk, found, strict=True) if other)
    return pairs


def expired(now: float | None = None, limit: int = 5000) -> list[Waiting]:
    """Sides that waited past their deadline, each returned once (then forgotten)."""
    now = time.time() if now is None else now
    client = _redis()
    if client is None:
        with _memory.lock:
            gone = [k for k, (_, deadline) in _memory.waiting.items() if deadline <= now][:limit]
            return [_memory.waiting.pop(k)[0] for k in gone]
    found: Any = _script(client)[1](keys=[PENDING], args=[now, limit])  # atomic: each side comes back once
    return [orjson.loads(v) for v in found]


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
