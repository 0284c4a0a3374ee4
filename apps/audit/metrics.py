from __future__ import annotations

from prometheus_client import Counter, Gauge

CHAIN_VALID = Gauge("icc_audit_chain_valid", "1 when the last audit chain verification passed, else 0")
CHAIN_CHECKED = Gauge("icc_audit_chain_verified_events", "Events checked by the last audit chain verification")
CHAIN_FIRST_BAD = Gauge("icc_audit_chain_first_bad_seq", "First broken sequence number found (0: none)")
EVENTS = Counter("icc_audit_events_total", "Audit events recorded by this process", ["outcome"])
WRITE_FAILURES = Counter(
    "icc_audit_write_failures_total",
    "Denied or failed attempts whose audit event could not be written (each is logged with its cause)",
    ["action"],
)
