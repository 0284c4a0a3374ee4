"""Leases: whatever must run once at a time across replicas (the beat tick, a cluster's watches, the audit
checkpoint) holds a named lease in the database, and acts only while it holds it.

Taking and renewing are each ONE atomic statement on PostgreSQL (``INSERT ... ON CONFLICT DO UPDATE ... WHERE
expired OR mine RETURNING``) that reads the time from the database (``statement_timestamp()``: the same clock for
every replica, and not frozen inside a transaction as ``now()`` is), never from the process. ``generation`` is the
fencing token: +1 whenever a new holder takes the lease; :func:`lease_valid` checks it before a write that matters.

:class:`LeaderElector` keeps a lease in a daemon thread. It stops acting ``margin`` seconds before the lease could
expire elsewhere: its local deadline is measured from *before* the statement that took or renewed the lease was
sent, so a renewal that fails, or hangs on an unreachable database, makes it step down while the lease is still
its own. A graceful stop releases the lease at once (the generation is kept, so the next holder's is higher).

On SQLite (the single-process embedded default) the same API works with plain row updates in one transaction.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import close_old_connections, connection, transaction
from django.utils import timezone
from prometheus_client import Counter, Gauge

logger = logging.getLogger(__name__)

LEASE_HELD = Gauge(
    "icc_lease_held", "1 while this process holds the lease (it is the leader for it)", ["name", "holder"]
)
LEASE_RENEWAL_FAILURES = Counter(
    "icc_lease_renewal_failures_total",
    "Lease renewals that failed or came too late (the holder stepped down)",
    ["name"],
)

DEFAULT_TTL = 10.0
DEFAULT_RENEW_EVERY = 3.0


def holder_id() -> str:
    """This process's name as a holder: host, process id and a random part (a restarted process differs)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Held:
    """A lease as its holder got it: the fencing ``generation`` and when it expires (database time)."""

    name: str
    holder: str
    generation: int
    expires_at: datetime


_ACQUIRE_PG = """
INSERT INTO core_lease AS l (name, holder, acquired_at, renewed_at, expires_at, generation)
VALUES (%(name)s, %(holder)s, statement_timestamp(), statement_timestamp(),
        statement_timestamp() + make_interval(secs => %(ttl)s), 1)
ON CONFLICT (name) DO UPDATE SET
    holder = EXCLUDED.holder,
    renewed_at = EXCLUDED.renewed_at,
    expires_at = EXCLUDED.expires_at,
    acquired_at = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > statement_timestamp()
                       THEN l.acquired_at ELSE EXCLUDED.acquired_at END,
    generation = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > statement_timestamp()
                      THEN l.generation ELSE l.generation + 1 END
WHERE l.expires_at <= statement_timestamp() OR l.holder = EXCLUDED.holder
RETURNING generation, expires_at
"""

_RENEW_PG = """
UPDATE core_lease SET renewed_at = statement_timestamp(),
                      expires_at = statement_timestamp() + make_interval(secs => %(ttl)s)
WHERE name = %(name)s AND holder = %(holder)s AND generation = %(generation)s AND expires_at > statement_timestamp()
RETURNING generation, expires_at
"""

_RELEASE_PG = """
UPDATE core_lease SET expires_at = statement_timestamp()
WHERE name = %(name)s AND holder = %(holder)s AND generation = %(generation)s AND expires_at > statement_timestamp()
"""

_VALID_PG = """
SELECT 1 FROM core_lease
WHERE name = %(name)s AND generation = %(generation)s AND expires_at > statement_timestamp()
"""


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def lease_acquire(name: str, holder: str, ttl: float = DEFAULT_TTL) -> Held | None:
    """Take the lease ``name`` for ``ttl`` seconds, or keep it when ``holder`` already has it. None when another
    holder's lease is still valid. A new holder gets the previous generation + 1."""
    if _postgres():
        with connection.cursor() as cursor:
            cursor.execute(_ACQUIRE_PG, {"name": name, "holder": holder, "ttl": float(ttl)})
            row = cursor.fetchone()
        return Held(name, holder, int(row[0]), row[1]) if row else None
    from apps.core.models import Lease

    with transaction.atomic():  # SQLite: one writer at a time (IMMEDIATE transactions), one process anyway
        at = timezone.now()
        expires = at + timedelta(seconds=ttl)
        lease = Lease.objects.filter(name=name).first()
        if lease is None:
            lease = Lease.objects.create(
                name=name, holder=holder, acquired_at=at, renewed_at=at, expires_at=expires, generation=1
            )
        elif lease.holder == holder and lease.expires_at > at:
            lease.renewed_at, lease.expires_at = at, expires
            lease.save(update_fields=["renewed_at", "expires_at"])
        elif lease.expires_at <= at:
            lease.holder, lease.acquired_at, lease.renewed_at, lease.expires_at = holder, at, at, expires
            lease.generation += 1
            lease.save()
        else:
            return None
        return Held(name, holder, lease.generation, lease.expires_at)


