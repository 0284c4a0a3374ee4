"""A value every process keeps in memory and rebuilds when any process changes what it was built from.

Hot paths (the admission webhook, the change calendar's "is this frozen?") must not wait on the database. A
``ProcessSnapshot`` builds its value on first use, starts a daemon thread that rebuilds it on every message on its
Redis channel and at least every ``refresh_seconds``, and offers ``changed()`` for writers: after commit it rebuilds
the writer's own copy at once and tells every other process. Of two overlapping rebuilds the one that started
later wins (its number is taken before it reads), so an older read never replaces a newer one.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from django.db import close_old_connections, transaction

from apps.core import redis_client

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ProcessSnapshot(Generic[T]):
    def __init__(self, name: str, channel: str, build: Callable[[int], T], *, refresh_seconds: float) -> None:
        """``build(number)`` reads the value (``number`` orders rebuilds; keep it if callers want to compare)."""
        self.name = name
        self.channel = channel
        self.build = build
        self.refresh_seconds = refresh_seconds
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._value: T | None = None
        self._number = 0
        self._built_at = 0.0
        self._listening = threading.Event()

    def rebuild(self) -> T:
        with self._lock:
            number = next(self._numbers)
        value = self.build(number)
        with self._lock:
            if self._value is None or number > self._number:
                self._value, self._number, self._built_at = value, number, time.monotonic()
            return self._value

    def current(self) -> T:
        """The value (built now on a process's first use, or when the listener has not refreshed it for twice its
        period — a thread that died is caught up inline)."""
        value = self._value
        if value is None:
            value = self.rebuild()
            self._start_listener()
        elif time.monotonic() - self._built_at > self.refresh_seconds * 2:
            value = self.rebuild()
        return value

    def changed(self) -> None:
        """Call from every write of what the value is built from: every process has it right after commit."""
        transaction.on_commit(self._publish)

    def _publish(self) -> None:
        if self._value is not None:
            try:
                self.rebuild()
            except Exception:  # the listener's next rebuild catches up
                logger.exception("could not rebuild %s", self.name)
        redis_client.publish(self.channel, f"a change of {self.name}")

    def _start_listener(self) -> None:
        if self._listening.is_set():
            return
        self._listening.set()
        threading.Thread(target=self._listen, name=self.name, daemon=True).start()

    def _refresh(self) -> None:
        close_old_connections()
        try:
            self.rebuild()
        except Exception:
            logger.exception("could not rebuild %s", self.name)
        finally:
            close_old_connections()

    def _refresh_when_due(self) -> None:
        if time.monotonic() - self._built_at >= self.refresh_seconds:
            self._refresh()

    def _listen(self) -> None:
        redis_client.listen(self.channel, self._refresh, stop=threading.Event(), idle=self._refresh_when_due)
