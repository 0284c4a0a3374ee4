"""Realistic OTLP protobuf export requests for bench/traffic.py: rounds of traces through four applications.

One trace: ``web`` answers a route and calls ``orders`` and ``search``; ``orders`` queries PostgreSQL and calls
``payments``; ``payments`` calls an uninstrumented card gateway (``peer.service``); ``search`` queries
Elasticsearch. Ten spans a trace, server and client, with the attributes the semantic conventions give them
(route, method, status, response size). A round of ``traces`` traces is one export request per application (each
application sends its own spans with its own credentials), e.g. 300 + 300 + 200 + 200 spans for 100 traces.

Rounds are built once as templates whose trace ids start with an 8-byte marker; :meth:`Round.bodies` replaces the
marker with a fresh value per send, so every request carries new trace ids (pairing keys never repeat) at the cost
of a ``bytes.replace``, not of building protobuf messages while the load is measured.
"""

from __future__ import annotations

import os
import random
import struct
import time
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

APPLICATIONS = ("web", "orders", "payments", "search")
SPANS_PER_TRACE = {"web": 3, "orders": 3, "payments": 2, "search": 2}
SERVER_SPANS_PER_TRACE = 4  # one per application: what the route rollups count
# Client spans per trace and where they end up in the graph: paired app->app calls, database calls, the
# uninstrumented gateway (unpaired, after the pairing window).
PAIRED_PER_TRACE, DATABASE_PER_TRACE, PEER_PER_TRACE = 3, 2, 1
ROUTES = {"web": 300, "orders": 120, "payments": 30, "search": 50}
METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


@dataclass
class Round:
    """One export request body per application, with trace ids starting with ``marker``."""

    marker: bytes
    bodies_by_app: dict[str, bytes]
    traces: int
    spans: int
    server_spans: int
    errors: int

    def bodies(self, fresh: bytes) -> dict[str, bytes]:
        """The bodies with the marker replaced by ``fresh`` (8 bytes): new trace ids, same spans."""
        return {app: body.replace(self.marker, fresh) for app, body in self.bodies_by_app.items()}


def _route(rng: random.Random, app: str) -> tuple[str, str]:
    index = min(int(rng.paretovariate(1.2)) - 1, ROUTES[app] - 1)  # a few hot routes, a long tail
    method = METHODS[index % len(METHODS)]
    return f"/{app}/v1/resource{index}/{{id}}", method


def build_round(rng: random.Random, traces: int, now_ns: int | None = None) -> Round:
    """``traces`` traces through the four applications, ending around ``now_ns``."""
    marker = rng.randbytes(8)
    now_ns = now_ns or time.time_ns()
    spans: dict[str, list[Span]] = {app: [] for app in APPLICATIONS}
    errors = 0

    def add(app: str, kind: int, trace: bytes, parent: bytes, start: int, ms: float, **attrs: str | int) -> bytes:
        nonlocal errors
        span_id = rng.randbytes(8)
        status = attrs.get("http.response.status_code", 0)
        failed = isinstance(status, int) and status >= 500
        errors += failed and kind == Span.SPAN_KIND_SERVER
        spans[app].append(
            Span(
                trace_id=trace,
                span_id=span_id,
                parent_span_id=parent,
                name=str(attrs.get("http.route") or attrs.get("db.system") or "call"),
                kind=kind,  # type: ignore[arg-type]
                start_time_unix_nano=start,
                end_time_unix_nano=start + int(ms * 1e6),
                attributes=[_kv(k, v) for k, v in attrs.items()],
                status=Status(code=Status.STATUS_CODE_ERROR if failed else Status.STATUS_CODE_UNSET),
            )
        )
        return span_id

    def server(app: str, trace: bytes, parent: bytes, start: int, ms: float) -> bytes:
        route, method = _route(rng, app)
        status = 500 if rng.random() < 0.02 else 404 if rng.random() < 0.03 else 200
        return add(
            app,
            Span.SPAN_KIND_SERVER,
            trace,
            parent,
            start,
            ms,
            **{"http.route": route, "http.request.method": method, "http.response.status_code": status},
            **{"http.response.body.size": rng.randint(200, 40_000), "url.scheme": "http"},
        )

    for index in range(traces):
        trace = marker + struct.pack(">Q", index)
        start = now_ns - rng.randint(0, 5_000_000_000)
        total = rng.lognormvariate(3.5, 0.6)
        w = server("web", trace, b"", start, total)
        call = add(
            "web", Span.SPAN_KIND_CLIENT, trace, w, start + 1_000_000, total * 0.6, **{"http.request.method": "GET"}
        )
        o = server("orders", trace, call, start + 2_000_000, total * 0.55)
        add("orders", Span.SPAN_KIND_CLIENT, trace, o, start + 2_500_000, total * 0.1, **{"db.system": "postgresql"})
        call = add(
            "orders", Span.SPAN_KIND_CLIENT, trace, o, start + 3_000_000, total * 0.3, **{"server.address": "payments"}
        )
        p = server("payments", trace, call, start + 3_500_000, total * 0.25)
        add(
            "payments",
            Span.SPAN_KIND_CLIENT,
            trace,
            p,
            start + 4_000_000,
            total * 0.2,
            **{"peer.service": "card-gateway"},
        )
        call = add(
            "web", Span.SPAN_KIND_CLIENT, trace, w, start + 1_000_000, total * 0.2, **{"http.request.method": "GET"}
        )
        s = server("search", trace, call, start + 1_500_000, total * 0.18)
        add("search", Span.SPAN_KIND_CLIENT, trace, s, start + 1_800_000, total * 0.1, **{"db.system": "elasticsearch"})
    bodies = {}
    for app, app_spans in spans.items():
        resource = Resource(attributes=[_kv("service.name", app), _kv("k8s.namespace.name", "shop")])
        scope = InstrumentationScope(name="opentelemetry.instrumentation.asgi", version="0.50b0")
        request = ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=scope, spans=app_spans)])]
        )
        bodies[app] = request.SerializeToString()
    return Round(
        marker, bodies, traces, traces * sum(SPANS_PER_TRACE.values()), traces * SERVER_SPANS_PER_TRACE, errors
    )


def build_rounds(count: int, traces: int, seed: int | None = None) -> list[Round]:
    rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(4), "big"))
    return [build_round(rng, traces) for _ in range(count)]