def lease_renew(held: Held, ttl: float = DEFAULT_TTL) -> Held | None:
    """Extend a lease this holder still has (same generation, not expired); None when it was lost."""
    params: dict[str, Any] = {"name": held.name, "holder": held.holder, "generation": held.generation, "ttl": ttl}
    if _postgres():
        with connection.cursor() as cursor:
            cursor.execute(_RENEW_PG, params)
            row = cursor.fetchone()
        return Held(held.name, held.holder, int(row[0]), row[1]) if row else None
    from apps.core.models import Lease

    at = timezone.now()
    expires = at + timedelta(seconds=ttl)
    updated = Lease.objects.filter(
        name=held.name, holder=held.holder, generation=held.generation, expires_at__gt=at
    ).update(renewed_at=at, expires_at=expires)
    return Held(held.name, held.holder, held.generation, expires) if updated else None


def lease_release(held: Held) -> bool:
    """Give the lease up at once (it expires now; the row and its generation stay). False when it was not held."""
    params: dict[str, Any] = {"name": held.name, "holder": held.holder, "generation": held.generation}
    if _postgres():
        with connection.cursor() as cursor:
            cursor.execute(_RELEASE_PG, params)
            return bool(cursor.rowcount)
    from apps.core.models import Lease

    at = timezone.now()
    return bool(
        Lease.objects.filter(name=held.name, holder=held.holder, generation=held.generation, expires_at__gt=at).update(
            expires_at=at
        )
    )


def lease_renew_many(names: list[str], holder: str, ttl: float = DEFAULT_TTL) -> dict[str, Held]:
    """Extend every one of ``names`` that ``holder`` still has, in one statement; returns those it still holds
    (a watcher renewing the leases of all its clusters at once)."""
    if not names:
        return {}
    if _postgres():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE core_lease SET renewed_at = statement_timestamp(),"
                " expires_at = statement_timestamp() + make_interval(secs => %s)"
                " WHERE name = ANY(%s) AND holder = %s AND expires_at > statement_timestamp()"
                " RETURNING name, generation, expires_at",
                [float(ttl), list(names), holder],
            )
            return {row[0]: Held(row[0], holder, int(row[1]), row[2]) for row in cursor.fetchall()}
    from apps.core.models import Lease

    at = timezone.now()
    expires = at + timedelta(seconds=ttl)
    with transaction.atomic():
        mine = Lease.objects.filter(name__in=names, holder=holder, expires_at__gt=at)
        rows = mine.values_list("name", "generation")
        found = {name: Held(name, holder, generation, expires) for name, generation in rows}
        mine.update(renewed_at=at, expires_at=expires)
    return found


def lease_release_many(names: list[str], holder: str) -> int:
    """Give up every one of ``names`` that ``holder`` has (they expire now); returns how many it had."""
    if not names:
        return 0
    if _postgres():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE core_lease SET expires_at = statement_timestamp()"
                " WHERE name = ANY(%s) AND holder = %s AND expires_at > statement_timestamp()",
                [list(names), holder],
            )
            return int(cursor.rowcount)
    from apps.core.models import Lease

    at = timezone.now()
    return Lease.objects.filter(name__in=names, holder=holder, expires_at__gt=at).update(expires_at=at)


def lease_holder(name: str) -> str | None:
    """Who holds a valid lease ``name`` now (database time), or None."""
    if _postgres():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT holder FROM core_lease WHERE name = %s AND expires_at > statement_timestamp()", [name]
            )
            row = cursor.fetchone()
            return str(row[0]) if row else None
    from apps.core.models import Lease

    found: str | None = (
        Lease.objects.filter(name=name, expires_at__gt=timezone.now()).values_list("holder", flat=True).first()
    )
    return found


