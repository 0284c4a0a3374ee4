"""Advisory locks: one reconcile per object at a time, across every process.

On PostgreSQL these are session-level ``pg_try_advisory_lock`` locks (non-blocking by default: a
second caller simply does not get the lock and returns). On SQLite, which only the single-process
embedded default uses, a process-local lock gives the same guarantee.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections

_local_locks: dict[int, threading.Lock] = {}
_local_guard = threading.Lock()


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a lock name (PostgreSQL's bigint)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def advisory_lock(name: str, *, wait: bool = False, using: str = "default") -> Iterator[bool]:
    """Yield True when the lock ``name`` was taken (held until the block ends), False otherwise.

    ``with advisory_lock(f"cluster-sync:{pk}") as got: if not got: return``
    """
    key = lock_key(name)
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if wait:
                cursor.execute("SELECT pg_advisory_lock(%s)", [key])
                acquired = True
            else:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
                acquired = bool(cursor.fetchone()[0])
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    with _local_guard:
        lock = _local_locks.setdefault(key, threading.Lock())
    acquired = lock.acquire(blocking=wait)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()
