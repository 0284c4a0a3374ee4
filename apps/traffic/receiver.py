"""Receiving OTLP traces and request samples: who is sending, how much, and into the buffer.

Callers authenticate as an application, either with the workload's ServiceAccount token
(``Authorization: Bearer <JWT>`` and ``X-ICC-Cluster: <cluster name>``, machine identity) or with an ICC API token
whose owner may act on the application named by ``X-ICC-Application: <id>``. A decision is remembered in
process for ``AUTH_CACHE_SECONDS`` under a hash of the credentials (never the token itself), so a steady exporter
costs no database read per request; a revoked token stops within that time. Each application may send
``TRAFFIC_RATE_LIMIT_SPANS_PER_S`` records per second (429 with Retry-After beyond it); a full buffer is a 503 with
Retry-After (both retryable for OTLP exporters); a bad body is a 400 with what is wrong, never to be retried.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from rest_framework.exceptions import APIException

from apps.clusters.models import Application
from apps.core import redis_client
from apps.core.access import Action, can
from apps.traffic import buffer, otlp

AUTH_CACHE_SECONDS = 30.0
MAX_BODY_BYTES = 4 * 1024 * 1024
BUFFERED_SPAN_BYTES = 256  # a span with its attributes takes 150-300 bytes of protobuf
APPLICATION_HEADER = "HTTP_X_ICC_APPLICATION"
CLUSTER_HEADER = "HTTP_X_ICC_CLUSTER"


@dataclass(frozen=True)
class Refused(Exception):
    """An answer other than success: HTTP status, gRPC code for the Status body, message, Retry-After."""

    status: int
    code: int
    message: str
    retry_after: int = 0


class _AuthCache:
    def __init__(self) -> None:
        self.entries: dict[str, tuple[int, float]] = {}
        self.lock = threading.Lock()


_auth = _AuthCache()
_rate_lock = threading.Lock()
_rates: dict[tuple[int, int], int] = {}


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _verify(token: str, meta: dict[str, Any], ip: str) -> int:
    from apps.users.tokens import TOKEN_PREFIX, token_authenticate

    if token.startswith(TOKEN_PREFIX):
        found = token_authenticate(token, ip)
        if found is None:
            raise Refused(401, 16, "the API token is not valid")
        raw = str(meta.get(APPLICATION_HEADER) or "").strip()
        if not raw.isdigit():
            raise Refused(400, 3, "with an API token, X-ICC-Application names the application's id")
        application = Application.objects.filter(pk=int(raw)).first()
        if application is None or not can(found[0], Action.ACT, application):
            raise Refused(403, 7, "the token's owner may not send traffic for this application")
        return application.pk
    from apps.clusters.identity import machine_authenticate

    cluster = str(meta.get(CLUSTER_HEADER) or "").strip()
    if not cluster:
        raise Refused(401, 16, "send an ICC API token, or a ServiceAccount token with X-ICC-Cluster")
    try:
        identity = machine_authenticate(cluster, token)
    except APIException as exc:
        raise Refused(int(exc.status_code), 16 if exc.status_code == 401 else 7, str(exc.detail)) from None
    return int(identity.application.pk)


def authenticate(meta: dict[str, Any], ip: str) -> int:
    """The application the caller sends for (raises Refused)."""
    header = str(meta.get("HTTP_AUTHORIZATION") or "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 16384:
        raise Refused(401, 16, "Authorization: Bearer <token> is required")
    key = _key(token, str(meta.get(APPLICATION_HEADER) or ""), str(meta.get(CLUSTER_HEADER) or ""))
    now = time.monotonic()
    with _auth.lock:
        cached = _auth.entries.get(key)
    if cached is not None and cached[1] > now:
        return cached[0]
    application_id = _verify(token, meta, ip)
    with _auth.lock:
        if len(_auth.entries) > 10000:
            _auth.entries.clear()
        _auth.entries[key] = (application_id, now + AUTH_CACHE_SECONDS)
    return application_id


def _redis() -> redis.Redis | None:
    return redis_client.client(2.0)


def admit(application_id: int, records: int) -> None:
    """Count ``records`` against the application's rate for this second (raises Refused 429 beyond it)."""
    limit = settings.TRAFFIC_RATE_LIMIT_SPANS_PER_S
    second = int(time.time())
    client = _redis()
    if client is None:
        with _rate_lock:
            for stale in [k for k in _rates if k[1] < second]:
                del _rates[stale]
            used = _rates[(application_id, second)] = _rates.get((application_id, second), 0) + records
    else:
        key = f"icc:traffic:rate:{application_id}:{second}"
        with client.pipeline(transaction=False) as pipe:
            pipe.incrby(key, records)
            pipe.expire(key, 3)
            used = int(pipe.execute()[0])
    if used > limit:
        raise Refused(429, 8, f"over {limit} records per second for this application", retry_after=1)


def traces(application_id: int, body: bytes, content_type: str, encoding: str) -> tuple[bytes, str]:
    """Read, check, admit and buffer one OTLP export; returns the answer body and its content type. The request
    as protobuf goes to the buffer: the flushers turn its spans into records, so a request costs little more than
    protobuf's own parse."""
    kind = otlp.media_type(content_type)
    if kind not in (otlp.PROTOBUF, otlp.JSON):
        raise Refused(415, 3, "Content-Type is application/x-protobuf or application/json")
    try:
        checked = otlp.check(otlp.decompress(body, encoding), kind)
    except otlp.BadBody as exc:
        raise Refused(400, 3, str(exc)) from None
    admit(application_id, max(1, checked.spans))
    kept = checked.spans - checked.rejected
    try:
        if kept:  # a large request weighs as its size in spans of BUFFERED_SPAN_BYTES: the bound stays one of memory
            buffer.push_raw(
                application_id, buffer.OTLP, max(kept, len(checked.payload) // BUFFERED_SPAN_BYTES), checked.payload
            )
    except buffer.Full:
        raise Refused(503, 14, "ICC is catching up with earlier traffic", retry_after=5) from None
    return otlp.success(kind, checked.rejected, checked.error), kind
