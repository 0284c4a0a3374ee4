"""Writing a flush batch's rollups on PostgreSQL: two statements per table for every level at once.

One ``INSERT … SELECT FROM unnest(…) ON CONFLICT DO UPDATE`` adds the batch's counts to existing rows (locking
them until the transaction ends) and inserts the missing ones with the batch's sketch; it returns each row with
whether it was new (``xmax = 0``) and, for an existing row, its stored sketch. Those sketches are merged with the
batch's in Python and written back by one ``UPDATE … FROM unnest(…)``. Rows go in sorted by key, so two flushers
lock shared rows in the same order and never deadlock. The result is what the ORM path of
:mod:`apps.traffic.rollup` (used on SQLite, the embedded default) stores, at a fraction of its cost: no per-row
``Q`` objects or ``CASE WHEN`` updates.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from ddsketch import DDSketch
from django.db import connection

from apps.traffic import sketch
from apps.traffic.models import EdgeRollup, RouteRollup


class Counts(Protocol):
    """What :class:`apps.traffic.rollup.Counts` holds for one row (imports point from rollup to here only)."""

    count: int
    errors: int
    size: int
    unpaired: int
    latency: DDSketch
    other: DDSketch


_ROUTES = RouteRollup._meta.db_table
_EDGES = EdgeRollup._meta.db_table

ROUTE_UPSERT = f"""
INSERT INTO {_ROUTES} AS r (application_id, level, bucket, route, method, status_class, count, errors, bytes, sketch)
SELECT * FROM unnest(%s::bigint[], %s::varchar[], %s::timestamptz[], %s::varchar[], %s::varchar[], %s::smallint[],
                     %s::bigint[], %s::bigint[], %s::bigint[], %s::bytea[])
ON CONFLICT (application_id, level, bucket, route, method, status_class) DO UPDATE
SET count = r.count + EXCLUDED.count, errors = r.errors + EXCLUDED.errors, bytes = r.bytes + EXCLUDED.bytes
RETURNING id, xmax = 0, application_id, level, bucket, route, method, status_class, sketch
"""  # noqa: S608 - table names from the models, placeholders only
ROUTE_SKETCHES = f"""
UPDATE {_ROUTES} AS r SET sketch = v.sketch FROM unnest(%s::bigint[], %s::bytea[]) AS v(id, sketch) WHERE r.id = v.id
"""  # noqa: S608 - table names from the models, placeholders only
EDGE_UPSERT = f"""
INSERT INTO {_EDGES} AS e (level, bucket, source, target, source_application_id, target_application_id,
                           calls, errors, unpaired, client_sketch, server_sketch)
SELECT * FROM unnest(%s::varchar[], %s::timestamptz[], %s::varchar[], %s::varchar[], %s::bigint[], %s::bigint[],
                     %s::bigint[], %s::bigint[], %s::bigint[], %s::bytea[], %s::bytea[])
ON CONFLICT (level, bucket, source, target) DO UPDATE
SET calls = e.calls + EXCLUDED.calls, errors = e.errors + EXCLUDED.errors, unpaired = e.unpaired + EXCLUDED.unpaired
RETURNING id, xmax = 0, level, bucket, source, target, client_sketch, server_sketch
"""  # noqa: S608 - table names from the models, placeholders only
EDGE_SKETCHES = f"""
UPDATE {_EDGES} AS e SET client_sketch = v.client, server_sketch = v.server
FROM unnest(%s::bigint[], %s::bytea[], %s::bytea[]) AS v(id, client, server) WHERE e.id = v.id
"""  # noqa: S608 - table names from the models, placeholders only


def _when(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _merge(stored: bytes | memoryview | None, batch: Any) -> bytes:
    merged = sketch.loads(stored)
    merged.merge(batch)
    return sketch.dumps(merged)


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)] if rows else [[] for _ in range(width)]


def write_routes(levels: Mapping[str, Mapping[Any, Counts]]) -> None:
    """Add the batch's route rows (per level: ``(application, bucket epoch, route, method, status class)``)."""
    rows = sorted(
        (level, *key, counts) for level, folded in levels.items() for key, counts in folded.items()
    )  # (level, application, bucket, route, method, status class, counts): the lock order
    if not rows:
        return
    by_key = {(a, level, b, r, m, s): counts for level, a, b, r, m, s, counts in rows}
    values = [
        (a, level, _when(b), r, m, s, c.count, c.errors, c.size, sketch.dumps(c.latency))
        for level, a, b, r, m, s, c in rows
    ]
    with connection.cursor() as cursor:
        cursor.execute(ROUTE_UPSERT, _columns(values, 10))
        returned = cursor.fetchall()
        ids, sketches = [], []
        for row_id, inserted, a, level, bucket, route, method, status, stored in returned:
            if inserted:
                continue
            counts = by_key[(a, level, int(bucket.timestamp()), route, method, status)]
            if counts.latency.count:
                ids.append(row_id)
                sketches.append(_merge(stored, counts.latency))
        if ids:
            cursor.execute(ROUTE_SKETCHES, [ids, sketches])


def _application(node: str) -> int | None:
    return int(node[4:]) if node.startswith("app:") else None


def _sketches(counts: Counts) -> tuple[bytes, bytes]:
    return sketch.dumps(counts.latency), sketch.dumps(counts.other)


def write_edges(levels: Mapping[str, Mapping[Any, Counts]]) -> None:
    """Add the batch's edge rows (per level: ``(bucket epoch, source, target)``)."""
    rows = sorted((level, *key, counts) for level, folded in levels.items() for key, counts in folded.items())
    if not rows:
        return
    by_key = {(level, b, s, t): counts for level, b, s, t, counts in rows}
    values = [
        (level, _when(b), s, t, _application(s), _application(t), c.count, c.errors, c.unpaired, *_sketches(c))
        for level, b, s, t, c in rows
    ]
    with connection.cursor() as cursor:
        cursor.execute(EDGE_UPSERT, _columns(values, 11))
        returned = cursor.fetchall()
        ids, clients, servers = [], [], []
        for row_id, inserted, level, bucket, source, target, client, server in returned:
            if inserted:
                continue
            counts = by_key[(level, int(bucket.timestamp()), source, target)]
            ids.append(row_id)
            clients.append(_merge(client, counts.latency))
            servers.append(_merge(server, counts.other))
        if ids:
            cursor.execute(EDGE_SKETCHES, [ids, clients, servers])
