"""Benchmark of traffic ingestion end to end (OTLP protobuf into minute rollups) and of the traffic queries.

In one run:

1. **ingestion**: ICC's web role (``manage.py run --workers N``, uvicorn) and a Celery worker on the ``analysis``
   queue (``--flushers`` prefork processes; this script enqueues ``traffic.flush`` every ``TRAFFIC_FLUSH_SECONDS``
   as beat does). ``--senders`` load processes on 127.0.0.1 send realistic OTLP protobuf export requests (ten spans a
   trace through four applications, server and client spans, a database and an uninstrumented peer: see
   bench/traffic_payloads.py; 200-300 spans a request, fresh trace ids in every request) with an API token, paced
   to ``--rate`` spans/s for ``--duration`` seconds. ``ingest_p99_ms`` is the senders' request latency (send to
   answer read); ``spans_per_s`` is the spans sent in the window over the time from its start until the rollups
   hold all of them: every server span counted in the minute route rollups, every call paired into an
   application-to-application edge, every database call an edge (the calls to the uninstrumented peer, unpaired
   by design, are checked after the pairing window). **Anchor**: the same request bodies parsed by
   ``opentelemetry-proto`` alone (``ExportTraceServiceRequest.ParseFromString``), ``parse_only_spans_per_s``.
2. **queries**: one application with ``--routes`` routes, each with a minute rollup in each of the last 60 minutes
   (and the hour and day rows the flusher would have written), and 40 graph edges with a day of minute rows plus
   hour rows. Timed through the portal's and API's own functions (``apps.traffic.selectors`` as a viewer with a
   global binding): the routes table of the last hour (default sort by rate, and sorted by latency, which reads
   every sketch) and the fleet graph of the last day. Anchor: the bare SQL ``GROUP BY`` sum of the same hour's
   rows.

The last line of output is one line of JSON. Run: ``.venv/bin/python bench/traffic.py [--quick] [--duration S]
[--rate SPANS_PER_S] [--senders N] [--web-workers N] [--flushers N] [--routes N]``. The database
``icc_bench_traffic`` and Redis db 14 are dropped and reused; never point them at data you keep.
"""

from __future__ import annotations

import http.client
import multiprocessing
import os
import struct
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: bench.harness, apps, tests

from bench import harness
from bench.traffic_payloads import (
    APPLICATIONS,
    DATABASE_PER_TRACE,
    PAIRED_PER_TRACE,
    PEER_PER_TRACE,
    Round,
    build_rounds,
)
from bench.traffic_queries import fill_queries, time_queries

SUFFIX = "_traffic"  # database icc_bench_traffic (BENCH_DATABASE_URL's name + this)
PATH = "/traffic/v1/traces"
PAIRING_SECONDS = 10  # calls to the uninstrumented peer become unpaired edges after this (production default: 30)
FLUSH_SECONDS = 2.0  # TRAFFIC_FLUSH_SECONDS, the production default
TARGET_SPANS_PER_S = 10_000
TARGET_INGEST_P99_MS = 100.0
TARGET_ROUTES_P99_MS = 100.0


def arguments() -> Any:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of measured load")
    parser.add_argument("--rate", type=float, default=12_000.0, help="offered spans per second (all senders)")
    parser.add_argument("--senders", type=int, default=4, help="load processes")
    parser.add_argument(
        "--traces", type=int, default=100, help="traces per round (a round: 4 requests, 10 spans/trace)"
    )
    parser.add_argument("--templates", type=int, default=6, help="distinct rounds per sender")
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--flushers", type=int, default=2, help="Celery worker processes on the analysis queue")
    parser.add_argument("--routes", type=int, default=1000, help="routes of the query phase's application")
    parser.add_argument("--queries", type=int, default=200, help="timed calls of each query")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rate, args.senders, args.templates = 4.0, 3000.0, 2, 2
        args.routes, args.queries = 100, 10
    return args


# --- load ------------------------------------------------------------------------------------------------------


