"""Domain events: one typed way for every app to say that something happened that people may need to know.

An app calls :func:`emit` inside its write (or anywhere); the event reaches the registered sinks only after the
surrounding transaction commits (at once outside one), so nothing is announced that did not happen. Core knows no
sink: the notifications app registers one in its ``ready()`` (it records the event and routes it to channels).
An event carries its kind (``<app>.<what>``, e.g. ``clusters.unreachable``), a severity, the scope it concerns
(compared whole, as access control compares scopes), a subject and a short text for people, a link to the page
that shows it, and a deduplication key: events with the same key are one condition (grouped, repeated while
unresolved), and an event with ``resolves=True`` clears the condition of its key (``clusters.recovered``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from django.db import transaction

from apps.core.access import Scope

logger = logging.getLogger(__name__)


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2, Severity.CRITICAL: 3}


@dataclass(frozen=True)
class DomainEvent:
    kind: str  # <app>.<what>: clusters.unreachable, scaler.conflict, cron.run_failed, ...
    severity: Severity
    subject: str  # what it is about, for people: "cluster prod"
    text: str  # one or two sentences
    scope: Scope = field(default_factory=Scope)
    link: str = ""  # a path in the portal ("/clusters/3/")
    dedup_key: str = ""  # same key, same condition; empty: the kind and subject
    resolves: bool = False  # this event clears the condition of dedup_key
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def key(self) -> str:
        return self.dedup_key or f"{self.kind}:{self.subject}"


Sink = Callable[[DomainEvent], None]
_sinks: dict[str, Sink] = {}


def sink_register(name: str, sink: Sink) -> None:
    """Receive every emitted event after commit (``name`` makes registering twice harmless)."""
    _sinks[name] = sink


def _deliver(event: DomainEvent) -> None:
    for name, sink in list(_sinks.items()):
        try:
            sink(event)
        except Exception:  # one failing sink must not hide the event from the others, nor fail the write
            logger.exception("domain event sink %s failed on %s", name, event.kind)


def emit(event: DomainEvent) -> None:
    """Announce ``event`` to every sink once the current transaction commits."""
    transaction.on_commit(lambda: _deliver(event))
