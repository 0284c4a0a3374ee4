"""OTLP test data and a clean traffic buffer: spans as exporters send them, export bodies, the receiver's headers.

A plugin (tests/conftest.py): ``empty_traffic`` empties the ingestion buffer and the pairing store around a test
(traffic test modules use it through ``pytest.mark.usefixtures``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span


@pytest.fixture
def empty_traffic() -> Iterator[None]:
    from apps.traffic import buffer, pairing

    buffer.clear()
    pairing.clear()
    yield
    buffer.clear()
    pairing.clear()


def icc_headers(token: str, application: Any) -> dict[str, str]:
    """An API token sending for ``application`` (Django test client keyword arguments)."""
    return {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_X_ICC_APPLICATION": str(application.pk)}


def attr(key: str, value: Any) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def span(trace: bytes, span_id: bytes, parent: bytes, kind: int, start: int, ms: float, **attrs: Any) -> Span:
    """A span of ``ms`` milliseconds from ``start`` (ns); a server span's name is its route, as SDKs name it."""
    return Span(
        trace_id=trace,
        span_id=span_id,
        parent_span_id=parent,
        name=str(attrs.get("http.route", "op")),
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(ms * 1e6),
        attributes=[attr(k, v) for k, v in attrs.items()],
    )


def export(*spans: Span) -> bytes:
    """One ExportTraceServiceRequest carrying ``spans`` (protobuf)."""
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])])
    return request.SerializeToString()
