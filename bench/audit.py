"""Benchmark of ICC's audit trail on PostgreSQL: durable append rate, chain verification, object history.

In one process, against a dedicated database (dropped and created, migrated with ``manage.py migrate``),
with ``synchronous_commit=on``: events/s of ``audit_record`` (one commit per event) and of
``audit_record_many`` (batches of 1,000 and 5,000), a raw ``COPY`` of the same rows into a scratch copy of
``audit_event`` as the anchor, a breakdown of where the batched path spends its time, ``verify_chain`` over
the whole table and ``chain.verify`` in memory, then ``object_history`` p50/p99 with the table loaded to
``--rows`` events (default 1,000,000) and its size. Targets are printed, not asserted; the last line of
output is one line of JSON. Run: ``.venv/bin/python bench/audit.py [--quick] [--keep]`` (see bench/README.md).
"""

from __future__ import annotations

import cProfile
import functools
import io
import os
import pstats
import random
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from operator import itemgetter
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: bench.harness, apps

from bench import harness

SUFFIX = "_audit"  # database icc_bench_audit (BENCH_DATABASE_URL's name + this)
TARGETS = 2000  # distinct users.user/<id> objects the events are about
TARGET_BATCHED_EVENTS_PER_S = 20_000  # the Kubernetes audit webhook's default batching passes roughly 4,000/s
TARGET_VERIFY_EVENTS_PER_S = 300_000
TARGET_HISTORY_P99_MS = 10.0
HISTORY_QUERIES = 1000
QUICK_ROWS = 20_000
LOAD_CHUNK = 50_000  # rows per COPY (one commit each) when loading the table to --rows
ACTIONS = ("users.user.update", "users.user.login", "users.user.create", "users.user.token_create")
# What object_history checks of its viewer: a superuser reads every event, as a global viewer does.
VIEWER = SimpleNamespace(is_authenticated=True, is_active=True, is_staff=True, is_superuser=True)


def raw_connect() -> psycopg.Connection[Any]:
    """A plain psycopg connection (no Django) for COPY, loading and catalog queries."""
    return psycopg.connect(harness.stores(SUFFIX).database_url, connect_timeout=5)


# --- helpers


def columns() -> tuple[str, ...]:
    from apps.audit.chain import HASHED_FIELDS

    return (*HASHED_FIELDS, "hash")


def copy_sql(table: str) -> str:
    return f"COPY {table} ({', '.join(columns())}) FROM STDIN"


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def changes_for(rng: random.Random, tid: int) -> dict[str, Any]:
    """A small field-level diff, shaped like ``redaction.diff`` output."""
    n = rng.randrange(1000)
    return {
        "display_name": {"before": f"User {tid} v{n}", "after": f"User {tid} v{n + 1}"},
        "is_active": {"before": True, "after": bool(n % 2)},
    }


def event_inputs(rng: random.Random, count: int) -> list[Any]:
    from apps.audit.models import ActorKind
    from apps.audit.services import Actor, EventInput

    actor = Actor(ActorKind.SYSTEM, "watcher", "cluster watcher")
    items = []
    for _ in range(count):
        tid = rng.randrange(1, TARGETS + 1)
        items.append(
            EventInput(
                action=rng.choice(ACTIONS),
                target_type="users.user",
                target_id=str(tid),
                target_display=f"user{tid:04d}",
                changes=changes_for(rng, tid),
                scope={"cluster": "prod-1", "namespace": "team-a"},
                actor=actor,
            )
        )
    return items


@contextmanager
def no_live_publish() -> Iterator[None]:
    """Replace the on-commit Channels publish of ``services._publish`` by a no-op (for the breakdown only)."""
    from apps.audit import services

    name = "publish_many" if hasattr(services, "publish_many") else "publish"
    with mock.patch.object(services, name, return_value=None):
        yield


def head_seq() -> int:
    from apps.audit.models import AuditChainHead

    head = AuditChainHead.objects.filter(pk=1).values_list("seq", flat=True).first()
    return int(head or 0)


def show_synchronous_commit() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


# --- 1. single-event path


