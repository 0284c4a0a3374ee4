"""OTLP ingestion (real PostgreSQL and Redis, a real ICC web process, the real OpenTelemetry SDK exporters):
protobuf and JSON exports are accepted and rolled up; malformed bodies, wrong content types, oversized requests,
missing or foreign credentials get the OTLP-specified answers; a three-service chain with a database becomes the
expected graph with virtual nodes and latencies from both sides; quantiles of merged minute sketches agree with
the exact quantiles of the same samples within the sketch's accuracy."""

from __future__ import annotations

import gzip
import os
import random
import time

import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from apps.traffic import rollup, sketch
from apps.traffic.models import EdgeRollup, RouteRollup
from apps.users.tokens import token_create
from tests.support.clients import bind
from tests.support.otlp import export, icc_headers, span
from tests.support.rows import application_row, cluster_row

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("empty_traffic")]

URL = "/traffic/v1/traces"


@pytest.fixture
def apps_():
    cluster = cluster_row("prod")
    return {name: application_row(cluster, "shop", name, []) for name in ("frontend", "checkout", "payments")}


@pytest.fixture
def tokens(apps_, operator_persona):
    """An API token of an operator (may act on every application)."""
    return token_create(owner=operator_persona.user, name="otel", by=operator_persona.user)[1]


def flush_all() -> None:
    """Roll up until the buffer is empty."""
    done = rollup.flush()
    while done:
        done = rollup.flush()


def test_real_sdk_exporters_protobuf_and_json_are_accepted(icc_server, apps_, tokens):
    from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter as JsonExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as ProtoExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("shop")
    for i in range(30):
        with tracer.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER) as current:
            current.set_attribute("http.route", "/items/{id}")
            current.set_attribute("http.request.method", "GET")
            current.set_attribute("http.response.status_code", 500 if i % 10 == 0 else 200)
    finished = memory.get_finished_spans()
    endpoint = f"{icc_server.url}{URL}"
    auth = {"Authorization": f"Bearer {tokens}", "X-ICC-Application": str(apps_["frontend"].pk)}
    assert ProtoExporter(endpoint=endpoint, headers=auth).export(finished[:20]) == SpanExportResult.SUCCESS
    assert JsonExporter(endpoint=endpoint, headers=auth).export(finished[20:]) == SpanExportResult.SUCCESS
    flush_all()
    rows = RouteRollup.objects.filter(application=apps_["frontend"], level="m", route="/items/{id}", method="GET")
    assert sum(r.count for r in rows) == 30
    assert sum(r.errors for r in rows.filter(status_class=5)) == 3
    assert {r.status_class for r in rows} == {2, 5}
    # Wrong credentials through the same real exporter: refused, nothing stored.
    bad = ProtoExporter(endpoint=endpoint, headers={**auth, "Authorization": "Bearer icc_00000000_nope"})
    assert bad.export(finished[:1]) == SpanExportResult.FAILURE


def test_otlp_errors(client, apps_, tokens, make_user):
    good = export(span(os.urandom(16), os.urandom(8), b"", Span.SPAN_KIND_SERVER, time.time_ns(), 5))
    h = icc_headers(tokens, apps_["frontend"])
    ok = client.post(URL, good, content_type="application/x-protobuf", **h)
    assert ok.status_code == 200 and ok["Content-Type"] == "application/x-protobuf"
    ExportTraceServiceResponse().ParseFromString(ok.content)
    # gzip, as exporters send with compression on
    zipped = client.post(
        URL, gzip.compress(good), content_type="application/x-protobuf", HTTP_CONTENT_ENCODING="gzip", **h
    )
    assert zipped.status_code == 200
    garbage = client.post(URL, b"\xff\xff\xff", content_type="application/x-protobuf", **h)
    assert garbage.status_code == 400
    status = status_pb2.Status()
    status.ParseFromString(garbage.content)
    assert status.code == 3 and "ExportTraceServiceRequest" in status.message
    bad_json = client.post(
        URL,
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
        content_type="application/json",
        **h,
    )
    assert bad_json.status_code == 400 and "not hex" in bad_json.json()["message"]
    assert client.post(URL, good, content_type="text/plain", **h).status_code == 415
    huge = client.post(URL, b"0", content_type="application/x-protobuf", CONTENT_LENGTH=str(5 * 1024 * 1024), **h)
    assert huge.status_code == 413
    assert client.post(URL, good, content_type="application/x-protobuf").status_code == 401
    # Partial success: a span with a short id is rejected, the others kept.
    partial = export(
        span(b"short", os.urandom(8), b"", Span.SPAN_KIND_SERVER, time.time_ns(), 5),
        span(os.urandom(16), os.urandom(8), b"", Span.SPAN_KIND_SERVER, time.time_ns(), 5),
    )
    answer = client.post(URL, partial, content_type="application/x-protobuf", **h)
    parsed = ExportTraceServiceResponse()
    parsed.ParseFromString(answer.content)
    assert answer.status_code == 200 and parsed.partial_success.rejected_spans == 1
    # Another application's credentials cannot post as this one.
    scoped = make_user("scoped").user
    bind(scoped, "operator", apps_["checkout"].cluster, "shop", "checkout")
    theirs = token_create(owner=scoped, name="checkout", by=scoped)[1]
    assert (
        client.post(
            URL, good, content_type="application/x-protobuf", **icc_headers(theirs, apps_["checkout"])
        ).status_code
        == 200
    )
    foreign = client.post(URL, good, content_type="application/x-protobuf", **icc_headers(theirs, apps_["frontend"]))
    assert foreign.status_code == 403


