"""Latency sketches: ``ddsketch.DDSketch`` (1 % relative accuracy) and a compact serialization of it.

A sketch is mergeable: the quantiles of merged minute sketches are those of all their values, within the relative
accuracy, so p50/p95/p99 over any range come from merging stored sketches, never from raw rows. Stored form: a
header (count, zero count, sum, min, max, first key) and the bins from the lowest to the highest non-empty key as
little-endian doubles. ``quantiles`` reads several quantiles from stored bytes in one pass without building a
sketch (the routes table reads one sketch per route); merging goes through the library.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from itertools import accumulate

from ddsketch import DDSketch

ACCURACY = 0.01
_HEADER = struct.Struct("<dddddi")
_MAPPING = DDSketch(ACCURACY)._mapping


def new() -> DDSketch:
    return DDSketch(ACCURACY)


def add(sketch: DDSketch, value_ms: float, count: float = 1.0) -> None:
    sketch.add(max(0.0, float(value_ms)), count)


def dumps(sketch: DDSketch) -> bytes:
    if sketch.count == 0:
        return b""
    store = sketch._store
    low = store.min_key if store.count else 0
    bins = store.bins[low - store.offset : store.max_key - store.offset + 1] if store.count else []
    header = _HEADER.pack(sketch._count, sketch._zero_count, sketch._sum, sketch._min, sketch._max, low)
    return header + array("d", bins).tobytes()


def _parts(blob: bytes) -> tuple[float, float, float, float, float, int, array[float]]:
    count, zero, total, low_value, high_value, low = _HEADER.unpack_from(blob)
    bins = array("d")
    bins.frombytes(blob[_HEADER.size :])
    return count, zero, total, low_value, high_value, low, bins


def loads(blob: bytes | memoryview | None) -> DDSketch:
    sketch = new()
    if not blob:
        return sketch
    count, zero, total, low_value, high_value, low, bins = _parts(bytes(blob))
    if bins:
        store = sketch._store
        store.bins = list(bins)
        store.offset = low
        store.min_key = low
        store.max_key = low + len(bins) - 1
        store.count = sum(bins)
    sketch._count, sketch._zero_count, sketch._sum = count, zero, total
    sketch._min, sketch._max = low_value, high_value
    return sketch


def merged(blobs: Iterable[bytes | memoryview | None]) -> DDSketch:
    sketch = new()
    for blob in blobs:
        if blob:
            sketch.merge(loads(blob))
    return sketch


def quantiles(blob: bytes | memoryview | None, qs: Sequence[float]) -> list[float | None]:
    """The values at quantiles ``qs`` of one stored sketch (None when it is empty), as DDSketch computes them."""
    if not blob:
        return [None for _ in qs]
    count, zero, _total, _low_value, _high_value, low, bins = _parts(bytes(blob))
    running = list(accumulate(bins))
    found: list[float | None] = []
    for q in qs:
        rank = q * (count - 1)
        if rank < zero:
            found.append(0.0)
            continue
        index = bisect_right(running, rank - zero)
        found.append(_MAPPING.value(low + min(index, len(bins) - 1)))
    return found


def sketch_quantiles(sketch: DDSketch, qs: Sequence[float]) -> list[float | None]:
    return [sketch.get_quantile_value(q) for q in qs]
