"""Latency sketches: ``ddsketch.DDSketch`` (1 % relative accuracy) and a compact serialization of it.

A sketch is mergeable: the quantiles of merged minute sketches are those of all their values, within the relative
accuracy, so p50/p95/p99 over any range come from merging stored sketches, never from raw rows. Stored form: a
header (count, zero count, sum, min, max, first key, bin type) and the bins from the lowest to the highest
non-empty key, as the narrowest little-endian unsigned integers that hold every count (8, 16 or 32 bits; bins are
whole counts) or else doubles: a minute's sketch takes a few hundred bytes, so rollup rows stay small and scans of
their counts fast. ``quantiles`` reads several quantiles from stored bytes in one pass without building a sketch
(the routes table reads one sketch per route); ``merged`` adds many stored sketches' bins as arrays.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import Any

from ddsketch import DDSketch

ACCURACY = 0.01
_HEADER = struct.Struct("<dddddiB")
_TYPES = "BHId"  # the bins' array type codes: unsigned 8, 16, 32-bit whole counts, else doubles
_LIMITS = (0xFF, 0xFFFF, 0xFFFFFFFF)
_MAPPING = DDSketch(ACCURACY)._mapping


def new() -> DDSketch:
    return DDSketch(ACCURACY)


def add(sketch: DDSketch, value_ms: float, count: float = 1.0) -> None:
    sketch.add(max(0.0, float(value_ms)), count)


def _packed(bins: list[float]) -> tuple[int, bytes]:
    """The bins as the narrowest array that holds them exactly (type index, bytes)."""
    doubles = array("d", bins)
    if doubles and min(doubles) >= 0 and max(doubles) <= _LIMITS[-1]:
        whole = array("q", map(int, doubles))
        if array("d", whole) == doubles:
            top = max(whole)
            code = next(i for i, limit in enumerate(_LIMITS) if top <= limit)
            return code, array(_TYPES[code], whole).tobytes()
    return len(_LIMITS), doubles.tobytes()


def dumps(sketch: DDSketch) -> bytes:
    if sketch.count == 0:
        return b""
    store = sketch._store
    low = store.min_key if store.count else 0
    bins = store.bins[low - store.offset : store.max_key - store.offset + 1] if store.count else []
    code, packed = _packed(bins)
    header = _HEADER.pack(sketch._count, sketch._zero_count, sketch._sum, sketch._min, sketch._max, low, code)
    return header + packed


def _parts(blob: bytes) -> tuple[float, float, float, float, float, int, array[Any]]:
    """The header's fields and the bins as stored (whole counts stay integers: converting costs more than it saves)."""
    count, zero, total, low_value, high_value, low, code = _HEADER.unpack_from(blob)
    bins: array[Any] = array(_TYPES[code])
    bins.frombytes(blob[_HEADER.size :])
    return count, zero, total, low_value, high_value, low, bins


def loads(blob: bytes | memoryview | None) -> DDSketch:
    sketch = new()
    if not blob:
        return sketch
    count, zero, total, low_value, high_value, low, bins = _parts(bytes(blob))
    if bins:
        store = sketch._store
        store.bins = bins.tolist()
        store.offset = low
        store.min_key = low
        store.max_key = low + len(bins) - 1
        store.count = sum(bins)
    sketch._count, sketch._zero_count, sketch._sum = count, zero, total
    sketch._min, sketch._max = low_value, high_value
    return sketch


def merged(blobs: Iterable[bytes | memoryview | None]) -> DDSketch:
    """One sketch of every stored one: the same as merging them one by one with ``DDSketch.merge`` (counts, sum,
    min, max and the bins added key by key), but the bins are added in arrays, never as a sketch each (a routes
    table merges thousands of minute sketches)."""
    count = zero = total = 0.0
    low_value, high_value = float("inf"), float("-inf")
    parts: list[tuple[int, list[float]]] = []
    for blob in blobs:
        if not blob:
            continue
        c, z, t, lo, hi, low, bins = _parts(bytes(blob))
        if c == 0:
            continue
        count, zero, total = count + c, zero + z, total + t
        low_value, high_value = min(low_value, lo), max(high_value, hi)
        if bins:
            parts.append((low, bins.tolist()))
    sketch = new()
    if count == 0:
        return sketch
    if parts:
        first = min(low for low, _ in parts)
        end = max(low + len(bins) for low, bins in parts)
        # Each sketch's bins padded to the common key range, then summed key by key in the order DDSketch.merge
        # would add them (the same values).
        padded = [[0] * (low - first) + bins + [0] * (end - low - len(bins)) for low, bins in parts]
        acc = list(map(sum, zip(*padded, strict=True))) if len(padded) > 1 else padded[0]
        store = sketch._store
        store.bins = acc
        store.offset = store.min_key = first
        store.max_key = end - 1
        store.count = sum(acc)
    sketch._count, sketch._zero_count, sketch._sum = count, zero, total
    sketch._min, sketch._max = low_value, high_value
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
    """``[sketch.get_quantile_value(q) for q in qs]`` with one pass over the bins for all of them (DDSketch walks
    them once per quantile)."""
    if sketch._count == 0 or sketch._negative_store.count:
        return [sketch.get_quantile_value(q) for q in qs]
    store = sketch._store
    running = list(accumulate(store.bins))
    found: list[float | None] = []
    for q in qs:
        if q < 0 or q > 1:
            found.append(None)
            continue
        rank = q * (sketch._count - 1)
        if rank < 0:  # weights under 1 in all: DDSketch's own (odd) answer
            found.append(sketch.get_quantile_value(q))
            continue
        if rank < sketch._zero_count:
            found.append(0)
            continue
        index = bisect_right(running, rank - sketch._zero_count)  # DenseStore.key_at_rank: first running > rank
        found.append(_MAPPING.value(index + store.offset if index < len(running) else store.max_key))
    return found
