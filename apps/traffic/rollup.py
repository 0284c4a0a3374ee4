"""Flushing the ingestion buffer into rollups: routes per minute, hour and day, and the service graph's edges.

One ``flush`` pops a batch of buffered entries, aggregates it in memory (a sketch per key), pairs client and server
spans (:mod:`apps.traffic.pairing`), then writes every level in one transaction: rows that do not exist yet are
inserted empty (``ON CONFLICT DO NOTHING``), the batch's rows are locked in id order (two flushers never deadlock)
and their counts and sketches merged. Request samples are inserted as they are.

Graph nodes: ``app:<id>`` for an application that sends spans; a client span to a database is an edge to
``db:<db.system>``; a client span nobody answered within the pairing window goes to ``peer:<peer.service>`` (else
``peer:<server.address>``, else ``unknown``) and counts as unpaired; a server span whose caller never showed up
comes from ``unknown`` and counts as unpaired too.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ddsketch import DDSketch
from django.db import connection, transaction
from django.db.models import Q

from apps.traffic import buffer, otlp, pairing, rollup_pg, sketch
from apps.traffic.models import LEVEL_SECONDS, EdgeRollup, RouteRollup, Sample
from apps.traffic.otlp import CLIENT, SERVER, SpanRecord

logger = logging.getLogger(__name__)

SPANS, SAMPLES = "spans", "samples"
RouteKey = tuple[int, int, str, str, int]  # application, epoch second of the bucket, route, method, status class
EdgeKey = tuple[int, str, str]  # epoch second of the bucket, source, target


@dataclass
class Counts:
    count: int = 0
    errors: int = 0
    size: int = 0
    unpaired: int = 0
    latency: DDSketch = field(default_factory=sketch.new)
    other: DDSketch = field(default_factory=sketch.new)  # edges: the callee's latency

    def merge(self, other: Counts) -> None:
        self.count += other.count
        self.errors += other.errors
        self.size += other.size
        self.unpaired += other.unpaired
        self.latency.merge(other.latency)
        self.other.merge(other.other)


@dataclass
class Batch:
    routes: dict[RouteKey, Counts] = field(default_factory=lambda: defaultdict(Counts))
    edges: dict[EdgeKey, Counts] = field(default_factory=lambda: defaultdict(Counts))
    waiting: list[tuple[str, pairing.Waiting]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    spans: int = 0

    @property
    def applications(self) -> set[int]:
        """The applications that got data in this batch (their pages follow live updates)."""
        found = {key[0] for key in self.routes}
        found.update(pk for _, s, t in self.edges for pk in (_application(s), _application(t)) if pk)
        found.update(sample.application_id for sample in self.samples)
        return found

    def route(self, application_id: int, record: SpanRecord) -> None:
        key = (application_id, int(record.end // 60) * 60, record.route, record.method, record.status // 100)
        counts = self.routes[key]
        counts.count += 1
        counts.errors += int(record.error)
        counts.size += record.size
        sketch.add(counts.latency, record.duration_ms)

    def edge(
        self, end: float, source: str, target: str, *, client_ms: float | None, server_ms: float | None, error: bool
    ) -> Counts:
        counts = self.edges[(int(end // 60) * 60, source, target)]
        counts.count += 1
        counts.errors += int(error)
        if client_ms is not None:
            sketch.add(counts.latency, client_ms)
        if server_ms is not None:
            sketch.add(counts.other, server_ms)
        return counts

    def span(self, application_id: int, record: SpanRecord) -> None:
        self.spans += 1
        me = [record.kind, application_id, record.end, record.duration_ms, record.error, record.peer, record.address]
        if record.kind == SERVER:
            if record.route:
                self.route(application_id, record)
            if record.parent:
                self.waiting.append((record.trace + record.parent, me))
        elif record.kind == CLIENT:
            if record.db:
                source, target = f"app:{application_id}", f"db:{record.db}"
                self.edge(record.end, source, target, client_ms=record.duration_ms, server_ms=None, error=record.error)
            else:
                self.waiting.append((record.trace + record.span, me))

    def paired(self, one: pairing.Waiting, two: pairing.Waiting) -> None:
        client, server = (one, two) if one[0] == CLIENT else (two, one)
        source, target = f"app:{client[1]}", f"app:{server[1]}"
        self.edge(client[2], source, target, client_ms=client[3], server_ms=server[3], error=client[4] or server[4])

    def unpaired(self, side: pairing.Waiting) -> None:
        kind, application_id, end, duration, error, peer, address = side
        if kind == CLIENT:
            target = f"peer:{peer}" if peer else f"peer:{address}" if address else "unknown"
            counts = self.edge(end, f"app:{application_id}", target, client_ms=duration, server_ms=None, error=error)
        else:
            counts = self.edge(end, "unknown", f"app:{application_id}", client_ms=None, server_ms=duration, error=error)
        counts.unpaired += 1

    def sample(self, application_id: int, row: dict[str, Any]) -> None:
        at = datetime.fromtimestamp(float(row["at"]), UTC)  # buffered as unix seconds
        self.samples.append(Sample(application_id=application_id, **{**row, "at": at}))


def _application(node: str) -> int | None:
    return int(node[4:]) if node.startswith("app:") else None


def _levels(rows: dict[Any, Counts], bucket_at: int) -> dict[str, dict[Any, Counts]]:
    """The batch's minute rows, also folded into hour and day rows (the bucket is at ``bucket_at`` in each key)."""
    out: dict[str, dict[Any, Counts]] = {}
    for level, seconds in LEVEL_SECONDS.items():
        folded: dict[Any, Counts] = defaultdict(Counts)
        for key, counts in rows.items():
            start = key[bucket_at] // seconds * seconds
            folded[(*key[:bucket_at], start, *key[bucket_at + 1 :])].merge(counts)
        out[str(level)] = folded
    return out


