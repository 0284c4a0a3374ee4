"""Recompute the chain from the database, and sign checkpoints of its head."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from apps.audit.chain import GENESIS_HASH, HASHED_FIELDS, VerifyResult, verify
from apps.audit.models import AuditEvent

VERIFY_RESULT_KEY = "icc:audit:last-verify"
_FIELDS = (*HASHED_FIELDS, "hash")


BATCH = 10_000


def _rows(since_seq: int | None, until_seq: int | None) -> Iterator[dict[str, Any]]:
    """Events in seq order, read in keyset batches with plain SQL (the ORM's per-row work halves the rate)."""
    table = AuditEvent._meta.db_table
    sql = f"SELECT {', '.join(_FIELDS)} FROM {table} WHERE seq > %s AND seq <= %s ORDER BY seq LIMIT {BATCH}"  # noqa: S608
    last = (since_seq or 1) - 1
    upper = until_seq if until_seq is not None else 2**62
    json_columns = [_FIELDS.index("changes"), _FIELDS.index("metadata")]
    ip_column = _FIELDS.index("client_ip")
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [last, upper])
            batch = cursor.fetchall()
        for values in batch:
            row = list(values)
            for index in json_columns:
                if isinstance(row[index], (str, bytes)):
                    row[index] = orjson.loads(row[index])
            if row[ip_column] is not None:
                row[ip_column] = str(row[ip_column])
            yield dict(zip(_FIELDS, row, strict=True))
        if len(batch) < BATCH:
            return
        last = batch[-1][0]


def verify_chain(*, since: datetime | None = None, until: datetime | None = None) -> VerifyResult:
    """Verify the events with ``since <= time <= until`` (all when omitted), anchored on the event before."""
    since_seq = until_seq = None
    if since is not None:
        since_seq = AuditEvent.objects.filter(time__gte=since).order_by("seq").values_list("seq", flat=True).first()
        if since_seq is None:
            return VerifyResult(True, 0)
    if until is not None:
        until_seq = AuditEvent.objects.filter(time__lte=until).order_by("-seq").values_list("seq", flat=True).first()
        if until_seq is None:
            return VerifyResult(True, 0)
    expected_prev: str | None = GENESIS_HASH
    expected_seq: int | None = 1
    if since_seq is not None and since_seq > 1:
        before = AuditEvent.objects.filter(seq=since_seq - 1).values_list("hash", flat=True).first()
        # Without the event before (archived), the range's first event anchors itself.
        expected_prev, expected_seq = (before, since_seq) if before else (None, since_seq)
    elif since_seq is None:
        first = AuditEvent.objects.order_by("seq").values_list("seq", flat=True).first()
        if first is not None and first > 1:
            expected_prev, expected_seq = None, first  # older events archived
    return verify(_rows(since_seq, until_seq), expected_prev=expected_prev, expected_seq=expected_seq)


def record_verify_result(result: VerifyResult) -> dict[str, Any]:
    """Keep the latest result for the Audit page and /metrics."""
    from apps.audit import metrics

    summary = {
        "ok": result.ok,
        "checked": result.checked,
        "first_bad_seq": result.first_bad_seq,
        "reason": result.reason,
        "at": timezone.now().isoformat(),
    }
    previous = last_verify_result()
    _announce(result, was_ok=previous is None or bool(previous.get("ok")))
    cache.set(VERIFY_RESULT_KEY, summary, timeout=None)
    metrics.CHAIN_VALID.set(1 if result.ok else 0)
    metrics.CHAIN_CHECKED.set(result.checked)
    metrics.CHAIN_FIRST_BAD.set(result.first_bad_seq or 0)
    return summary


def _announce(result: VerifyResult, *, was_ok: bool) -> None:
    """A critical domain event when the chain is found broken (each verification repeats the condition, grouped
    by its key), and a resolving one when a verification passes again after a failure."""
    from apps.core.domain_events import DomainEvent, Severity, emit

    if not result.ok:
        emit(
            DomainEvent(
                kind="audit.chain_broken",
                severity=Severity.CRITICAL,
                subject="audit trail",
                text=f"The audit chain is broken at seq {result.first_bad_seq}: {result.reason}"[:1000],
                link="/audit/",
                dedup_key="audit.chain_broken",
            )
        )
    elif not was_ok:
        emit(
            DomainEvent(
                kind="audit.chain_verified",
                severity=Severity.INFO,
                subject="audit trail",
                text=f"The audit chain verifies again ({result.checked} events checked).",
                link="/audit/",
                dedup_key="audit.chain_broken",
                resolves=True,
            )
        )


def last_verify_result() -> dict[str, Any] | None:
    return cache.get(VERIFY_RESULT_KEY)


def _signing_key() -> bytes:
    key = settings.AUDIT_SIGNING_KEY or settings.SECRET_KEY
    return key.encode("utf-8")


def checkpoint_payload() -> dict[str, Any]:
    head = AuditEvent.objects.order_by("-seq").values("seq", "hash", "time").first()
    return {
        "last_seq": head["seq"] if head else 0,
        "head_hash": head["hash"] if head else GENESIS_HASH,
        "count": AuditEvent.objects.count(),
        "head_time": head["time"].isoformat() if head else None,
        "written_at": timezone.now().isoformat(),
    }


def sign(payload: dict[str, Any]) -> str:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(_signing_key(), body, hashlib.sha256).hexdigest()


def write_checkpoint(directory: Path | None = None) -> Path:
    """Write ``checkpoint-<last_seq>.json`` with an HMAC-SHA256 signature; returns its path. A failure is
    announced (``audit.checkpoint_failed``) and raised; the next success resolves it."""
    from apps.audit import notify

    directory = Path(directory or settings.AUDIT_CHECKPOINT_DIR)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        payload = checkpoint_payload()
        document = {"checkpoint": payload, "hmac_sha256": sign(payload)}
        path = directory / f"checkpoint-{payload['last_seq']:012d}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(document, indent=2, sort_keys=True))
        os.replace(tmp, path)
    except Exception as exc:
        notify.checkpoint_failed(directory, exc)
        raise
    notify.checkpoint_written(path)
    return path


def check_checkpoint(path: Path) -> tuple[bool, str]:
    """Does a checkpoint file carry a valid signature, and does the database still hold its head?"""
    document = json.loads(Path(path).read_text())
    payload = document["checkpoint"]
    if not hmac.compare_digest(sign(payload), document.get("hmac_sha256", "")):
        return False, "signature does not match (wrong AUDIT_SIGNING_KEY or edited file)"
    stored = AuditEvent.objects.filter(seq=payload["last_seq"]).values_list("hash", flat=True).first()
    if payload["last_seq"] and stored is None:
        return False, f"event {payload['last_seq']} named by the checkpoint is missing"
    if payload["last_seq"] and stored != payload["head_hash"]:
        return False, f"event {payload['last_seq']} no longer has the checkpointed hash"
    return True, f"checkpoint at seq {payload['last_seq']} matches"
