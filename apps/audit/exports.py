"""Streaming exports (CSV, JSON Lines): rows go out as they are read, in bounded memory."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import orjson
from django.db.models import QuerySet

from apps.audit.chain import HASHED_FIELDS
from apps.audit.models import AuditEvent

EXPORT_FIELDS = (*HASHED_FIELDS, "hash")
CHUNK = 2000


def _rows(queryset: QuerySet[AuditEvent]) -> Iterator[dict[str, object]]:
    # Oldest first, so an export reads like the chain and can be re-verified offline.
    yield from queryset.order_by("seq").values(*EXPORT_FIELDS).iterator(chunk_size=CHUNK)


def export_csv(queryset: QuerySet[AuditEvent]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_FIELDS)
    batch = 0
    for row in _rows(queryset):
        writer.writerow(
            [orjson.dumps(row[f]).decode() if isinstance(row[f], (dict, list)) else row[f] for f in EXPORT_FIELDS]
        )
        batch += 1
        if batch >= 500:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            batch = 0
    yield buffer.getvalue().encode()


def export_jsonl(queryset: QuerySet[AuditEvent]) -> Iterator[bytes]:
    lines: list[bytes] = []
    for row in _rows(queryset):
        lines.append(orjson.dumps(row, option=orjson.OPT_UTC_Z))
        if len(lines) >= 500:
            yield b"\n".join(lines) + b"\n"
            lines.clear()
    if lines:
        yield b"\n".join(lines) + b"\n"