def test_a_call_chain_with_a_database_becomes_the_graph(client, apps_, tokens, settings):
    settings.TRAFFIC_PAIRING_SECONDS = 1
    trace, start = os.urandom(16), time.time_ns()
    f_server, f_client, c_server, c_client, p_server, p_db, p_peer = (os.urandom(8) for _ in range(7))
    sent = {
        "frontend": [
            span(trace, f_server, b"", Span.SPAN_KIND_SERVER, start, 100, **{"http.route": "/buy"}),
            span(trace, f_client, f_server, Span.SPAN_KIND_CLIENT, start, 80),
        ],
        "checkout": [
            span(trace, c_server, f_client, Span.SPAN_KIND_SERVER, start, 70, **{"http.route": "/orders"}),
            span(trace, c_client, c_server, Span.SPAN_KIND_CLIENT, start, 50),
        ],
        "payments": [
            span(trace, p_server, c_client, Span.SPAN_KIND_SERVER, start, 40, **{"http.route": "/pay"}),
            span(trace, p_db, p_server, Span.SPAN_KIND_CLIENT, start, 10, **{"db.system": "postgresql"}),
            span(trace, p_peer, p_server, Span.SPAN_KIND_CLIENT, start, 20, **{"peer.service": "card-gateway"}),
        ],
    }
    for name in ("payments", "frontend", "checkout"):  # out of order: pairing waits for the other side
        answer = client.post(
            URL, export(*sent[name]), content_type="application/x-protobuf", **icc_headers(tokens, apps_[name])
        )
        assert answer.status_code == 200
        flush_all()
    time.sleep(1.2)  # past the pairing window: the uninstrumented card gateway becomes a virtual node
    rollup.flush()
    f, c, p = (f"app:{apps_[n].pk}" for n in ("frontend", "checkout", "payments"))
    edges = {(e.source, e.target): e for e in EdgeRollup.objects.filter(level="m")}
    assert set(edges) == {(f, c), (c, p), (p, "db:postgresql"), (p, "peer:card-gateway")}
    chain = edges[(f, c)]
    assert chain.calls == 1 and chain.unpaired == 0
    assert sketch.quantiles(chain.client_sketch, [0.5])[0] == pytest.approx(80, rel=0.02)
    assert sketch.quantiles(chain.server_sketch, [0.5])[0] == pytest.approx(70, rel=0.02)
    assert edges[(p, "peer:card-gateway")].unpaired == 1
    assert not bytes(edges[(p, "db:postgresql")].server_sketch)  # a database sends no spans of its own
    assert EdgeRollup.objects.filter(level="h").count() == 4 and EdgeRollup.objects.filter(level="d").count() == 4


def test_merged_minute_sketches_agree_with_exact_quantiles(client, apps_, tokens):
    rng = random.Random(7)
    values: list[float] = []
    now = time.time_ns()
    for minute in range(5):  # five minutes of one route
        spans = []
        for _ in range(400):
            ms = rng.lognormvariate(3, 0.8)
            values.append(ms)
            start = now - (minute * 60 + 30) * 10**9
            spans.append(
                span(os.urandom(16), os.urandom(8), b"", Span.SPAN_KIND_SERVER, start, ms, **{"http.route": "/q"})
            )
        assert (
            client.post(
                URL, export(*spans), content_type="application/x-protobuf", **icc_headers(tokens, apps_["frontend"])
            ).status_code
            == 200
        )
    flush_all()
    minutes = RouteRollup.objects.filter(level="m", route="/q")
    assert minutes.count() >= 5
    merged = sketch.merged(bytes(r.sketch) for r in minutes)
    assert merged.count == len(values)
    values.sort()
    for q in (0.5, 0.95, 0.99):
        exact = values[int(q * (len(values) - 1))]
        assert merged.get_quantile_value(q) == pytest.approx(exact, rel=sketch.ACCURACY + 1e-9)
    hours = RouteRollup.objects.filter(level="h", route="/q")
    assert sum(h.count for h in hours) == len(values)