def sender(
    index: int,
    port: int,
    token: str,
    app_ids: dict[str, int],
    rounds: list[Round],
    rate: float,
    window: tuple[float, float],
    out: Any,
) -> None:
    """One load process: a warm-up round (not timed), then rounds paced to ``rate`` spans/s within ``window``."""
    start_at, stop_at = window
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    totals = Counter()  # spans, server spans, errors, traces: of rounds fully accepted, and in the window
    salt = int.from_bytes(os.urandom(2), "big")

    def send(number: int, timed: bool) -> None:
        rnd = rounds[number % len(rounds)]
        accepted = True
        for app, body in rnd.bodies(struct.pack(">HHI", salt, index, number)).items():
            headers = {
                "Content-Type": "application/x-protobuf",
                "Authorization": f"Bearer {token}",
                "X-ICC-Application": str(app_ids[app]),
            }
            began = time.perf_counter()
            try:
                conn.request("POST", PATH, body, headers)
                answer = conn.getresponse()
                answer.read()
                status = answer.status
            except (OSError, http.client.HTTPException):
                conn.close()
                status = 0
            if timed:
                latencies.append(time.perf_counter() - began)
            statuses[status] += 1
            accepted = accepted and status == 200
        if accepted:
            totals["traces"] += rnd.traces
            totals["server_spans"] += rnd.server_spans
            totals["errors"] += rnd.errors
        totals["spans"] += rnd.spans
        if timed:
            totals["window_spans"] += rnd.spans

    send(0, timed=False)  # warms this connection and the web worker's credential cache
    next_at, number = start_at, 1
    while (now := time.time()) < stop_at:
        if next_at > now:
            time.sleep(next_at - now)
        elif now - next_at > 1.0:
            next_at = now  # fell behind: no burst to catch up
        send(number, timed=True)
        next_at += rounds[number % len(rounds)].spans / rate
        number += 1
    out.put({"latencies": latencies, "statuses": dict(statuses), "totals": dict(totals), "sent_until": time.time()})


