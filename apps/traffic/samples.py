"""Request samples, the compact records agents send for what traces do not carry (``POST /traffic/v1/samples``).

A body is ``{"samples": [{...}, ...]}``: at most ``MAX_SAMPLES`` samples and ``MAX_BODY_BYTES`` bytes (also once
gzip-decompressed). Each sample has a route template, method, status, duration and response size, the SHA-256 of
the response body (hex) and the caching-relevant response headers. ``parse`` checks every field strictly and
raises ``BadSample`` naming the first one at fault (``samples[3].status``), so a refused request buffers nothing.
The rows it returns are ``apps.traffic.models.Sample`` fields, ``at`` in unix seconds (the rollup makes it a
datetime); the caching recommendations read them.
"""

from __future__ import annotations

import math
import re
import time
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings

MAX_SAMPLES = 1000
MAX_BODY_BYTES = 1024 * 1024
FUTURE_SECONDS = 300  # clock skew allowed for ``at``
MAX_DURATION_MS = 24 * 3600 * 1000.0

_METHOD = re.compile(r"^[A-Z][A-Z0-9_-]{0,9}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
# Header values as the model stores them (field: max length).
HEADERS = {"cache_control": 300, "expires": 100, "etag": 200, "last_modified": 100, "vary": 200}
FLAGS = ("set_cookie", "authorization")
FIELDS = frozenset(
    {"route", "method", "status", "duration_ms", "size", "body_hash", "at", *HEADERS, *FLAGS},
)
ROUTE_LENGTH = 300


@dataclass(frozen=True)
class BadSample(ValueError):
    """The body is not an acceptable sample batch: ``field`` names what is wrong, ``status`` the HTTP answer."""

    field: str
    message: str
    status: int = 400


def decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise BadSample("Content-Encoding", f"Content-Encoding {encoding!r} is not supported (gzip or none)", 415)
    try:
        data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error:
        raise BadSample("body", "the body is not valid gzip") from None
    if len(data) > MAX_BODY_BYTES:
        raise BadSample("body", f"the body is larger than {MAX_BODY_BYTES} bytes once decompressed", 413)
    return data


def _text(sample: dict[str, Any], key: str, where: str, limit: int, *, required: bool = False) -> str:
    value = sample.get(key)
    if value is None:
        if required:
            raise BadSample(where, "this field is required")
        return ""
    if not isinstance(value, str):
        raise BadSample(where, "must be a string")
    if required and not value.strip():
        raise BadSample(where, "must not be empty")
    if len(value) > limit:
        raise BadSample(where, f"at most {limit} characters")
    if any(ord(c) < 32 for c in value):
        raise BadSample(where, "must not contain control characters")
    return value


def _number(value: Any, where: str, low: float, high: float, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise BadSample(where, "must be an integer" if integer else "must be a number")
    if not math.isfinite(value) or not low <= value <= high:
        raise BadSample(where, f"must be between {low:g} and {high:g}")
    return value


def sample_row(sample: Any, where: str, now: float) -> dict[str, Any]:
    """One sample as ``Sample`` fields (``at`` in unix seconds), or BadSample naming the field."""
    if not isinstance(sample, dict):
        raise BadSample(where, "must be an object")
    unknown = sorted(set(sample) - FIELDS)
    if unknown:
        raise BadSample(f"{where}.{unknown[0]}", "is not a sample field")
    method = _text(sample, "method", f"{where}.method", 10, required=True).upper()
    if not _METHOD.match(method):
        raise BadSample(f"{where}.method", "must be an HTTP method")
    body_hash = _text(sample, "body_hash", f"{where}.body_hash", 64).lower()
    if body_hash and not _HASH.match(body_hash):
        raise BadSample(f"{where}.body_hash", "must be a SHA-256 in hex (64 characters)")
    oldest = now - settings.TRAFFIC_SAMPLE_RETENTION_HOURS * 3600
    at = sample.get("at")
    row: dict[str, Any] = {
        "route": _text(sample, "route", f"{where}.route", ROUTE_LENGTH, required=True),
        "method": method,
        "status": int(_number(sample.get("status"), f"{where}.status", 100, 599, integer=True)),
        "duration_ms": float(_number(sample.get("duration_ms"), f"{where}.duration_ms", 0, MAX_DURATION_MS)),
        "size": int(_number(sample.get("size", 0), f"{where}.size", 0, 2**62, integer=True)),
        "body_hash": body_hash,
        "at": now if at is None else float(_number(at, f"{where}.at", oldest, now + FUTURE_SECONDS)),
    }
    for key, limit in HEADERS.items():
        row[key] = _text(sample, key, f"{where}.{key}", limit)
    for key in FLAGS:
        flag = sample.get(key, False)
        if not isinstance(flag, bool):
            raise BadSample(f"{where}.{key}", "must be true or false")
        row[key] = flag
    return row


def parse(body: bytes, now: float | None = None) -> list[dict[str, Any]]:
    """The batch's rows, all or nothing (raises BadSample)."""
    if len(body) > MAX_BODY_BYTES:
        raise BadSample("body", f"the body is larger than {MAX_BODY_BYTES} bytes", 413)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadSample("body", "the body is not valid JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("samples"), list):
        raise BadSample("samples", 'the body is {"samples": [...]}')
    samples = document["samples"]
    if len(samples) > MAX_SAMPLES:
        raise BadSample("samples", f"at most {MAX_SAMPLES} samples per request", 413)
    now = time.time() if now is None else now
    return [sample_row(sample, f"samples[{i}]", now) for i, sample in enumerate(samples)]