def bench_single(n: int, rng: random.Random, *, publish: bool = True) -> float:
    """audit_record() in autocommit: one transaction, one commit (and its fsync) per event."""
    from django.db import connection

    from apps.audit.models import ActorKind
    from apps.audit.services import Actor, audit_record
    from apps.core import context

    if not connection.get_autocommit() or connection.in_atomic_block:
        raise SystemExit("the single-event path must run in autocommit mode")
    actor = Actor(ActorKind.USER, "7", "alice")

    def one() -> None:
        context.start(source="api", request_id=secrets.token_hex(16), client_ip="127.0.0.1", user_agent="bench/1")
        tid = rng.randrange(1, TARGETS + 1)
        audit_record(
            action="users.user.update",
            target_type="users.user",
            target_id=str(tid),
            target_display=f"user{tid:04d}",
            changes=changes_for(rng, tid),
            actor=actor,
        )

    with no_live_publish() if not publish else nullcontext():
        for _ in range(min(50, n)):  # warm-up
            one()
        start = time.perf_counter()
        for _ in range(n):
            one()
        elapsed = time.perf_counter() - start
    context.start()
    return rate(n, elapsed)


def bench_commit_floor(n: int) -> float:
    """Raw psycopg, one transaction per row: lock the head, INSERT one row into a scratch table, UPDATE, commit."""
    cols = columns()
    insert = f"INSERT INTO audit_event_floor ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
    with raw_connect() as conn:
        conn.execute("CREATE TABLE audit_event_floor (LIKE audit_event INCLUDING ALL)")
        values = list(conn.execute(f"SELECT {', '.join(cols)} FROM audit_event ORDER BY seq DESC LIMIT 1").fetchone())
        values[14] = orjson.dumps(values[14]).decode()
        values[19] = orjson.dumps(values[19]).decode()
        conn.commit()
        start = time.perf_counter()
        for i in range(n):
            values[0], values[21] = i, f"{i:064x}"
            conn.execute("SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE")
            conn.execute(insert, values)
            conn.execute("UPDATE audit_chain_head SET seq = seq WHERE id = 1")
            conn.commit()
        elapsed = time.perf_counter() - start
        conn.execute("DROP TABLE audit_event_floor")
        conn.commit()
    return rate(n, elapsed)


# --- 2. batched path


def bench_batched(
    total: int, batch: int, rng: random.Random, append: Callable[[list[Any]], Any] | None = None
) -> tuple[float, int, int]:
    """events/s of ``append`` (default audit_record_many) over ``total`` events; returns (rate, first, last seq)."""
    from apps.audit.services import audit_record_many
    from apps.core import context

    append = append or audit_record_many
    context.start(source="watcher")
    append(event_inputs(rng, min(batch, 200)))  # warm-up
    first = head_seq() + 1
    elapsed = 0.0
    done = 0
    while done < total:
        items = event_inputs(rng, min(batch, total - done))  # the caller's work, not timed
        start = time.perf_counter()
        append(items)
        elapsed += time.perf_counter() - start
        done += len(items)
    context.start()
    return rate(done, elapsed), first, head_seq()


# --- 3. anchor: raw COPY of the same rows


def bench_copy_anchor(first: int, last: int, batch: int) -> tuple[float, float, int]:
    """COPY the rows ``first..last`` (read back, values precomputed) into a LIKE copy of audit_event.

    Returns rows/s with all of audit_event's indexes, rows/s without the ``hash`` ``varchar_pattern_ops``
    (``*_like``) index Django adds for a unique CharField, and the row count.
    """
    cols = columns()
    with raw_connect() as conn:
        rows = []
        for row in conn.execute(
            f"SELECT {', '.join(cols)} FROM audit_event WHERE seq BETWEEN %s AND %s ORDER BY seq", (first, last)
        ):
            values = list(row)
            values[14] = orjson.dumps(values[14]).decode()
            values[19] = orjson.dumps(values[19]).decode()
            rows.append(values)
        conn.commit()
        sql = copy_sql("audit_event_scratch")
        rates = []
        for drop_like in (False, True):
            conn.execute("DROP TABLE IF EXISTS audit_event_scratch")
            conn.execute("CREATE TABLE audit_event_scratch (LIKE audit_event INCLUDING ALL)")
            if drop_like:
                like = conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'audit_event_scratch' AND indexdef LIKE"
                    " '%(hash varchar_pattern_ops)%'"
                ).fetchone()
                if like:
                    conn.execute(f'DROP INDEX "{like[0]}"')
            conn.commit()
            start = time.perf_counter()
            for i in range(0, len(rows), batch):
                with conn.cursor() as cursor, cursor.copy(sql) as copy:
                    for values in rows[i : i + batch]:
                        copy.write_row(values)
                conn.commit()
            rates.append(rate(len(rows), time.perf_counter() - start))
        conn.execute("DROP TABLE audit_event_scratch")
        conn.commit()
    return rates[0], rates[1], len(rows)


