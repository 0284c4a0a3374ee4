"""Reading rollups over a time range: which rows cover it, and what they add up to.

Totals over a range come from the coarsest rows that fit inside it (:func:`cover`): a whole hour is one hour row
per key, the minutes before and after it minute rows, so the routes table of one hour reads one row per route
instead of sixty. Series (sparklines, charts) use one level for the whole range (:func:`series_level`): minutes
up to ``MINUTE_SERIES`` (6 h), hours up to ``HOUR_SERIES`` (14 days), days beyond — and a coarser one when the finer
rows are past their retention. Quantiles come from merged sketches (:func:`apps.traffic.sketch.merged`), or
straight from the stored bytes when a key has one row (:func:`apps.traffic.sketch.quantiles`, the fast path).

These functions take querysets the caller has already restricted (:mod:`apps.traffic.selectors`) and read them
with ``values_list``: no model instances.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from django.conf import settings
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from apps.traffic import sketch
from apps.traffic.models import LEVEL_SECONDS, EdgeRollup, Level, RouteRollup

QUANTILES = (0.5, 0.95, 0.99)
MINUTE_SERIES = timedelta(hours=6)
HOUR_SERIES = timedelta(days=14)
LEVELS = (Level.MINUTE, Level.HOUR, Level.DAY)  # finest first


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


def _when(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _floor(epoch: int, seconds: int) -> int:
    return epoch // seconds * seconds


def _ceil(epoch: int, seconds: int) -> int:
    return -(-epoch // seconds) * seconds


def _retained(now: datetime) -> dict[str, int]:
    """The oldest bucket start each level still keeps (epoch seconds)."""
    return {
        Level.MINUTE: _epoch(now - timedelta(hours=settings.TRAFFIC_MINUTE_RETENTION_HOURS)),
        Level.HOUR: _epoch(now - timedelta(days=settings.TRAFFIC_HOUR_RETENTION_DAYS)),
        Level.DAY: 0,
    }


def _bounds(since: datetime, until: datetime, now: datetime) -> tuple[int, int]:
    """The range in whole minutes (outwards), widened to whole hours or days where finer rows are gone."""
    start, end = _floor(_epoch(since), 60), _ceil(_epoch(until), 60)
    kept = _retained(now)
    for finer, coarser in ((Level.MINUTE, Level.HOUR), (Level.HOUR, Level.DAY)):
        if start < kept[finer]:
            start = _floor(start, LEVEL_SECONDS[coarser])
        if end < kept[finer]:
            end = _ceil(end, LEVEL_SECONDS[coarser])
    return start, end


Part = tuple[str, datetime, datetime]  # level, first bucket (inclusive), end (exclusive)


def cover(since: datetime, until: datetime, now: datetime | None = None) -> list[Part]:
    """The rows that add up to ``[since, until)``: day rows for whole days, hour rows for the whole hours around
    them, minute rows at the ends. A range that reaches the present ends with the current hour's and day's rows."""
    now = now or timezone.now()
    start, end = _bounds(since, until, now)
    if end >= _ceil(_epoch(now), 60):
        # Nothing is stored after now: a range reaching the present reads the current hour's and day's rows whole
        # (the last hour is 16 minute rows and one hour row per key, not 60 minute rows).
        end = _ceil(end, LEVEL_SECONDS[Level.DAY])
    parts: list[Part] = []
    index = 0
    while start < end:
        level = LEVELS[index]
        if index + 1 == len(LEVELS):
            parts.append((level, _when(start), _when(end)))
            break
        step = LEVEL_SECONDS[LEVELS[index + 1]]
        inner_start, inner_end = _ceil(start, step), _floor(end, step)
        if inner_start >= inner_end:
            parts.append((level, _when(start), _when(end)))
            break
        if start < inner_start:
            parts.append((level, _when(start), _when(inner_start)))
        if inner_end < end:
            parts.append((level, _when(inner_end), _when(end)))
        start, end, index = inner_start, inner_end, index + 1
    return parts


def cover_q(since: datetime, until: datetime, now: datetime | None = None) -> Q:
    q = Q(pk__in=[])
    for level, first, end in cover(since, until, now):
        q |= Q(level=level, bucket__gte=first, bucket__lt=end)
    return q


def series_level(since: datetime, until: datetime, now: datetime | None = None) -> str:
    """Minutes up to 6 h, hours up to 14 days, days beyond; coarser when the finer rows are past retention."""
    span = until - since
    level = Level.MINUTE if span <= MINUTE_SERIES else Level.HOUR if span <= HOUR_SERIES else Level.DAY
    kept = _retained(now or timezone.now())
    if level == Level.MINUTE and _epoch(since) < kept[Level.MINUTE]:
        level = Level.HOUR
    if level == Level.HOUR and _epoch(since) < kept[Level.HOUR]:
        level = Level.DAY
    return str(level)


@dataclass(frozen=True)
class Series:
    level: str
    buckets: list[datetime]

    @property
    def seconds(self) -> int:
        return LEVEL_SECONDS[Level(self.level)]

    def q(self) -> Q:
        if not self.buckets:
            return Q(pk__in=[])
        return Q(level=self.level, bucket__gte=self.buckets[0], bucket__lte=self.buckets[-1])

    def index(self) -> dict[datetime, int]:
        return {b: i for i, b in enumerate(self.buckets)}


def series(since: datetime, until: datetime, now: datetime | None = None) -> Series:
    level = series_level(since, until, now)
    step = LEVEL_SECONDS[Level(level)]
    first, end = _floor(_epoch(since), step), _ceil(_epoch(until), step)
    return Series(level, [_when(b) for b in range(first, max(end, first + step), step)])


def range_seconds(since: datetime, until: datetime) -> float:
    return max(1.0, (until - since).total_seconds())


def quantiles_of(blobs: list[Any]) -> list[float | None]:
    """p50, p95, p99 of stored sketches: straight from the bytes for one, merged for several."""
    present = [b for b in blobs if b]
    if not present:
        return [None for _ in QUANTILES]
    if len(present) == 1:
        return sketch.quantiles(present[0], QUANTILES)
    return sketch.sketch_quantiles(sketch.merged(present), QUANTILES)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# --- applications ------------------------------------------------------------------------------------------------


class ApplicationTraffic(TypedDict):
    application: int
    cluster: str
    namespace: str
    name: str
    requests: int
    errors: int
    bytes: int
    rate: float  # requests per second over the range
    error_rate: float | None  # errors among requests, 0..1
    p50: float | None  # milliseconds
    p95: float | None
    p99: float | None
    series: list[float]  # requests per second in each bucket of the range's series


def applications(rows: QuerySet[RouteRollup], since: datetime, until: datetime) -> list[ApplicationTraffic]:
    """Per application that had requests in the range: totals, quantiles and a request-rate series; the busiest
    first. Two queries: the series (with the applications' names) and the covering rows' sketches."""
    now = timezone.now()
    timeline = series(since, until, now)
    place = timeline.index()
    per_bucket = (
        rows.filter(timeline.q())
        .order_by()
        .values("application_id", "application__cluster__name", "application__namespace", "application__name", "bucket")
        .annotate(total=Sum("count"))
        .values_list(
            "application_id",
            "application__cluster__name",
            "application__namespace",
            "application__name",
            "bucket",
            "total",
        )
    )
    names: dict[int, tuple[str, str, str]] = {}
    points: dict[int, list[float]] = {}
    for app_id, cluster, namespace, name, bucket, total in per_bucket:
        names[app_id] = (cluster, namespace, name)
        values = points.setdefault(app_id, [0.0] * len(timeline.buckets))
        if bucket in place:
            values[place[bucket]] = round(int(total) / timeline.seconds, 3)
    sums: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    blobs: dict[int, list[Any]] = defaultdict(list)
    for app_id, count, errors, size, blob in rows.filter(cover_q(since, until, now)).values_list(
        "application_id", "count", "errors", "bytes", "sketch"
    ):
        total = sums[app_id]
        total[0] += count
        total[1] += errors
        total[2] += size
        blobs[app_id].append(blob)
    seconds = range_seconds(since, until)
    found: list[ApplicationTraffic] = []
    for app_id, (requests, errors, size) in sums.items():
        if app_id not in names or not requests:
            continue
        cluster, namespace, name = names[app_id]
        p50, p95, p99 = (_ms(v) for v in quantiles_of(blobs[app_id]))
        found.append(
            {
                "application": app_id,
                "cluster": cluster,
                "namespace": namespace,
                "name": name,
                "requests": requests,
                "errors": errors,
                "bytes": size,
                "rate": round(requests / seconds, 3),
                "error_rate": round(errors / requests, 4),
                "p50": p50,
                "p95": p95,
                "p99": p99,
                "series": points.get(app_id, []),
            }
        )
    found.sort(key=lambda a: (-a["requests"], a["cluster"], a["namespace"], a["name"]))
    return found


# --- routes ------------------------------------------------------------------------------------------------------

SORTS = ("rate", "errors", "error_rate", "latency", "p99", "route")


class RouteTraffic(TypedDict):
    application: int
    route: str
    method: str
    requests: int
    errors: int
    bytes: int
    rate: float
    error_rate: float | None
    p50: float | None
    p95: float | None
    p99: float | None


RouteKey = tuple[int, str, str]  # application, route, method


def _route_key(sort: str) -> Any:
    field = sort.lstrip("-")
    if field == "route":
        return lambda r: (r["route"], r["method"], r["application"])
    name = {"rate": "requests", "latency": "p95"}.get(field, field)
    return lambda r: (r[name] if r[name] is not None else -1.0, r["route"], r["method"], r["application"])


def routes(
    rows: QuerySet[RouteRollup],
    since: datetime,
    until: datetime,
    *,
    sort: str = "-rate",
    offset: int = 0,
    limit: int = 50,
) -> tuple[int, list[RouteTraffic]]:
    """Routes (per application, route template and method) of ``rows`` — already narrowed to what the viewer
    reads, an application, a method or a status class: how many, and the page ``[offset, offset + limit)`` in
    ``sort`` order (``rate``, ``errors``, ``error_rate``, ``latency`` — the p95 —, ``p99``, ``route``; ``-`` for
    descending). Sorting by counts sums in the database and reads the sketches of the page's routes only; sorting
    by latency reads them all. Two queries at most."""
    covering = rows.filter(cover_q(since, until))
    by_latency = sort.lstrip("-") in ("latency", "p99")
    seconds = range_seconds(since, until)
    sums: dict[RouteKey, list[int]] = {}
    blobs: dict[RouteKey, list[Any]] = defaultdict(list)
    if by_latency:
        for app_id, route, method, count, errors, size, blob in covering.values_list(
            "application_id", "route", "method", "count", "errors", "bytes", "sketch"
        ):
            key = (app_id, route, method)
            total = sums.setdefault(key, [0, 0, 0])
            total[0] += count
            total[1] += errors
            total[2] += size
            blobs[key].append(blob)
    else:
        grouped = (
            covering.order_by()
            .values("application_id", "route", "method")
            .annotate(n=Sum("count"), e=Sum("errors"), b=Sum("bytes"))
            .values_list("application_id", "route", "method", "n", "e", "b")
        )
        for app_id, route, method, count, errors, size in grouped:
            sums[(app_id, route, method)] = [int(count), int(errors), int(size)]
    table: list[RouteTraffic] = [
        {
            "application": app_id,
            "route": route,
            "method": method,
            "requests": count,
            "errors": errors,
            "bytes": size,
            "rate": round(count / seconds, 3),
            "error_rate": round(errors / count, 4) if count else None,
            "p50": None,
            "p95": None,
            "p99": None,
        }
        for (app_id, route, method), (count, errors, size) in sums.items()
    ]
    if by_latency:
        _fill_quantiles(table, blobs)
    table.sort(key=_route_key(sort), reverse=sort.startswith("-"))
    page = table[offset : offset + limit]
    if not by_latency and page:
        wanted = {(r["application"], r["route"], r["method"]) for r in page}
        apps, names = {k[0] for k in wanted}, {k[1] for k in wanted}
        for app_id, route, method, blob in covering.filter(application_id__in=apps, route__in=names).values_list(
            "application_id", "route", "method", "sketch"
        ):
            if (app_id, route, method) in wanted:
                blobs[(app_id, route, method)].append(blob)
        _fill_quantiles(page, blobs)
    return len(table), page


def _fill_quantiles(table: Iterable[RouteTraffic], blobs: dict[RouteKey, list[Any]]) -> None:
    for row in table:
        key = (row["application"], row["route"], row["method"])
        row["p50"], row["p95"], row["p99"] = (_ms(v) for v in quantiles_of(blobs.get(key, [])))


class SeriesPoint(TypedDict):
    at: datetime
    requests: int
    errors: int
    rate: float
    p50: float | None
    p95: float | None
    p99: float | None


def route_series(rows: QuerySet[RouteRollup], since: datetime, until: datetime) -> tuple[str, list[SeriesPoint]]:
    """Per bucket of the range's series level: requests, errors, rate and quantiles of ``rows`` (one route, or
    one application). One query."""
    timeline = series(since, until)
    counts: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
    blobs: dict[datetime, list[Any]] = defaultdict(list)
    for bucket, count, errors, blob in rows.filter(timeline.q()).values_list("bucket", "count", "errors", "sketch"):
        counts[bucket][0] += count
        counts[bucket][1] += errors
        blobs[bucket].append(blob)
    points: list[SeriesPoint] = []
    for bucket in timeline.buckets:
        requests, errors = counts.get(bucket, (0, 0))
        p50, p95, p99 = (_ms(v) for v in quantiles_of(blobs.get(bucket, [])))
        points.append(
            {
                "at": bucket,
                "requests": requests,
                "errors": errors,
                "rate": round(requests / timeline.seconds, 3),
                "p50": p50,
                "p95": p95,
                "p99": p99,
            }
        )
    return timeline.level, points


# --- the graph ---------------------------------------------------------------------------------------------------


class Edge(TypedDict):
    source: str
    target: str
    calls: int
    errors: int
    unpaired: int
    rate: float
    error_rate: float | None
    client_p50: float | None
    client_p95: float | None
    server_p50: float | None
    server_p95: float | None


def edges(rows: QuerySet[EdgeRollup], since: datetime, until: datetime) -> list[Edge]:
    """The edges of ``rows`` over the range, each with calls, errors, unpaired calls and both sides' p50/p95;
    the busiest first. One query."""
    sums: dict[tuple[str, str], list[int]] = {}
    client: dict[tuple[str, str], list[Any]] = defaultdict(list)
    server: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for source, target, calls, errors, unpaired, c_blob, s_blob in rows.filter(cover_q(since, until)).values_list(
        "source", "target", "calls", "errors", "unpaired", "client_sketch", "server_sketch"
    ):
        key = (source, target)
        total = sums.setdefault(key, [0, 0, 0])
        total[0] += calls
        total[1] += errors
        total[2] += unpaired
        client[key].append(c_blob)
        server[key].append(s_blob)
    seconds = range_seconds(since, until)
    found: list[Edge] = []
    for (source, target), (calls, errors, unpaired) in sums.items():
        c50, c95, _ = quantiles_of(client[(source, target)])
        s50, s95, _ = quantiles_of(server[(source, target)])
        found.append(
            {
                "source": source,
                "target": target,
                "calls": calls,
                "errors": errors,
                "unpaired": unpaired,
                "rate": round(calls / seconds, 3),
                "error_rate": round(errors / calls, 4) if calls else None,
                "client_p50": _ms(c50),
                "client_p95": _ms(c95),
                "server_p50": _ms(s50),
                "server_p95": _ms(s95),
            }
        )
    found.sort(key=lambda e: (-e["calls"], e["source"], e["target"]))
    return found


def node_kind(node: str) -> str:
    """``app``, ``db``, ``peer`` or ``unknown``, from a node's name (``app:<id>``, ``db:<system>``...)."""
    kind = node.split(":", 1)[0]
    return kind if kind in ("app", "db", "peer") else "unknown"


def application_of(node: str) -> int | None:
    return int(node[4:]) if node.startswith("app:") and node[4:].isdigit() else None