def parse_only(rounds: list[Round], repeat: int) -> tuple[float, float, float]:
    """Spans/s of the anchor (``ParseFromString`` alone), of what ICC's receiver does per request (``otlp.check``:
    read and check every span) and of what its flushers do with it (``otlp.parse``: the records), same bodies."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from apps.traffic import otlp

    bodies = [body for rnd in rounds for body in rnd.bodies_by_app.values()]
    spans = sum(rnd.spans for rnd in rounds) * repeat

    def rate(parse: Any) -> float:
        best = float("inf")
        for _ in range(3):
            began = time.perf_counter()
            for _ in range(repeat):
                for body in bodies:
                    parse(body)
            best = min(best, time.perf_counter() - began)
        return spans / best

    return (
        rate(lambda b: ExportTraceServiceRequest().ParseFromString(b)),
        rate(lambda b: otlp.check(b, otlp.PROTOBUF)),
        rate(lambda b: otlp.parse(b, otlp.PROTOBUF)),
    )


# --- setup, processes, checks ------------------------------------------------------------------------------------


def setup() -> tuple[Any, str, dict[str, int]]:
    """Four applications, a user with a global operator binding (may act: send traffic; may read) and its token."""
    from apps.users.models import RoleBinding
    from apps.users.services import user_create
    from apps.users.tokens import token_create
    from tests.support.rows import application_row, cluster_row

    cluster = cluster_row("bench")
    app_ids = {name: application_row(cluster, "shop", name, []).pk for name in APPLICATIONS}
    user = user_create(username="otel-bench", password=os.urandom(16).hex())
    RoleBinding.objects.create(user=user, role="operator")
    token = token_create(owner=user, name="otel", by=user)[1]
    return user, token, app_ids


def start_flushers(env: dict[str, str], count: int) -> Any:
    args = ["-m", "celery", "-A", "iccapp", "worker", "-Q", "analysis", "--pool", "prefork"]
    args += ["--concurrency", str(count), "--without-mingle", "--without-gossip", "--loglevel", "WARNING"]
    return harness.start_process(env, *args)


def beat(stop: threading.Event) -> None:
    """What Celery beat does for traffic: enqueue ``traffic.flush`` every ``TRAFFIC_FLUSH_SECONDS``."""
    from apps.traffic.tasks import flush

    while not stop.is_set():
        flush.apply_async(queue="analysis")
        stop.wait(FLUSH_SECONDS)


def rolled_up(app_ids: dict[str, int]) -> dict[str, int]:
    from django.db.models import Sum

    from apps.traffic.models import EdgeRollup, RouteRollup

    routes = RouteRollup.objects.filter(level="m", application_id__in=app_ids.values())
    route_sums = routes.aggregate(count=Sum("count"), errors=Sum("errors"))
    edges = EdgeRollup.objects.filter(level="m")
    paired = edges.filter(source__startswith="app:", target__startswith="app:").aggregate(
        n=Sum("calls"), u=Sum("unpaired")
    )
    return {
        "server_spans": int(route_sums["count"] or 0),
        "errors": int(route_sums["errors"] or 0),
        "paired_calls": int(paired["n"] or 0),
        "unpaired_app_calls": int(paired["u"] or 0),
        "database_calls": int(edges.filter(target__startswith="db:").aggregate(n=Sum("calls"))["n"] or 0),
        "peer_calls": int(edges.filter(target="peer:card-gateway").aggregate(n=Sum("unpaired"))["n"] or 0),
        "other_edge_calls": int(edges.filter(target__in=("unknown",)).aggregate(n=Sum("calls"))["n"] or 0),
    }


def ingest(args: Any, run: harness.Run, token: str, app_ids: dict[str, int]) -> dict[str, Any]:
    from apps.traffic import buffer

    print(f"building {args.senders} x {args.templates} rounds of {args.traces} traces", flush=True)
    rounds = build_rounds(args.senders * args.templates, args.traces)
    anchor, icc_check, icc_parse = parse_only(rounds, repeat=1 if args.quick else 3)
    print(f"anchor: ParseFromString {anchor:,.0f} spans/s; otlp.check {icc_check:,.0f}; otlp.parse {icc_parse:,.0f}")
    port = harness.free_port()
    env = {**run.env, "WEB_CONCURRENCY": str(args.web_workers)}
    web = harness.start_process(env, "manage.py", "run", "--port", str(port), "--workers", str(args.web_workers))
    flushers = start_flushers(env, args.flushers)
    stop_beat = threading.Event()
    ticker = threading.Thread(target=beat, args=(stop_beat,), daemon=True)
    try:
        harness.wait_ready(f"http://127.0.0.1:{port}", web)
        ticker.start()
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        start_at = time.time() + 3.0
        window = (start_at, start_at + args.duration)
        rate = args.rate / args.senders
        procs = [
            context.Process(
                target=sender,
                args=(
                    i,
                    port,
                    token,
                    app_ids,
                    rounds[i * args.templates : (i + 1) * args.templates],
                    rate,
                    window,
                    results,
                ),
            )
            for i in range(args.senders)
        ]
        for proc in procs:
            proc.start()
        load_before = os.getloadavg()[0]
        held_max = 0
        while time.time() < window[1]:
            held_max = max(held_max, buffer.held())
            time.sleep(0.25)
        reports = [results.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(timeout=10)
        load_during = os.getloadavg()[0]
        totals: Counter[str] = Counter()
        statuses: Counter[int] = Counter()
        latencies: list[float] = []
        for report in reports:
            totals.update(report["totals"])
            statuses.update({int(k): v for k, v in report["statuses"].items()})
            latencies.extend(report["latencies"])
        sent_until = max(r["sent_until"] for r in reports)
        traces = totals["traces"]
        expected = {"server_spans": totals["server_spans"], "paired_calls": traces * PAIRED_PER_TRACE}
        expected["database_calls"] = traces * DATABASE_PER_TRACE
        found: dict[str, int] = {}

        def complete() -> bool:
            nonlocal found, held_max
            held_max = max(held_max, buffer.held())
            found = rolled_up(app_ids)
            return all(found[k] >= v for k, v in expected.items())

        harness.wait_for(
            complete, timeout=180, what=f"the rollups to hold every span ({expected}, have {found})", interval=0.2
        )
        done_at = time.time()
        harness.wait_for(
            lambda: rolled_up(app_ids)["peer_calls"] >= traces * PEER_PER_TRACE,
            timeout=PAIRING_SECONDS + 60,
            what="the unpaired calls to the uninstrumented peer",
            interval=0.5,
        )
        final = rolled_up(app_ids)
    finally:
        stop_beat.set()
        harness.stop_process(web)
        harness.stop_process(flushers)
    accepted = statuses.get(200, 0)
    window_spans = totals["window_spans"]
    return {
        "spans_per_s": round(window_spans / (done_at - window[0]), 1),
        "offered_spans_per_s": round(window_spans / (sent_until - window[0]), 1),
        "window_spans": window_spans,
        "spans_sent": totals["spans"],
        "requests": sum(statuses.values()),
        "non_2xx_responses": sum(statuses.values()) - accepted,
        "statuses": {f"http_{k}": v for k, v in sorted(statuses.items())},  # 0: no answer (connection error)
        "ingest_p50_ms": round(harness.percentile(latencies, 0.50) * 1000, 2),
        "ingest_p99_ms": round(harness.percentile(latencies, 0.99) * 1000, 2),
        "ingest_max_ms": round(max(latencies) * 1000, 2),
        "drain_after_load_s": round(done_at - sent_until, 2),
        "buffer_max_spans": held_max,
        "parse_only_spans_per_s": round(anchor, 1),
        "otlp_check_spans_per_s": round(icc_check, 1),
        "otlp_parse_spans_per_s": round(icc_parse, 1),
        "ratio_parse_only_to_ingest": round(anchor * (done_at - window[0]) / window_spans, 1),
        "rollups_exact": final["server_spans"] == totals["server_spans"]
        and final["errors"] == totals["errors"]
        and final["paired_calls"] == traces * PAIRED_PER_TRACE
        and final["database_calls"] == traces * DATABASE_PER_TRACE
        and final["peer_calls"] == traces * PEER_PER_TRACE
        and final["unpaired_app_calls"] == 0,
        "rollups": final,
        "load_avg_1m_before": round(load_before, 2),
        "load_avg_1m_during": round(load_during, 2),
    }


def main() -> int:
    args = arguments()
    with harness.bench_run(
        SUFFIX, TRAFFIC_PAIRING_SECONDS=str(PAIRING_SECONDS), TRAFFIC_FLUSH_SECONDS=str(FLUSH_SECONDS)
    ) as run:
        user, token, app_ids = setup()
        figures = ingest(args, run, token, app_ids)
        f = figures
        print(
            f"ingest: {f['spans_per_s']:,.0f} spans/s end to end (offered {f['offered_spans_per_s']:,.0f})", flush=True
        )
        print(
            f"  request p50 {f['ingest_p50_ms']} ms, p99 {f['ingest_p99_ms']} ms, max {f['ingest_max_ms']} ms",
            flush=True,
        )
        print(f"  {f['non_2xx_responses']} non-2xx of {f['requests']}; rollups exact: {f['rollups_exact']}", flush=True)
        print(f"  rollups: {f['rollups']}", flush=True)
        print(f"anchor: parse only {f['parse_only_spans_per_s']:,.0f} spans/s", flush=True)
        print(
            f"  {f['ratio_parse_only_to_ingest']}x end to end; receiver's check {f['otlp_check_spans_per_s']:,.0f}/s",
            flush=True,
        )
        catalog = fill_queries(user, args.routes)
        queries = time_queries(user, catalog, args.routes, args.queries)
        for name, value in queries.items():
            print(f"  {name}: {value}", flush=True)
    summary = {
        **figures,
        **queries,
        "duration_s": args.duration,
        "senders": args.senders,
        "web_workers": args.web_workers,
        "flushers": args.flushers,
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "target_spans_per_s": TARGET_SPANS_PER_S,
        "target_ingest_p99_ms": TARGET_INGEST_P99_MS,
        "target_routes_query_p99_ms": TARGET_ROUTES_P99_MS,
    }
    print("targets:", flush=True)
    print(f"  spans/s >= {TARGET_SPANS_PER_S}: {summary['spans_per_s']:,.0f}", flush=True)
    print(f"  ingest p99 <= {TARGET_INGEST_P99_MS} ms: {summary['ingest_p99_ms']}", flush=True)
    print(f"  routes query p99 <= {TARGET_ROUTES_P99_MS} ms: {summary['routes_query_p99_ms']}", flush=True)
    harness.emit(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
