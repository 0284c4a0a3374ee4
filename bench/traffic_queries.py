"""The query phase of bench/traffic.py: rollups as a busy fleet leaves them, and the traffic queries timed on them.

``fill_queries`` gives application ``catalog`` ``routes`` routes with a minute rollup in each of the last 60 minutes
plus the hour and day rows the flusher writes beside them (counts summed, sketches of a wider sample), and eight
more applications 40 graph edges with a minute row in each minute of the last day plus hour and day rows; written
with ``COPY``. ``time_queries`` times the portal's and the API's functions (``apps.traffic.selectors``, as a viewer
with a global binding) and, as the anchor, the bare SQL sum of the hour's minute rows per route.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

from bench import harness

EDGES = 40
QUANTILE_POOL = 16


def _pool(rng: random.Random, values: int) -> list[bytes]:
    from apps.traffic import sketch

    blobs = []
    for _ in range(QUANTILE_POOL):
        one = sketch.new()
        mu = rng.uniform(2.0, 5.0)
        for _ in range(values):
            sketch.add(one, rng.lognormvariate(mu, 0.7))
        blobs.append(sketch.dumps(one))
    return blobs


def _copy(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    from django.db import connection, transaction

    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def fill_queries(user: Any, routes: int) -> int:
    """Write the query phase's rollups; returns the id of the application with ``routes`` routes."""
    from django.utils import timezone

    from apps.clusters.models import Cluster
    from apps.traffic.models import EdgeRollup, RouteRollup
    from tests.support.rows import application_row

    began = time.monotonic()
    rng = random.Random(14)
    narrow, wide = _pool(rng, 200), _pool(rng, 3000)
    cluster = Cluster.objects.get(name="bench")
    catalog = application_row(cluster, "shop", "catalog", []).pk
    services = [application_row(cluster, "shop", f"svc{i}", []).pk for i in range(8)]
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    hour, day = minute.replace(minute=0), minute.replace(minute=0, hour=0)
    rows: list[tuple[Any, ...]] = []
    for r in range(routes):
        route, method = f"/catalog/v2/items{r}/{{id}}", ("GET", "POST", "PUT")[r % 3]
        counts: dict[tuple[str, Any], list[int]] = {}
        for m in range(60):
            bucket = minute - timedelta(minutes=m)
            count = 1 + (r * 7 + m * 13) % 120
            errors = count // 40
            rows.append((catalog, "m", bucket, route, method, 2, count, errors, count * 900, narrow[(r + m) % 16]))
            for level, start in (("h", bucket.replace(minute=0)), ("d", bucket.replace(minute=0, hour=0))):
                total = counts.setdefault((level, start), [0, 0])
                total[0] += count
                total[1] += errors
        for (level, start), (count, errors) in counts.items():
            rows.append((catalog, level, start, route, method, 2, count, errors, count * 900, wide[r % 16]))
    columns = ("application_id", "level", "bucket", "route", "method", "status_class", "count", "errors", "bytes")
    _copy(RouteRollup._meta.db_table, (*columns, "sketch"), rows)
    nodes = [f"app:{pk}" for pk in services]
    pairs = [(a, b) for a in nodes for b in nodes if a != b][:EDGES]
    edge_rows: list[tuple[Any, ...]] = []
    for e, (source, target) in enumerate(pairs):
        ids = (int(source[4:]), int(target[4:]))
        for m in range(24 * 60):
            bucket = minute - timedelta(minutes=m)
            calls = 1 + (e * 5 + m) % 60
            edge_rows.append(("m", bucket, source, target, *ids, calls, calls // 50, 0, narrow[m % 16], narrow[e % 16]))
        for h in range(25):
            bucket = hour - timedelta(hours=h)
            edge_rows.append(("h", bucket, source, target, *ids, 1800, 36, 0, wide[h % 16], wide[e % 16]))
        for d in range(2):
            edge_rows.append(("d", day - timedelta(days=d), source, target, *ids, 43200, 864, 0, wide[d], wide[e % 16]))
    columns = ("level", "bucket", "source", "target", "source_application_id", "target_application_id", "calls")
    columns += ("errors", "unpaired", "client_sketch", "server_sketch")
    _copy(EdgeRollup._meta.db_table, columns, edge_rows)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {RouteRollup._meta.db_table}")
        cursor.execute(f"ANALYZE {EdgeRollup._meta.db_table}")
    print(
        f"query phase: {len(rows):,} route rows ({routes} routes), {len(edge_rows):,} edge rows ({len(pairs)} edges)"
        f" in {time.monotonic() - began:.1f} s",
        flush=True,
    )
    return catalog


def _timed(call: Any, times: int) -> tuple[list[float], Any]:
    result = None
    for _ in range(3):  # warm-up: connection, plans, imports
        result = call()
    took = []
    for _ in range(times):
        began = time.perf_counter()
        result = call()
        took.append((time.perf_counter() - began) * 1000)
    return took, result


def time_queries(user: Any, catalog: int, routes: int, times: int) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    from apps.traffic import selectors
    from apps.traffic.models import RouteRollup

    now = timezone.now()
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
    by_rate, (total, page) = _timed(lambda: selectors.routes(user, catalog, hour_ago, now), times)
    if total != routes or not page or page[0]["p99"] is None:
        raise SystemExit(f"the routes table of the hour has {total} routes (expected {routes}), first row {page[:1]}")
    by_latency, _ = _timed(lambda: selectors.routes(user, catalog, hour_ago, now, sort="-latency"), max(3, times // 20))
    floor_sql = (
        f"SELECT route, method, sum(count), sum(errors), sum(bytes) FROM {RouteRollup._meta.db_table}"
        " WHERE application_id = %s AND level = 'm' AND bucket >= %s AND bucket < %s GROUP BY route, method"
    )

    def floor() -> int:
        with connection.cursor() as cursor:
            cursor.execute(floor_sql, [catalog, hour_ago, now])
            return len(cursor.fetchall())

    floor_ms, floor_rows = _timed(floor, times)
    graph_ms, graph = _timed(lambda: selectors.graph(user, day_ago, now), max(5, times // 10))
    return {
        "routes_query_p50_ms": round(harness.percentile(by_rate, 0.5), 2),
        "routes_query_p99_ms": round(harness.percentile(by_rate, 0.99), 2),
        "routes_latency_sort_p50_ms": round(harness.percentile(by_latency, 0.5), 2),
        "routes_latency_sort_p99_ms": round(harness.percentile(by_latency, 0.99), 2),
        "routes_sql_floor_p99_ms": round(harness.percentile(floor_ms, 0.99), 2),
        "routes_in_table": total,
        "routes_sql_floor_rows": floor_rows,
        "graph_query_p50_ms": round(harness.percentile(graph_ms, 0.5), 2),
        "graph_query_p99_ms": round(harness.percentile(graph_ms, 0.99), 2),
        "graph_edges": len(graph["edges"]),
        "graph_nodes": len(graph["nodes"]),
        "queries_timed": times,
    }