@contextmanager
def cached_is_secret() -> Iterator[None]:
    """A suggested change, patched in for the measurement only: ``redaction.is_secret`` with the regex result
    cached per field name (``redact`` runs the secret-name regex on every key of every event)."""
    from apps.audit import redaction

    @functools.lru_cache(maxsize=4096)
    def name_is_secret(name: str) -> bool:
        return bool(redaction.SECRET_NAME.search(name))

    def is_secret(name: str, extra: Any = ()) -> bool:
        return name in tuple(extra) or name_is_secret(name)

    with mock.patch.object(redaction, "is_secret", is_secret):
        yield


@contextmanager
def insert_path() -> Iterator[None]:
    """audit_record_many with its COPY switched off (every batch through bulk_create's INSERT), for comparison."""
    from apps.audit import services

    if hasattr(services, "COPY_THRESHOLD"):
        with mock.patch.object(services, "COPY_THRESHOLD", 10**12):
            yield
    else:  # code before 192ae09: INSERT only
        yield


def publish_costs(rng: random.Random, batch: int) -> dict[str, float]:
    """The live messages ``_publish`` sends for one batch: as the code sends them, and awaited one after another."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer
    from django.db import transaction

    from apps.audit import services
    from apps.core import events as core_events

    sample = []
    for seq in range(1, batch + 1):
        tid = rng.randrange(1, TARGETS + 1)
        sample.append(SimpleNamespace(seq=seq, target_type="users.user", target_id=str(tid), outcome="success"))
    captured: list[tuple[str, dict[str, Any]]] = []

    def capture(first: Any, second: Any = None, **kwargs: Any) -> None:  # publish_many(items) or publish(t, p)
        captured.extend(first if isinstance(first, list) else [(first, second or {})])

    name = "publish_many" if hasattr(services, "publish_many") else "publish"
    with mock.patch.object(services, name, capture):
        services._publish(sample)
    start = time.perf_counter()
    for _ in range(5):
        with transaction.atomic():
            services._publish(sample)
    as_coded = (time.perf_counter() - start) / 5 * 1000
    layer = get_channel_layer()

    async def one_by_one() -> None:
        for topic, payload in captured:
            message = {"type": "topic.event", "topic": topic, "payload": payload}
            await layer.group_send(core_events.group_for(topic), message)

    start = time.perf_counter()
    for _ in range(5):
        async_to_sync(one_by_one)()
    sequential = (time.perf_counter() - start) / 5 * 1000
    return {"publish_messages": len(captured), "publish_ms_per_batch": as_coded, "publish_seq_ms_per_batch": sequential}


# --- breakdown of the batched path


def breakdown(rng: random.Random, batches: int, batch: int, profile: bool) -> dict[str, float]:
    """Where audit_record_many spends its time: CPU stages, the live publish, INSERT vs. COPY."""
    from apps.audit.chain import event_hash
    from apps.audit.models import AuditEvent
    from apps.audit.services import _row, audit_record_many
    from apps.core import context

    out: dict[str, float] = {}
    n = batches * batch
    context.start(source="watcher")
    items = event_inputs(rng, n)
    start = time.perf_counter()
    rows = [_row(item) for item in items]
    out["row_us"] = (time.perf_counter() - start) / n * 1e6
    now = datetime.now().astimezone()
    prev = "0" * 64
    for seq, row in enumerate(rows, 1):
        row.update(seq=seq, time=now, prev_hash=prev)
    start = time.perf_counter()
    for row in rows:
        row["hash"] = event_hash(row)
    out["hash_us"] = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    events = [AuditEvent(**row) for row in rows]
    out["model_init_us"] = (time.perf_counter() - start) / n * 1e6
    del events, rows, items
    context.start()

    with no_live_publish():
        out["batched_no_publish_events_per_s"] = bench_batched(n, batch, rng)[0]
        with cached_is_secret():
            out["batched_no_publish_cached_events_per_s"] = bench_batched(n, batch, rng)[0]
    with insert_path():
        out["insert_path_events_per_s"] = bench_batched(n, batch, rng)[0]
        with no_live_publish():
            out["insert_path_no_publish_events_per_s"] = bench_batched(n, batch, rng)[0]
    out.update(publish_costs(rng, batch))
    if profile:
        context.start(source="watcher")
        items = event_inputs(rng, 5000)
        profiler = cProfile.Profile()
        profiler.enable()
        audit_record_many(items)
        profiler.disable()
        context.start()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        print("cProfile of audit_record_many(5,000 events), by own time:")
        print("\n".join(line for line in text.getvalue().splitlines() if line.strip())[:6000])
    return out


# --- 5. load to --rows: valid chained rows generated here, COPYed straight into audit_event


def load_rows(total_rows: int, rng: random.Random) -> tuple[float, int]:
    """Append generated events until the table holds ``total_rows``; returns (rows/s incl. hashing, rows added)."""
    from apps.audit.chain import event_hash

    getter = itemgetter(*columns())
    sql = copy_sql("audit_event")
    added = 0
    with raw_connect() as conn:
        seq, prev = conn.execute("SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE").fetchone()
        last_time = conn.execute("SELECT max(time) FROM audit_event").fetchone()[0]
        when = max(last_time, datetime.now().astimezone()) + timedelta(milliseconds=1)
        need = total_rows - seq
        start = time.perf_counter()
        while added < need:
            chunk = min(LOAD_CHUNK, need - added)
            with conn.cursor() as cursor, cursor.copy(sql) as copy:
                for _ in range(chunk):
                    seq += 1
                    when += timedelta(microseconds=rng.randrange(200, 1800))
                    tid = rng.randrange(1, TARGETS + 1)
                    uid = rng.randrange(1, 60)
                    row = {
                        "seq": seq,
                        "time": when,
                        "actor_kind": "user",
                        "actor_id": str(uid),
                        "actor_name": f"user{uid:04d}",
                        "action": rng.choice(ACTIONS),
                        "target_type": "users.user",
                        "target_id": str(tid),
                        "target_display": f"user{tid:04d}",
                        "scope_cluster": "",
                        "scope_namespace": "",
                        "scope_application": "",
                        "outcome": "success",
                        "message": "",
                        "changes": changes_for(rng, tid),
                        "request_id": secrets.token_hex(16),
                        "client_ip": "10.0.0.7",
                        "user_agent": "kubectl/v1.31",
                        "source": "api",
                        "metadata": {},
                        "prev_hash": prev,
                    }
                    row["hash"] = prev = event_hash(row)
                    values = list(getter(row))
                    values[14] = orjson.dumps(values[14]).decode()
                    values[19] = "{}"
                    copy.write_row(values)
            conn.execute("UPDATE audit_chain_head SET seq = %s, hash = %s WHERE id = 1", (seq, prev))
            conn.commit()
            conn.execute("SELECT 1 FROM audit_chain_head WHERE id = 1 FOR UPDATE")  # hold the head again
            added += chunk
            print(f"  loaded {seq:,} rows", end="\r", flush=True)
        elapsed = time.perf_counter() - start
        conn.commit()
    print()
    return rate(added, elapsed), added


def settle() -> float:
    """VACUUM (ANALYZE) and CHECKPOINT after the bulk load, so the reads below do not pay for setting hint bits
    on a freshly loaded table or run during the checkpoint the load's WAL triggers: the trail verification and
    the History panel read settled data in production."""
    start = time.perf_counter()
    with psycopg.connect(harness.stores(SUFFIX).database_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("VACUUM (ANALYZE) audit_event")
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            print("   (CHECKPOINT needs superuser or pg_checkpoint: skipped)")
    return time.perf_counter() - start


# --- 4. verification


def bench_verify(mem_rows: int) -> dict[str, Any]:
    from apps.audit.chain import GENESIS_HASH, verify
    from apps.audit.models import AuditEvent
    from apps.audit.verification import _FIELDS, _rows, verify_chain

    out: dict[str, Any] = {}
    start = time.perf_counter()
    result = verify_chain()
    elapsed = time.perf_counter() - start
    out.update(verify_ok=result.ok, verify_checked=result.checked, verify_db_s=elapsed)
    out["verify_db_events_per_s"] = rate(result.checked, elapsed)
    if not result.ok:
        print(f"WARNING verify_chain: {result.reason} at seq {result.first_bad_seq}")
    # The same read without hashing: the cost of fetching rows through the ORM (values().iterator).
    start = time.perf_counter()
    fetched = sum(1 for _ in _rows(None, None))
    out["fetch_db_rows_per_s"] = rate(fetched, time.perf_counter() - start)
    events = list(AuditEvent.objects.order_by("seq").values(*_FIELDS)[:mem_rows])
    start = time.perf_counter()
    mem = verify(events, expected_prev=GENESIS_HASH, expected_seq=1)
    elapsed = time.perf_counter() - start
    out.update(verify_mem_ok=mem.ok, verify_mem_checked=mem.checked)
    out["verify_mem_events_per_s"] = rate(mem.checked, elapsed)
    return out


# --- 5. object history


def bench_history(rng: random.Random, queries: int) -> dict[str, Any]:
    from django.db import connection

    from apps.audit.selectors import audit_events, object_history

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_event")
    ids = [str(rng.randrange(1, TARGETS + 1)) for _ in range(queries)]
    for tid in ids[:50]:  # warm-up
        object_history(viewer=VIEWER, target_type="users.user", target_id=tid)
    times = []
    returned = 0
    for tid in ids:
        start = time.perf_counter()
        events = object_history(viewer=VIEWER, target_type="users.user", target_id=tid)
        times.append((time.perf_counter() - start) * 1000)
        returned += len(events)
    queryset = audit_events(viewer=VIEWER, filters={"target_type": "users.user", "target_id": ids[0]})
    sql, params = queryset.order_by("-time", "-seq")[:20].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        plan = [row[0] for row in cursor.fetchall()]
    print("plan of one object_history query:")
    for line in plan:
        print(f"  {line}")
    quantiles = statistics.quantiles(times, n=100, method="inclusive")
    return {
        "history_p50_ms": quantiles[49],
        "history_p99_ms": quantiles[98],
        "history_max_ms": max(times),
        "history_avg_events": returned / len(ids),
    }


def table_sizes() -> dict[str, Any]:
    with raw_connect() as conn:
        total, heap, indexes, count = conn.execute(
            "SELECT pg_total_relation_size('audit_event'), pg_relation_size('audit_event'),"
            " pg_indexes_size('audit_event'), (SELECT count(*) FROM audit_event)"
        ).fetchone()
        per_index = conn.execute(
            "SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = 'audit_event'::regclass ORDER BY 2 DESC"
        ).fetchall()
    mib = 1024 * 1024
    print("audit_event indexes: " + ", ".join(f"{name} {size / mib:.1f} MiB" for name, size in per_index))
    return {
        "table_rows": count,
        "table_total_mib": round(total / mib, 1),
        "table_heap_mib": round(heap / mib, 1),
        "table_indexes_mib": round(indexes / mib, 1),
        "bytes_per_event": round(total / count, 1) if count else 0,
    }


# --- main


def main() -> int:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--rows", type=int, default=None, help="events in the table for verify and history (1M)")
    parser.add_argument("--single", type=int, default=None, help="events of the single-event path (3,000)")
    parser.add_argument("--batched", type=int, default=None, help="events of the batched path per batch size")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of audit_record_many")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    args.rows = args.rows or (QUICK_ROWS if args.quick else 1_000_000)
    single_n = args.single or (300 if args.quick else 3000)
    batched_n = args.batched or (5_000 if args.quick else 100_000)
    breakdown_batches = 2 if args.quick else 10
    history_queries = 200 if args.quick else HISTORY_QUERIES
    rng = random.Random(args.seed)

    results: dict[str, Any] = {}
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    with harness.bench_run(SUFFIX, synchronous_commit=True, drop_at_end=not args.keep):
        sync = show_synchronous_commit()
        print(f"synchronous_commit = {sync}")
        if sync != "on":
            print("WARNING synchronous_commit is not on: commits are not durable and the figures are too high")

        print(f"1. single-event path: {single_n:,} x audit_record() in autocommit")
        results["single_events_per_s"] = bench_single(single_n, rng)
        results["single_no_publish_events_per_s"] = bench_single(max(single_n // 3, 100), rng, publish=False)
        results["single_floor_tx_per_s"] = bench_commit_floor(max(single_n // 3, 100))
        print(
            f"   {results['single_events_per_s']:,.0f} events/s ({results['single_no_publish_events_per_s']:,.0f}"
            f" without the live publish; raw psycopg lock+INSERT+UPDATE+commit floor"
            f" {results['single_floor_tx_per_s']:,.0f}/s)"
        )

        print(f"2. batched path: audit_record_many(), {batched_n:,} events in batches of 1,000 and 5,000")
        results["batched_events_per_s"], first, last = bench_batched(batched_n, 1000, rng)
        results["batched_5000_events_per_s"] = bench_batched(batched_n // 2, 5000, rng)[0]
        print(
            f"   {results['batched_events_per_s']:,.0f} events/s (batch 1,000),"
            f" {results['batched_5000_events_per_s']:,.0f} events/s (batch 5,000)"
        )

        print(
            f"3. anchor: COPY of the same {last - first + 1:,} rows into a LIKE copy of audit_event, batches of 1,000"
        )
        results["copy_rows_per_s"], results["copy_no_like_index_rows_per_s"], _ = bench_copy_anchor(first, last, 1000)
        results["ratio_batched_copy"] = results["batched_events_per_s"] / results["copy_rows_per_s"]
        print(
            f"   {results['copy_rows_per_s']:,.0f} rows/s, batched/COPY = {results['ratio_batched_copy']:.3f};"
            f" {results['copy_no_like_index_rows_per_s']:,.0f} rows/s without the hash *_like index"
        )

        print(f"   breakdown of the batched path ({breakdown_batches} batches of 1,000 per variant)")
        parts = breakdown(rng, breakdown_batches, 1000, args.profile)
        results.update(parts)
        print(
            f"   per event: _row {parts['row_us']:.1f} us, event_hash {parts['hash_us']:.1f} us,"
            f" AuditEvent() {parts['model_init_us']:.1f} us"
        )
        print(
            f"   live publish of one batch: {parts['publish_messages']:.0f} messages,"
            f" {parts['publish_ms_per_batch']:.1f} ms as coded, {parts['publish_seq_ms_per_batch']:.1f} ms"
            " awaited one by one in one event loop"
        )
        print(
            f"   audit_record_many without live publish {parts['batched_no_publish_events_per_s']:,.0f} events/s"
            f" ({parts['batched_no_publish_cached_events_per_s']:,.0f} with a cached is_secret);"
            f" INSERT path (COPY off) {parts['insert_path_events_per_s']:,.0f} events/s,"
            f" without live publish {parts['insert_path_no_publish_events_per_s']:,.0f} events/s"
        )

        print(f"load: audit_event to {args.rows:,} rows (generated, chained, COPY in chunks of {LOAD_CHUNK:,})")
        results["load_rows_per_s"], added = load_rows(args.rows, rng)
        print(f"   {added:,} rows at {results['load_rows_per_s']:,.0f} rows/s (hashing + COPY, one process)")
        results["settle_s"] = settle()
        print(f"   VACUUM (ANALYZE) + CHECKPOINT in {results['settle_s']:.1f} s (steady state before reading)")

        print("4. chain verification")
        mem_rows = min(args.rows, 200_000)
        results.update(bench_verify(mem_rows))
        print(
            f"   verify_chain(): {results['verify_checked']:,} events in {results['verify_db_s']:.1f} s ="
            f" {results['verify_db_events_per_s']:,.0f} events/s, ok={results['verify_ok']};"
            f" ORM fetch alone {results['fetch_db_rows_per_s']:,.0f} rows/s"
        )
        print(
            f"   chain.verify() in memory: {results['verify_mem_checked']:,} events,"
            f" {results['verify_mem_events_per_s']:,.0f} events/s, ok={results['verify_mem_ok']}"
        )

        print(f"5. object_history(): {history_queries:,} queries over {TARGETS:,} targets")
        results.update(bench_history(rng, history_queries))
        results.update(table_sizes())

    checks = [
        ("batched durable ingest", results["batched_events_per_s"], TARGET_BATCHED_EVENTS_PER_S, ">="),
        ("verify_chain events/s", results["verify_db_events_per_s"], TARGET_VERIFY_EVENTS_PER_S, ">="),
        ("history p99 ms", results["history_p99_ms"], TARGET_HISTORY_P99_MS, "<="),
    ]
    print()
    for name, value, target, op in checks:
        ok = value >= target if op == ">=" else value <= target
        print(f"{name:<28}{value:>14,.1f}   target {op} {target:<10,} {'met' if ok else 'MISSED'}")
    print()
    rounded = {k: (round(v, 3 if v < 10 else 1) if isinstance(v, float) else v) for k, v in results.items()}
    summary = {
        "single_events_per_s": rounded["single_events_per_s"],
        "batched_events_per_s": rounded["batched_events_per_s"],
        "copy_rows_per_s": rounded["copy_rows_per_s"],
        "ratio_batched_copy": round(results["ratio_batched_copy"], 3),
        "verify_db_events_per_s": rounded["verify_db_events_per_s"],
        "verify_mem_events_per_s": rounded["verify_mem_events_per_s"],
        "history_p50_ms": round(results["history_p50_ms"], 2),
        "history_p99_ms": round(results["history_p99_ms"], 2),
        "history_rows": rounded["table_rows"],
        "synchronous_commit": sync,
        "target_batched_events_per_s": TARGET_BATCHED_EVENTS_PER_S,
        "target_verify_events_per_s": TARGET_VERIFY_EVENTS_PER_S,
        "target_history_p99_ms": TARGET_HISTORY_P99_MS,
        "single_no_publish_events_per_s": rounded["single_no_publish_events_per_s"],
        "batched_5000_events_per_s": rounded["batched_5000_events_per_s"],
        "batched_no_publish_events_per_s": rounded["batched_no_publish_events_per_s"],
        "batched_no_publish_cached_events_per_s": rounded["batched_no_publish_cached_events_per_s"],
        "insert_path_events_per_s": rounded["insert_path_events_per_s"],
        "insert_path_no_publish_events_per_s": rounded["insert_path_no_publish_events_per_s"],
        "copy_no_like_index_rows_per_s": rounded["copy_no_like_index_rows_per_s"],
        "publish_messages_per_batch": results["publish_messages"],
        "publish_ms_per_batch": round(results["publish_ms_per_batch"], 2),
        "publish_seq_ms_per_batch": round(results["publish_seq_ms_per_batch"], 2),
        "single_floor_tx_per_s": rounded["single_floor_tx_per_s"],
        "row_us_per_event": round(results["row_us"], 2),
        "hash_us_per_event": round(results["hash_us"], 2),
        "model_init_us_per_event": round(results["model_init_us"], 2),
        "fetch_db_rows_per_s": rounded["fetch_db_rows_per_s"],
        "verify_ok": results["verify_ok"] and results["verify_mem_ok"],
        "load_rows_per_s": rounded["load_rows_per_s"],
        "settle_s": round(results["settle_s"], 1),
        "history_max_ms": round(results["history_max_ms"], 2),
        "table_total_mib": results["table_total_mib"],
        "table_heap_mib": results["table_heap_mib"],
        "table_indexes_mib": results["table_indexes_mib"],
        "bytes_per_event": results["bytes_per_event"],
        "cpus": os.cpu_count(),
        "load_avg_1m": round(load_before, 2),
        "runtime_s": round(time.monotonic() - started, 1),
        "quick": args.quick,
    }
    harness.emit(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
