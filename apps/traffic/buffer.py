"""The ingestion buffer between the receiver and the rollups, so a request never waits on database writes.

The receiver pushes one entry per export request (the application and the request as protobuf: the flushers
build its span records; request samples as JSON rows); flushers pop entries in batches and roll them up. With
Redis (every deployment but the embedded default) it is a list shared by all processes (``icc:traffic:buffer``)
with a span counter beside it; without, an in-process deque. Both are bounded by ``TRAFFIC_BUFFER_MAX_SPANS``: a
push beyond it is refused (the receiver answers 503 with Retry-After, and OTLP exporters retry), so memory stays
bounded when the flushers fall behind.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import orjson
import redis
from django.conf import settings

from apps.core import redis_client

KEY = "icc:traffic:buffer"
COUNT_KEY = "icc:traffic:buffered_spans"
OTLP = "otlp"  # the kind of an OTLP export request kept as protobuf (push_raw)


# The bound's check and the push in one round trip, atomically (two receivers cannot both pass the check).
_PUSH = """
if tonumber(redis.call('GET', KEYS[2]) or '0') + tonumber(ARGV[2]) > tonumber(ARGV[3]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('INCRBY', KEYS[2], ARGV[2])
return 1
"""
_scripts: dict[int, Any] = {}


class Full(Exception):
    """The buffer holds its maximum: come back later."""


class _Memory:
    def __init__(self) -> None:
        self.entries: deque[bytes] = deque()
        self.spans = 0
        self.lock = threading.Lock()


_memory = _Memory()


def _redis() -> redis.Redis | None:
    return redis_client.client(5.0)


def pack(application_id: int, kind: str, records: list[Any]) -> bytes:
    """``<count>|<json>``: the count is read without parsing the records."""
    return b"%d|" % len(records) + orjson.dumps([application_id, kind, records])


def count_of(entry: bytes) -> int:
    return int(entry[: entry.index(b"|")])


def pack_raw(application_id: int, kind: str, count: int, payload: bytes) -> bytes:
    """``<count>|#<application>|<kind>|<payload>``: bytes kept as they are (an OTLP request's protobuf)."""
    return b"%d|#%d|%s|" % (count, application_id, kind.encode()) + payload


def unpack(entry: bytes) -> tuple[int, str, Any]:
    """The application, the kind and the records (or the raw payload of a :func:`pack_raw` entry)."""
    at = entry.index(b"|") + 1
    if entry[at : at + 1] == b"#":
        kind_at = entry.index(b"|", at) + 1
        payload_at = entry.index(b"|", kind_at) + 1
        return int(entry[at + 1 : kind_at - 1]), entry[kind_at : payload_at - 1].decode(), entry[payload_at:]
    application_id, kind, records = orjson.loads(entry[at:])
    return int(application_id), str(kind), records


def push(application_id: int, kind: str, records: list[Any]) -> None:
    """Queue ``records`` (span records or request samples, as ``kind`` says); raises Full at the bound."""
    if records:
        _push(pack(application_id, kind, records), len(records))


def push_raw(application_id: int, kind: str, count: int, payload: bytes) -> None:
    """Queue ``payload`` as it is (``count`` records' worth against the bound); raises Full at the bound."""
    if count > 0:
        _push(pack_raw(application_id, kind, count, payload), count)


def _push(entry: bytes, count: int) -> None:
    limit = settings.TRAFFIC_BUFFER_MAX_SPANS
    client = _redis()
    if client is None:
        with _memory.lock:
            if _memory.spans + count > limit:
                raise Full
            _memory.entries.append(entry)
            _memory.spans += count
        return
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_PUSH)
    if not script(keys=[KEY, COUNT_KEY], args=[entry, count, limit]):
        raise Full


def pop(max_entries: int) -> list[bytes]:
    """Take up to ``max_entries`` entries, oldest first (each is taken by exactly one flusher)."""
    client = _redis()
    if client is None:
        with _memory.lock:
            taken = [_memory.entries.popleft() for _ in range(min(max_entries, len(_memory.entries)))]
            _memory.spans -= sum(count_of(e) for e in taken)
        return taken
    popped: Any = client.lpop(KEY, max_entries) or []
    taken = [bytes(e) for e in popped]
    if taken:
        client.decrby(COUNT_KEY, sum(count_of(e) for e in taken))
    return taken


def held() -> int:
    """Records waiting in the buffer (for metrics and the overload answer)."""
    client = _redis()
    if client is None:
        return _memory.spans
    return max(0, int(client.get(COUNT_KEY) or 0))


def clear() -> None:
    client = _redis()
    if client is None:
        with _memory.lock:
            _memory.entries.clear()
            _memory.spans = 0
        return
    client.delete(KEY, COUNT_KEY)
