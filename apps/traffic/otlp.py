"""OTLP/HTTP trace bodies, as the OpenTelemetry Protocol specifies them, parsed with ``opentelemetry-proto``.

``parse(body, content_type)`` accepts ``application/x-protobuf`` (an ``ExportTraceServiceRequest``) and
``application/json`` (the same message in protobuf's JSON mapping, except that trace and span ids are hex strings,
as OTLP requires) and gives the compact ``SpanRecord`` tuples the rollups need, plus how many spans were rejected
and why (a partial success). Answers are encoded like the request: an ``ExportTraceServiceResponse`` on success, a
``google.rpc.Status`` on errors. Unknown JSON fields are ignored, as the specification asks.
"""

from __future__ import annotations

import base64
import gzip
import zlib
from collections.abc import Iterable
from typing import Any, NamedTuple

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_DECOMPRESSED_BYTES = 16 * 1024 * 1024
ROUTE_LENGTH = 300

SERVER, CLIENT = "s", "c"
_KINDS = {Span.SPAN_KIND_SERVER: SERVER, Span.SPAN_KIND_CONSUMER: SERVER, Span.SPAN_KIND_CLIENT: CLIENT}
_KINDS[Span.SPAN_KIND_PRODUCER] = CLIENT
_WANTED = {
    "http.route",
    "http.request.method",
    "http.method",
    "http.response.status_code",
    "http.status_code",
    "http.response.body.size",
    "http.response_content_length",
    "peer.service",
    "db.system",
    "db.system.name",
    "server.address",
    "net.peer.name",
}


class BadBody(ValueError):
    """The body cannot be read as an OTLP trace export (a 400, not to be retried)."""


class SpanRecord(NamedTuple):
    """What the rollups keep of one server or client span."""

    kind: str  # "s" (server/consumer) or "c" (client/producer)
    trace: str  # hex
    span: str
    parent: str  # hex, "" for a root span
    end: float  # unix seconds
    duration_ms: float
    error: bool
    route: str
    method: str
    status: int  # HTTP status code, 0 when none
    size: int
    peer: str  # peer.service
    db: str  # db.system
    address: str  # server.address of a client span


class Parsed(NamedTuple):
    records: list[SpanRecord]
    spans: int  # every span in the request, kept or not (internal spans are counted, not kept)
    rejected: int
    error: str  # why spans were rejected (the first reason)


def media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise BadBody(f"Content-Encoding {encoding!r} is not supported (gzip or none)")
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = inflater.decompress(body, MAX_DECOMPRESSED_BYTES + 1)
    except (zlib.error, gzip.BadGzipFile):
        raise BadBody("the body is not valid gzip") from None
    if len(data) > MAX_DECOMPRESSED_BYTES:
        raise BadBody(f"the body is larger than {MAX_DECOMPRESSED_BYTES} bytes once decompressed")
    return data


def _hex_ids(node: Any) -> None:
    """OTLP JSON carries ids as hex; protobuf's JSON mapping expects base64: convert in place."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"):
                if isinstance(value, str) and value:
                    try:
                        node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                    except ValueError:
                        raise BadBody(f"{key} {value[:40]!r} is not hex") from None
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def _message(body: bytes, kind: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if kind == PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError:
            raise BadBody("the body is not an ExportTraceServiceRequest (protobuf)") from None
        return request
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadBody("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadBody("the body is not a JSON object")
    _hex_ids(data)
    try:
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise BadBody(f"the JSON is not an ExportTraceServiceRequest: {str(exc)[:200]}") from None
    return request


_SCALARS = frozenset(("string_value", "int_value", "double_value", "bool_value"))
_ERROR = Status.STATUS_CODE_ERROR


def _attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    """The wanted attributes' scalar values (one pass, each key and value read once: this runs for every span)."""
    found: dict[str, Any] = {}
    for kv in pairs:
        key = kv.key
        if key in _WANTED:
            value = kv.value
            which = value.WhichOneof("value")
            found[key] = getattr(value, which) if which in _SCALARS else None
    return found


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _text(value: Any, length: int) -> str:
    return value[:length] if value.__class__ is str else str(value or "")[:length]


def _record(span: Any, kind: str, start: int, end: int) -> SpanRecord:
    get = _attributes(span.attributes).get
    status = _int(get("http.response.status_code") or get("http.status_code"))
    route = get("http.route") or (span.name if kind == SERVER else "")
    size = _int(get("http.response.body.size") or get("http.response_content_length"))
    return SpanRecord(  # positional: this runs for every span
        kind,
        span.trace_id.hex(),
        span.span_id.hex(),
        span.parent_span_id.hex(),
        end / 1e9,
        max(0.0, (end - start) / 1e6),
        status >= 500 or span.status.code == _ERROR,
        _text(route, ROUTE_LENGTH),
        _text(get("http.request.method") or get("http.method"), 10).upper(),
        status,
        max(0, size),
        _text(get("peer.service"), 200),
        _text(get("db.system.name") or get("db.system"), 100),
        _text(get("server.address") or get("net.peer.name"), 200),
    )


def _invalid(span: Any, start: int, end: int) -> str:
    """Why the span is rejected ("" when it is kept)."""
    if len(span.trace_id) != 16 or len(span.span_id) != 8:
        return "a span needs a 16-byte trace id and an 8-byte span id"
    if end < start:
        return "a span ends before it starts"
    return ""


class Checked(NamedTuple):
    payload: bytes  # the request as protobuf (a JSON body re-encoded), for :func:`records` later
    spans: int  # every span in the request
    rejected: int
    error: str


def check(body: bytes, content_type: str) -> Checked:
    """What the receiver answers from (raises BadBody): the request read and its spans checked, without building
    the rollups' records — the flushers do that from the payload (:func:`records`), off the request's path."""
    kind = media_type(content_type)
    message = _message(body, kind)
    spans = rejected = 0
    error = ""
    for resource_spans in message.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans += 1
                reason = _invalid(span, span.start_time_unix_nano, span.end_time_unix_nano)
                if reason:
                    rejected += 1
                    error = error or reason
    return Checked(body if kind == PROTOBUF else message.SerializeToString(), spans, rejected, error)


def records(payload: bytes) -> list[SpanRecord]:
    """The records of a checked request's payload: the same as ``parse(payload, PROTOBUF).records``."""
    return parse(payload, PROTOBUF).records


def parse(body: bytes, content_type: str) -> Parsed:
    """The spans of one export request (raises BadBody when the request as a whole cannot be read)."""
    kind = media_type(content_type)
    message = _message(body, kind)
    records: list[SpanRecord] = []
    spans = rejected = 0
    error = ""
    kinds = _KINDS.get
    for resource_spans in message.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans += 1
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                reason = _invalid(span, start, end)
                if reason:
                    rejected += 1
                    error = error or reason
                    continue
                role = kinds(span.kind)
                if role is not None:
                    records.append(_record(span, role, start, end))
    return Parsed(records, spans, rejected, error)


def success(kind: str, rejected: int = 0, error: str = "") -> bytes:
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = error
    if kind == JSON:
        return json_format.MessageToJson(response, indent=None).encode()
    return response.SerializeToString()


def failure(kind: str, code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` (``code`` is the gRPC code: 3 invalid argument, 8 exhausted, 14 unavailable...)."""
    status = status_pb2.Status(code=code, message=message)
    if kind == JSON:
        return json_format.MessageToJson(status, indent=None).encode()
    return status.SerializeToString()
