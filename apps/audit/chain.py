"""The hash chain: canonical serialization and verification, pure functions (no database)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS_HASH = "0" * 64

# Every field of an event that the hash covers, in a fixed order; ``hash`` itself is not among them.
HASHED_FIELDS = (
    "seq",
    "time",
    "actor_kind",
    "actor_id",
    "actor_name",
    "action",
    "target_type",
    "target_id",
    "target_display",
    "scope_cluster",
    "scope_namespace",
    "scope_application",
    "outcome",
    "message",
    "changes",
    "request_id",
    "client_ip",
    "user_agent",
    "source",
    "metadata",
    "prev_hash",
)


def canonical_bytes(event: Mapping[str, Any]) -> bytes:
    """A stable byte serialization: fixed field list, sorted keys, UTC RFC 3339 times (orjson's ``Z`` form,
    microseconds shown when non-zero)."""
    record = {name: event.get(name) for name in HASHED_FIELDS}
    when = record["time"]
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValueError("audit times must be timezone-aware datetimes")
    if when.tzinfo is not UTC:
        record["time"] = when.astimezone(UTC)
    if record["client_ip"] is None:
        record["client_ip"] = ""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z)


def event_hash(event: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(event)).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""
    last_seq: int | None = None
    last_hash: str | None = None


def verify(
    events: Iterable[Mapping[str, Any]], *, expected_prev: str | None = None, expected_seq: int | None = None
) -> VerifyResult:
    """Walk events in ``seq`` order and report the first broken link.

    ``expected_prev``/``expected_seq`` anchor the first event (the hash and seq+1 of the event just
    before the range); without them the range's first event is trusted as the anchor.
    """
    checked = 0
    prev_hash, next_seq = expected_prev, expected_seq
    last_seq: int | None = None
    for event in events:
        seq = int(event["seq"])
        if next_seq is not None and seq != next_seq:
            return VerifyResult(
                False, checked, next_seq, f"sequence gap: expected {next_seq}, found {seq}", last_seq, prev_hash
            )
        if prev_hash is not None and event["prev_hash"] != prev_hash:
            return VerifyResult(
                False, checked, seq, "prev_hash does not match the previous event's hash", last_seq, prev_hash
            )
        if event_hash(event) != event["hash"]:
            return VerifyResult(False, checked, seq, "hash does not match the event's contents", last_seq, prev_hash)
        checked += 1
        prev_hash, next_seq, last_seq = event["hash"], seq + 1, seq
    return VerifyResult(True, checked, None, "", last_seq, prev_hash)