def _when(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _write_routes(rows: dict[RouteKey, Counts]) -> None:
    levels = _levels(rows, 1)
    if connection.vendor == "postgresql":
        rollup_pg.write_routes(levels)
        return
    for level, folded in levels.items():
        RouteRollup.objects.bulk_create(
            [
                RouteRollup(application_id=a, level=level, bucket=_when(b), route=r, method=m, status_class=s)
                for (a, b, r, m, s) in folded
            ],
            ignore_conflicts=True,
        )
        wanted = Q()
        for application_id, bucket, route, method, status_class in folded:
            wanted |= Q(
                application_id=application_id,
                bucket=_when(bucket),
                route=route,
                method=method,
                status_class=status_class,
            )
        locked = RouteRollup.objects.select_for_update().filter(wanted, level=level).order_by("id")
        changed = []
        for row in locked:
            key = (row.application_id, int(row.bucket.timestamp()), row.route, row.method, row.status_class)
            counts = folded.get(key)
            if counts is None:
                continue
            row.count += counts.count
            row.errors += counts.errors
            row.bytes += counts.size
            merged = sketch.loads(row.sketch)
            merged.merge(counts.latency)
            row.sketch = sketch.dumps(merged)
            changed.append(row)
        RouteRollup.objects.bulk_update(changed, ["count", "errors", "bytes", "sketch"])


def _write_edges(rows: dict[EdgeKey, Counts]) -> None:
    levels = _levels(rows, 0)
    if connection.vendor == "postgresql":
        rollup_pg.write_edges(levels)
        return
    for level, folded in levels.items():
        EdgeRollup.objects.bulk_create(
            [
                EdgeRollup(
                    level=level,
                    bucket=_when(b),
                    source=s,
                    target=t,
                    source_application_id=_application(s),
                    target_application_id=_application(t),
                )
                for (b, s, t) in folded
            ],
            ignore_conflicts=True,
        )
        wanted = Q()
        for bucket, source, target in folded:
            wanted |= Q(bucket=_when(bucket), source=source, target=target)
        locked = EdgeRollup.objects.select_for_update().filter(wanted, level=level).order_by("id")
        changed = []
        for row in locked:
            counts = folded.get((int(row.bucket.timestamp()), row.source, row.target))
            if counts is None:
                continue
            row.calls += counts.count
            row.errors += counts.errors
            row.unpaired += counts.unpaired
            client, server = sketch.loads(row.client_sketch), sketch.loads(row.server_sketch)
            client.merge(counts.latency)
            server.merge(counts.other)
            row.client_sketch, row.server_sketch = sketch.dumps(client), sketch.dumps(server)
            changed.append(row)
        EdgeRollup.objects.bulk_update(changed, ["calls", "errors", "unpaired", "client_sketch", "server_sketch"])


def aggregate(entries: list[bytes]) -> Batch:
    batch = Batch()
    for entry in entries:
        application_id, kind, records = buffer.unpack(entry)
        if kind == buffer.OTLP:
            try:
                spans = otlp.records(records)
            except otlp.BadBody:  # the receiver read it: only a corrupted entry gets here
                logger.warning("dropped an unreadable buffered OTLP request of application %s", application_id)
                continue
            for record in spans:
                batch.span(application_id, record)
        elif kind == SPANS:
            for raw in records:
                batch.span(application_id, SpanRecord(*raw))
        elif kind == SAMPLES:
            for row in records:
                batch.sample(application_id, row)
    for one, two in pairing.match(batch.waiting):
        batch.paired(one, two)
    for side in pairing.expired():
        batch.unpaired(side)
    return batch


def write(batch: Batch) -> None:
    if not (batch.routes or batch.edges or batch.samples):
        return
    with transaction.atomic():
        if batch.routes:
            _write_routes(batch.routes)
        if batch.edges:
            _write_edges(batch.edges)
        if batch.samples:
            Sample.objects.bulk_create(batch.samples, batch_size=1000)


def flush_batch(max_entries: int = 200) -> Batch:
    """Roll up one batch from the buffer and return it (its ``applications`` got data)."""
    batch = aggregate(buffer.pop(max_entries))
    write(batch)
    return batch


def flush(max_entries: int = 200) -> int:
    """Roll up one batch from the buffer; returns how many records it held (0: the buffer was empty)."""
    batch = flush_batch(max_entries)
    return batch.spans + len(batch.samples)
