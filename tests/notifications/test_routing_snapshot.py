"""Routing from the process's view of rules and subscriptions (``apps.notifications.cache``): routing an event reads
no rule, subscription or channel; any change to them (through the services or a plain save) is seen by the very
next event, in this process and, through the Redis generation, in every other; a subscription still reaches its
user only while they may read the event's scope. A delivery is fetched once by its claim."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core import redis_client
from apps.core.domain_events import DomainEvent, Severity
from apps.notifications import cache, delivery, routing
from apps.notifications.models import Delivery, DeliveryStatus, Event, Message, Rule
from apps.notifications.services.channels import channel_create
from apps.notifications.services.rules import rule_save, subscription_create
from tests.support.clients import bind
from tests.support.rows import cluster_row

pytestmark = pytest.mark.django_db(transaction=True)  # commits: the view is kept and the generation moves


def _event(key: str, **extra: Any) -> DomainEvent:
    values: dict[str, Any] = {"kind": "clusters.unreachable", "severity": Severity.ERROR, "subject": key, "text": "t"}
    return DomainEvent(dedup_key=key, **{**values, **extra})


def _tables(sql: list[str]) -> set[str]:
    names = ("notifications_rule", "notifications_subscription", "notifications_channel")
    return {name for name in names for q in sql if f'"{name}"' in q or f'"{name}_' in q}


def test_routing_reads_no_rule_subscription_or_channel_once_the_view_is_built(receiver: Any) -> None:
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/h", max_per_minute=10000)
    rule_save(name="r", kinds=["clusters.*"], min_severity="info", channels=[hook.pk], group_window_seconds=0)
    routing.record(_event("warm-up"))  # builds this process's view
    stored = routing.store(_event("a"))
    with CaptureQueriesContext(connection) as queries:
        assert routing.route(stored.pk) == 1
    sql = [q["sql"] for q in queries]
    assert not _tables(sql), sql
    assert Delivery.objects.filter(message__dedup_key="a", channel=hook).count() == 1


def test_a_rule_disabled_or_given_another_channel_is_seen_by_the_next_event(receiver: Any) -> None:
    first = channel_create(name="first", kind="webhook", target=f"{receiver.url}/1")
    second = channel_create(name="second", kind="webhook", target=f"{receiver.url}/2")
    rule = rule_save(name="r", kinds=["clusters.*"], min_severity="info", channels=[first.pk], group_window_seconds=0)
    routing.record(_event("one"))
    assert list(Delivery.objects.filter(message__dedup_key="one").values_list("channel", flat=True)) == [first.pk]

    rule_save(rule=rule, channels=[second.pk])
    routing.record(_event("two"))
    assert list(Delivery.objects.filter(message__dedup_key="two").values_list("channel", flat=True)) == [second.pk]

    second.enabled = False  # a plain save, not a service: the signal still moves the view
    second.save()
    routing.record(_event("three"))
    assert Message.objects.filter(dedup_key="three").count() == 1
    assert not Delivery.objects.filter(message__dedup_key="three").exists()

    rule_save(rule=rule, enabled=False)
    routing.record(_event("four"))
    assert not Message.objects.filter(dedup_key="four").exists()


def test_another_process_change_is_seen_through_the_redis_generation(receiver: Any) -> None:
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/h")
    rule = rule_save(name="r", kinds=["clusters.*"], min_severity="info", channels=[hook.pk], group_window_seconds=0)
    kept = cache.current()
    assert cache.current() is kept  # unchanged generation: the same view, no query
    Rule.objects.filter(pk=rule.pk).update(enabled=False)  # no signal here: as if another process wrote it ...
    assert cache.current() is kept
    found = redis_client.client()
    assert found is not None
    found.incr(cache.GENERATION_KEY)  # ... and announced it after its commit
    fresh = cache.current()
    assert fresh is not kept and fresh.rules == ()
    routing.record(_event("after"))
    assert not Message.objects.filter(dedup_key="after").exists()


def test_a_cached_subscription_reaches_its_user_only_while_they_may_read_the_scope(make_user: Any) -> None:
    from apps.users.models import RoleBinding

    c1 = cluster_row("c1")
    user = make_user("sub-view")
    bind(user.user, "viewer", c1)
    subscription_create(
        by=user.user,
        kinds=["clusters.*"],
        scope_kind="cluster",
        scope_cluster=str(c1.pk),
        email="sub@example.com",
        group_window_seconds=0,
    )
    scope_values = {"scope": _scope(c1.pk)}
    routing.record(_event("c1-a", **scope_values))
    assert Delivery.objects.filter(recipient="sub@example.com").count() == 1
    RoleBinding.objects.filter(user=user.user).delete()  # grants change outside notifications: no view change
    routing.record(_event("c1-b", **scope_values))
    assert Delivery.objects.filter(recipient="sub@example.com").count() == 1
    user.user.is_active = False
    user.user.save()
    bind(user.user, "viewer", c1)
    routing.record(_event("c1-c", **scope_values))
    assert Delivery.objects.filter(recipient="sub@example.com").count() == 1


def _scope(cluster: int) -> Any:
    from apps.core.access import Scope, ScopeKind

    return Scope(kind=ScopeKind.CLUSTER, cluster=str(cluster))


def test_a_claim_fetches_its_delivery_once_and_a_second_claim_of_it_gets_nothing(receiver: Any) -> None:
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/h", max_per_minute=10000)
    rule_save(name="r", kinds=["clusters.*"], min_severity="info", channels=[hook.pk], group_window_seconds=0)
    routing.record(_event("claimed"))
    pk = Delivery.objects.get().pk
    with CaptureQueriesContext(connection) as queries:
        claimed = delivery.claim(pk)
    assert isinstance(claimed, delivery.Claimed)
    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and 'FROM "notifications_delivery"' in q["sql"]]
    fetches = [s for s in reads if '"notifications_delivery"."id" =' in s]  # not the rate limit's window
    assert len(fetches) == 1, reads
    assert claimed.delivery.status == DeliveryStatus.SENDING and claimed.delivery.attempts == 1
    assert claimed.delivery.message.subject == "claimed" and claimed.delivery.channel == hook
    assert delivery.claim(pk) is None  # sending already: not ours
    outcome = delivery.finish(claimed, delivery.Answer(True, 200, "OK"))
    assert outcome.status == DeliveryStatus.SENT
    assert Delivery.objects.get(pk=pk).status == DeliveryStatus.SENT
    assert Event.objects.get(dedup_key="claimed").routed_at is not None
