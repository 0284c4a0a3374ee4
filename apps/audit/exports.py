"""Streaming exports (CSV, JSON Lines): rows go out as they are read, in bounded memory.

CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage
return) get a leading ``'``, so an exported ``=HYPERLINK(...)`` is shown as text; strip that quote from such
cells to re-verify a CSV export's hashes (JSON Lines exports are verbatim).
"""

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
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A text cell that a spreadsheet would evaluate, prefixed with ``'`` so it stays text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return f"'{value}"
    return value


def _csv_cell(value: object) -> object:
    if isinstance(value, (dict, list)):
        value = orjson.dumps(value).decode()
    return spreadsheet_safe(value)


def _rows(queryset: QuerySet[AuditEvent]) -> Iterator[dict[str, object]]:
    # Oldest first, so an export reads like the chain and can be re-verified offline.
    yield from queryset.order_by("seq").values(*EXPORT_FIELDS).iterator(chunk_size=CHUNK)


def export_csv(queryset: QuerySet[AuditEvent]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_FIELDS)
    batch = 0
    for row in _rows(queryset):
        writer.writerow([_csv_cell(row[f]) for f in EXPORT_FIELDS])
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
