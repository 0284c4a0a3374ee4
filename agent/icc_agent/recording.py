"""One sampled request as the middleware sees it: status, caching headers, body size and a bounded body hash.

The body hash is the SHA-256 of the first ``hash_kib`` KiB only (so a large download costs no more than that);
when the body is longer, its total length is hashed too, so two bodies that differ only in length still differ.
Header values are cut to the lengths ICC stores.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable

# Response headers kept (lower-case name -> sample field, longest value ICC stores).
CACHING_HEADERS = {
    "cache-control": ("cache_control", 300),
    "expires": ("expires", 100),
    "etag": ("etag", 200),
    "last-modified": ("last_modified", 100),
    "vary": ("vary", 200),
}
ROUTE_LENGTH = 300
UNMATCHED = "unmatched"


def _clean(value: str, limit: int) -> str:
    return "".join(c for c in value if ord(c) >= 32)[:limit]


class Recording:
    """Filled in while the response goes out; ``sample`` gives the dict ICC takes."""

    __slots__ = ("authorization", "digest", "hash_limit", "headers", "method", "set_cookie", "size", "start", "status")

    def __init__(self, method: str, *, authorization: bool, hash_limit: int) -> None:
        self.start = time.perf_counter()
        self.method = _clean(method.upper(), 10) or "GET"
        self.authorization = authorization
        self.hash_limit = hash_limit
        self.status = 0
        self.headers: dict[str, str] = {}
        self.set_cookie = False
        self.size = 0
        self.digest = hashlib.sha256()

    def response(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        self.status = status
        self.headers.clear()
        self.set_cookie = False
        for name, value in headers:
            lower = name.lower()
            if lower == "set-cookie":
                self.set_cookie = True
            elif lower in CACHING_HEADERS:
                previous = self.headers.get(lower)
                self.headers[lower] = f"{previous}, {value}" if previous else value

    def body(self, chunk: bytes) -> None:
        if not chunk:
            return
        room = self.hash_limit - self.size
        if room > 0:
            self.digest.update(chunk[:room] if len(chunk) > room else chunk)
        self.size += len(chunk)

    def sample(self, route: str) -> dict[str, object]:
        digest = self.digest.copy()
        if self.size > self.hash_limit:
            digest.update(b"\x00length=%d" % self.size)
        out: dict[str, object] = {
            "route": _clean(route, ROUTE_LENGTH) or UNMATCHED,
            "method": self.method,
            "status": self.status if 100 <= self.status <= 599 else 500,
            "duration_ms": round((time.perf_counter() - self.start) * 1000, 3),
            "size": self.size,
            "body_hash": digest.hexdigest() if self.size and self.hash_limit else "",
            "at": round(time.time(), 3),
            "set_cookie": self.set_cookie,
            "authorization": self.authorization,
        }
        for lower, (field, limit) in CACHING_HEADERS.items():
            value = self.headers.get(lower)
            if value:
                out[field] = _clean(value, limit)
        return out
