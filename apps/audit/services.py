"""Writing the audit trail. Every ICC service calls :func:`audit_record` inside its own transaction.

Serialization point: appends lock the single chain-head row (``SELECT ... FOR UPDATE``) inside the
caller's transaction, so the next sequence number and ``prev_hash`` are read and written atomically
and an event exists if and only if the caller's change commits. The lock is held until that commit;
callers record last, just before committing, to keep the window short. ``audit_record_many`` appends a
batch under one lock (high-volume system events). Denied and failed attempts are recorded with
:func:`audit_record_outcome` outside the failed transaction.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from apps.audit import events as audit_events
from apps.audit.chain import GENESIS_HASH, event_hash
from apps.audit.models import ActorKind, AuditChainHead, AuditEvent, Outcome, Source
from apps.audit.redaction import redact
from apps.core import context
from apps.core.events import publish_many
from apps.core.middleware import parse_ip

logger = logging.getLogger(__name__)


_SOURCES = frozenset(Source.values)  # Django rebuilds .values on every access


@dataclass(frozen=True)
class Actor:
    kind: str
    id: str = ""
    name: str = ""


@dataclass
class EventInput:
    """One event to append, before it gets its place in the chain."""

    action: str
    target_type: str = ""
    target_id: str = ""
    target_display: str = ""
    outcome: str = Outcome.SUCCESS
    message: str = ""
    changes: dict[str, Any] = field(default_factory=dict)
    scope: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    actor: Actor | None = None
    secret_fields: tuple[str, ...] = ()


def target_of(obj: Model | None) -> tuple[str, str, str]:
    """(type, id, display) of a model instance: ``users.user``, its pk, its str()."""
    if obj is None:
        return "", "", ""
    meta = obj._meta
    return f"{meta.app_label}.{meta.model_name}", str(obj.pk), str(obj)[:255]


def current_actor() -> Actor:
    """Who is acting, from the request or task context."""
    ctx = context.current()
    user = ctx.user
    if user is not None and getattr(user, "is_authenticated", False):
        token = getattr(user, "_icc_token", None)
        if token is not None:
            kind = ActorKind.SERVICE_ACCOUNT if user.is_service_account else ActorKind.TOKEN
            return Actor(kind, str(user.pk), f"{user.get_username()} (token {token.prefix})")
        return Actor(ActorKind.USER, str(user.pk), user.get_username())
    if ctx.task:
        return Actor(ActorKind.SYSTEM, ctx.task, f"task {ctx.task}")
    if ctx.source == Source.CLI:
        return Actor(ActorKind.SYSTEM, "cli", "manage.py")
    if ctx.source:
        return Actor(ActorKind.ANONYMOUS, "", "anonymous")
    return Actor(ActorKind.SYSTEM, "icc", "ICC")


def _row(item: EventInput) -> dict[str, Any]:
    ctx = context.current()
    actor = item.actor or current_actor()
    metadata = dict(item.metadata)
    address = parse_ip(ctx.client_ip) if ctx.client_ip else None
    if ctx.client_ip and address is None:  # never let a malformed address fail the write: keep it as text
        metadata.setdefault("client_address", ctx.client_ip[:64])
    if ctx.task:
        metadata.setdefault("task", ctx.task)
    source = ctx.source if ctx.source in _SOURCES else (Source.TASK if ctx.task else Source.CLI)
    return {
        "actor_kind": actor.kind,
        "actor_id": actor.id[:64],
        "actor_name": actor.name[:150],
        "action": item.action,
        "target_type": item.target_type,
        "target_id": item.target_id[:100],
        "target_display": item.target_display[:255],
        "scope_cluster": item.scope.get("cluster", ""),
        "scope_namespace": item.scope.get("namespace", ""),
        "scope_application": item.scope.get("application", ""),
        "outcome": item.outcome,
        "message": item.message,
        "changes": redact(item.changes, item.secret_fields),
        "request_id": ctx.request_id,
        "client_ip": str(address) if address is not None else None,
        "user_agent": ctx.user_agent,
        "source": source,
        "metadata": redact(metadata, item.secret_fields),
    }


def _lock_head() -> AuditChainHead:
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:  # first event ever (or a freshly flushed test database)
        AuditChainHead.objects.bulk_create([AuditChainHead(id=1, seq=0, hash=GENESIS_HASH)], ignore_conflicts=True)
        head = AuditChainHead.objects.select_for_update().get(pk=1)
    return head


COPY_THRESHOLD = 20


def _insert(events: list[AuditEvent], rows: list[dict[str, Any]]) -> None:
    """INSERT small appends; COPY large ones on PostgreSQL (several times faster per row)."""
    connection = transaction.get_connection()
    if connection.vendor != "postgresql" or len(rows) < COPY_THRESHOLD:
        AuditEvent.objects.bulk_create(events, batch_size=1000)
        return
    columns = [str(field.column) for field in AuditEvent._meta.concrete_fields]
    names = [field.attname for field in AuditEvent._meta.concrete_fields]
    json_fields = {"changes", "metadata"}
    statement = f"COPY {AuditEvent._meta.db_table} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([orjson.dumps(row[n]).decode() if n in json_fields else row[n] for n in names])


def audit_record_many(items: Iterable[EventInput]) -> list[AuditEvent]:
    """Append events to the chain in one transaction under one lock; returns them with seq and hash."""
    rows = [_row(item) for item in items]
    if not rows:
        return []
    with transaction.atomic(savepoint=False):
        head = _lock_head()
        seq, prev = head.seq, head.hash
        now = timezone.now()
        events = []
        for row in rows:
            seq += 1
            row.update(seq=seq, time=now, prev_hash=prev)
            row["hash"] = prev = event_hash(row)
            events.append(AuditEvent(**row))
        _insert(events, rows)
        AuditChainHead.objects.filter(pk=1).update(seq=seq, hash=prev)
        _publish(events)
        transaction.on_commit(lambda: _count(events))
    return events


def audit_record(
    *,
    action: str,
    target: Model | None = None,
    outcome: str = Outcome.SUCCESS,
    message: str = "",
    changes: Mapping[str, Any] | None = None,
    scope: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    actor: Actor | None = None,
    secret_fields: Iterable[str] = (),
    target_type: str = "",
    target_id: str = "",
    target_display: str = "",
) -> AuditEvent:
    """Record one event in the caller's transaction (it commits or rolls back with the change)."""
    if target is not None:
        target_type, target_id, target_display = target_of(target)
    item = EventInput(
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        target_display=target_display,
        outcome=outcome,
        message=message,
        changes=dict(changes or {}),
        scope=dict(scope or {}),
        metadata=dict(metadata or {}),
        actor=actor,
        secret_fields=tuple(secret_fields),
    )
    return audit_record_many([item])[0]


