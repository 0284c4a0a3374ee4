"""HMAC-SHA256 signatures on ICC's outgoing HTTP calls (cron's HTTP target, notification webhooks).

``X-ICC-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>.<idempotency key>.<body>">``: receivers
recompute it with the shared secret, compare in constant time and refuse old timestamps (replays).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-ICC-Signature"


def signature(secret: bytes, timestamp: int, idempotency_key: str, body: bytes) -> str:
    message = f"{timestamp}.{idempotency_key}.".encode() + body
    return f"t={timestamp},v1={hmac.new(secret, message, hashlib.sha256).hexdigest()}"
