"""Routing's in-memory view of the enabled rules (with their enabled channels) and subscriptions, so routing an
event does not query them.

Every process keeps one :class:`RoutingSet`, built on first use. Any save or delete of a rule, a subscription, a
channel or a rule's channel list (Django signals, so every writer is covered: services, admin, tests) does two
things: after commit it increments a generation counter in Redis (``icc:notifications:routing``), and until then
it marks this process's view as not to be trusted inside a transaction. Routing reads the counter (one Redis GET)
and rebuilds when it moved, so a rule committed before an event is emitted is seen by every worker that routes
that event (no window of a stale view, unlike a pub/sub message). Without Redis, or inside a transaction that
changed the configuration, the view is built fresh for the call.

Users are not in the view: a subscription's user is checked (active, may read the event's scope) per matching
event, because grants change outside this app.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import redis
from django.db import connection, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from apps.core import redis_client
from apps.notifications.models import Channel, Rule, Subscription

logger = logging.getLogger(__name__)

GENERATION_KEY = "icc:notifications:routing"


@dataclass(frozen=True)
class RoutingSet:
    """The enabled rules in id order, each with the ids of its enabled channels, and the enabled subscriptions."""

    rules: tuple[tuple[Rule, tuple[int, ...]], ...]
    subscriptions: tuple[Subscription, ...]
    generation: int | None  # the Redis counter it was built at (None: built without Redis)

    def rule(self, pk: int) -> tuple[Rule, tuple[int, ...]] | None:
        return next((entry for entry in self.rules if entry[0].pk == pk), None)


def build(generation: int | None) -> RoutingSet:
    """Read the enabled rules, their channels and the enabled subscriptions (three queries)."""
    rules = tuple(
        (rule, tuple(c.pk for c in rule.channels.all() if c.enabled))
        for rule in Rule.objects.filter(enabled=True).prefetch_related("channels").order_by("pk")
    )
    subscriptions = tuple(Subscription.objects.filter(enabled=True).order_by("pk"))
    return RoutingSet(rules, subscriptions, generation)


class _State:
    """This process's view, and whether a transaction of this process changed what it holds (not committed yet,
    or rolled back: either way the view is not to be reused until rebuilt outside a transaction)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.view: RoutingSet | None = None
        self.dirty = False


_state = _State()


def _generation() -> int | None:
    found = redis_client.client(2.0)
    if found is None:
        return None
    try:
        value = found.get(GENERATION_KEY)
    except redis.RedisError as exc:
        logger.warning("could not read the routing generation: %s", type(exc).__name__)
        return None
    return int(value) if value is not None else 0


def current() -> RoutingSet:
    """The view to route with: this process's copy while the Redis generation has not moved, else rebuilt."""
    if _state.dirty and connection.in_atomic_block:
        return build(None)  # this transaction may have changed what the view holds: read it as it sees it
    generation = _generation()
    found = _state.view
    if generation is not None and found is not None and found.generation == generation and not _state.dirty:
        return found
    fresh = build(generation)
    if generation is not None and not connection.in_atomic_block:
        with _state.lock:  # built from committed rows only: kept until the generation moves
            _state.view, _state.dirty = fresh, False
    return fresh


def _bump() -> None:
    _state.view = None
    found = redis_client.client(2.0)
    if found is None:
        return
    try:
        found.incr(GENERATION_KEY)
    except redis.RedisError as exc:
        logger.warning("could not announce a routing change: %s", type(exc).__name__)


def changed(**_: Any) -> None:
    """A rule, subscription, channel or rule's channel list changed: every process rebuilds after commit."""
    _state.dirty = True
    transaction.on_commit(_bump)


def connect() -> None:
    for model in (Rule, Subscription, Channel):
        post_save.connect(changed, sender=model, weak=False, dispatch_uid=f"notifications.cache.save.{model.__name__}")
        post_delete.connect(
            changed, sender=model, weak=False, dispatch_uid=f"notifications.cache.delete.{model.__name__}"
        )
    m2m_changed.connect(
        changed, sender=Rule.channels.through, weak=False, dispatch_uid="notifications.cache.rule_channels"
    )