def audit_record_outcome(*, outcome: str, **kwargs: Any) -> AuditEvent | None:
    """Record a denied or failed attempt in its own transaction, never failing the caller."""
    if transaction.get_connection().in_atomic_block:
        logger.warning("audit_record_outcome called inside a transaction; the event rolls back with it")
    try:
        return audit_record(outcome=outcome, **kwargs)
    except Exception as exc:
        from apps.audit.metrics import WRITE_FAILURES

        action = str(kwargs.get("action") or "")
        WRITE_FAILURES.labels(action=action).inc()
        logger.exception("could not record %s audit event %s: %s: %s", outcome, action, type(exc).__name__, exc)
        return None


def _count(events: list[AuditEvent]) -> None:
    from apps.audit.metrics import EVENTS

    for outcome, count in Counter(event.outcome for event in events).items():
        EVENTS.labels(outcome=outcome).inc(count)


MAX_HISTORY_TOPICS = 20


def _publish(events: list[AuditEvent]) -> None:
    """One message for the live tail, one per distinct object (bounded) for history panels."""
    tail: audit_events.TailPayload = {"seqs": [e.seq for e in events[-50:]]}
    items: list[tuple[str, dict[str, Any]]] = [(audit_events.TAIL, dict(tail))]
    seen: set[str] = set()
    for event in reversed(events):
        if len(seen) >= MAX_HISTORY_TOPICS:
            break
        topic = audit_events.history(event.target_type, event.target_id) if event.target_id else None
        if topic and topic not in seen:
            seen.add(topic)
            payload: audit_events.HistoryPayload = {"seq": event.seq}
            items.append((topic, dict(payload)))
    publish_many(items)