def lease_valid(name: str, generation: int) -> bool:
    """The fence: is ``generation`` still the current, unexpired holder of ``name``? (Check before a write that
    must not come from a holder that lost its lease.)"""
    if _postgres():
        with connection.cursor() as cursor:
            cursor.execute(_VALID_PG, {"name": name, "generation": generation})
            return cursor.fetchone() is not None
    from apps.core.models import Lease

    return Lease.objects.filter(name=name, generation=generation, expires_at__gt=timezone.now()).exists()


def _db_call(func: Callable[..., Any], *args: object) -> Any:
    """Run one lease statement on this thread's connection; a broken connection is dropped (the next call
    reconnects, so a database restart needs no process restart)."""
    close_old_connections()
    try:
        return func(*args)
    except Exception:
        try:
            connection.close()
        except Exception:  # the connection may already be gone
            logger.debug("closing a broken connection raised", exc_info=True)
        raise


class LeaderElector:
    """Keeps the lease ``name`` in a daemon thread: ``is_leader`` is True only while it is safely held.

    ``on_elected(held)`` runs when it becomes leader, ``on_deposed()`` when it stops being one (lost, could not
    renew in time, or stopped); both run on the elector's thread and should return quickly. ``stop()`` ends the
    thread and releases the lease so that a standby takes over at once.
    """

    def __init__(
        self,
        name: str,
        *,
        ttl: float = DEFAULT_TTL,
        renew_every: float = DEFAULT_RENEW_EVERY,
        margin: float | None = None,
        holder: str | None = None,
        on_elected: Callable[[Held], None] | None = None,
        on_deposed: Callable[[], None] | None = None,
    ) -> None:
        self.margin = margin if margin is not None else max(1.0, ttl / 5)
        if renew_every >= ttl - self.margin:
            raise ValueError("renew_every must be shorter than ttl - margin")
        self.name = name
        self.ttl = float(ttl)
        self.renew_every = float(renew_every)
        self.retry_every = min(self.renew_every, 2.0)
        self.holder = holder or holder_id()
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.stopped = threading.Event()
        self.changed = threading.Event()  # set on every election and deposition (tests, chaos bench)
        self._held: Held | None = None
        self._deadline = 0.0  # time.monotonic() after which this process no longer acts
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"icc-lease-db-{name}")
        self._pending: Future[Any] | None = None
        self._db_closed = False

    # --- what the role asks -------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        with self._lock:
            return self._held is not None and time.monotonic() < self._deadline

    @property
    def held(self) -> Held | None:
        """The lease while leader (its generation is the fencing token), else None."""
        with self._lock:
            return self._held if self._held is not None and time.monotonic() < self._deadline else None

    @property
    def generation(self) -> int | None:
        held = self.held
        return held.generation if held else None

    def start(self) -> LeaderElector:
        self._thread = threading.Thread(target=self.run, name=f"icc-lease-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, release: bool = True, timeout: float = 5.0) -> None:
        """Stop electing; step down (callbacks run) and release the lease unless ``release=False``."""
        if self.stopped.is_set() and self._db_closed:
            return
        self.stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        held = self._step_down()
        if release and held is not None:
            try:
                self._call(lease_release, held, timeout=timeout)
                logger.info("released lease %s (generation %s)", self.name, held.generation)
            except Exception as exc:
                logger.warning("could not release lease %s: %s (it expires on its own)", self.name, exc)
        self._db_closed = True
        self._db.submit(connection.close)  # the database thread's own connection
        self._db.shutdown(wait=False, cancel_futures=True)
        LEASE_HELD.labels(name=self.name, holder=self.holder).set(0)

    # --- the loop -------------------------------------------------------------------------------------------
    def run(self) -> None:
        LEASE_HELD.labels(name=self.name, holder=self.holder).set(0)
        while not self.stopped.is_set():
            self.tick()
            with self._lock:
                leading = self._held is not None
                deadline = self._deadline
            wait = self.renew_every if leading else self.retry_every
            if leading:  # wake up to step down on time even when nothing else happens
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            self.stopped.wait(wait)

    def tick(self) -> None:
        """One round: renew (leader) or try to take (standby); step down when the deadline passed."""
        with self._lock:
            held = self._held
            deadline = self._deadline
        if held is not None and time.monotonic() >= deadline:
            logger.warning("lease %s: no renewal in time, stepping down before it can expire", self.name)
            LEASE_RENEWAL_FAILURES.labels(name=self.name).inc()
            self._step_down()
            held = None
        sent = time.monotonic()  # the lease cannot expire before sent + ttl: the database stamps it later
        budget = (deadline - sent) if held is not None else self.retry_every
        try:
            if held is not None:
                got = self._call(lease_renew, held, self.ttl, timeout=max(0.1, budget))
            else:
                got = self._call(lease_acquire, self.name, self.holder, self.ttl, timeout=max(0.5, budget))
        except Exception as exc:
            if held is not None:
                LEASE_RENEWAL_FAILURES.labels(name=self.name).inc()
                logger.warning("lease %s: renewal failed (%s: %s)", self.name, type(exc).__name__, exc)
                if time.monotonic() >= deadline:
                    self._step_down()
            else:
                logger.info("lease %s: could not try to take it (%s: %s)", self.name, type(exc).__name__, exc)
            return
        if got is None:
            if held is not None:
                logger.warning("lease %s: lost to another holder", self.name)
                LEASE_RENEWAL_FAILURES.labels(name=self.name).inc()
                self._step_down()
            return
        with self._lock:
            self._held = got
            self._deadline = sent + self.ttl - self.margin
        if held is None:
            logger.info("lease %s: elected (holder %s, generation %s)", self.name, self.holder, got.generation)
            LEASE_HELD.labels(name=self.name, holder=self.holder).set(1)
            self.changed.set()
            if self.on_elected is not None:
                self.on_elected(got)

    def _call(self, func: Callable[..., Any], *args: object, timeout: float) -> Any:
        """Run a lease statement on the elector's database thread, waiting at most ``timeout`` seconds (a hung
        database must not keep a leader from stepping down). A call still pending is not sent twice."""
        if self._pending is not None and not self._pending.done():
            self._pending.result(timeout=timeout)  # still hung: raises TimeoutError again
        self._pending = self._db.submit(_db_call, func, *args)
        try:
            return self._pending.result(timeout=timeout)
        except FutureTimeout:
            raise TimeoutError(f"no answer from the database within {timeout:.1f}s") from None

    def _step_down(self) -> Held | None:
        with self._lock:
            held, self._held, self._deadline = self._held, None, 0.0
        if held is not None:
            LEASE_HELD.labels(name=self.name, holder=self.holder).set(0)
            self.changed.set()
            if self.on_deposed is not None:
                try:
                    self.on_deposed()
                except Exception:
                    logger.exception("lease %s: on_deposed failed", self.name)
        return held


def run_once(name: str, ttl: float, func: Callable[[Held], object], *, release: bool = True) -> tuple[bool, object]:
    """Run ``func(held)`` only if this process takes the lease ``name`` (for ``ttl`` seconds, longer than ``func``
    may take); other callers meanwhile get ``(False, None)``. The lease is released afterwards unless
    ``release=False``, which makes ``ttl`` a window in which the work runs once however often it is asked for.
    ``func`` can fence its final write with ``lease_valid(name, held.generation)``."""
    held = lease_acquire(name, holder_id(), ttl)
    if held is None:
        return False, None
    try:
        return True, func(held)
    finally:
        if release:
            lease_release(held)


def leases() -> list[dict[str, object]]:
    """Every lease with whether it is valid now (database time): the System page and the chaos bench read it."""
    from apps.core.models import Lease

    at = _db_now()
    return [
        {
            "name": lease.name,
            "holder": lease.holder,
            "generation": lease.generation,
            "acquired_at": lease.acquired_at,
            "renewed_at": lease.renewed_at,
            "expires_at": lease.expires_at,
            "valid": lease.expires_at > at,
            "expires_in_s": round((lease.expires_at - at).total_seconds(), 1),
        }
        for lease in Lease.objects.order_by("name")
    ]


def _db_now() -> datetime:
    if _postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            value: datetime = cursor.fetchone()[0]
            return value
    return timezone.now()
