"""Routing in a worker: the emitter only stores the event and enqueues ``notifications.route``; the event row makes
routing exactly-once (a task delivered twice, the tick re-enqueuing a lost one), a condition's events are routed in
order even when their tasks run out of order, and worker processes route and deliver what this process emits. A
failed attempt is stored as ``failed`` (attempts, answer, next attempt) and shown in the log before its retry."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.domain_events import DomainEvent, Severity, emit
from apps.notifications import delivery, routing
from apps.notifications.models import Delivery, DeliveryStatus, Event, Message, MessageState
from apps.notifications.services.channels import channel_create
from apps.notifications.services.rules import rule_save
from apps.notifications.tasks import route, tick
from tests.support.clients import forced_login, html
from tests.support.components import free_port, wait_for
from tests.support.server import start_celery_worker, stop_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(5 * 60)]


@pytest.fixture
def queued(settings: Any) -> None:
    """Routing as in production: through the ``notifications.route`` task."""
    settings.NOTIFICATIONS_ROUTE_INLINE = False


def hook_rule(receiver, **extra):  # type: ignore[no-untyped-def]
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/hook", max_per_minute=10000)
    rule_save(name="r", kinds=["clusters.*"], min_severity="info", channels=[hook.pk], group_window_seconds=0, **extra)
    return hook


def event(key: str, *, resolves: bool = False) -> DomainEvent:
    kind = "clusters.recovered" if resolves else "clusters.unreachable"
    return DomainEvent(kind=kind, severity=Severity.ERROR, subject=key, text="t", dedup_key=key, resolves=resolves)


def test_the_emitter_only_stores_the_event_and_a_worker_routes_it(queued, receiver):
    hook_rule(receiver)
    emit(event("cluster z"))  # this process's calendar is read once, at its first use
    with CaptureQueriesContext(connection) as queries:
        emit(event("cluster a"))  # the broker has no worker here: the task waits in Redis
    sql = [q["sql"] for q in queries]
    assert len(sql) == 1 and sql[0].startswith('INSERT INTO "notifications_event"'), sql  # no rule read, no message
    stored = Event.objects.get(subject="cluster a")
    assert stored.routed_at is None and not Message.objects.exists()
    assert route(stored.pk) == 1  # what a worker does
    stored.refresh_from_db()
    assert stored.routed_at is not None
    assert Message.objects.get().subject == "cluster a" and Delivery.objects.count() == 1


def test_routing_is_exactly_once_per_event(receiver):
    hook_rule(receiver)
    stored = routing.store(event("cluster b"))
    assert [routing.route(stored.pk), routing.route(stored.pk), route(stored.pk)] == [1, 0, 0]
    assert Message.objects.count() == 1 and Delivery.objects.count() == 1
    assert routing.route(10**9) == 0  # gone (or never was): nothing to do


def test_a_resolving_event_routed_first_routes_the_event_it_resolves_before_itself(receiver):
    hook_rule(receiver)
    opened = routing.store(event("cluster c"))
    resolved = routing.store(event("cluster c", resolves=True))
    assert routing.route(resolved.pk) == 2  # its task ran first: the earlier event of its key goes first
    assert routing.route(opened.pk) == 0
    message = Message.objects.get()
    assert message.state == MessageState.RESOLVED
    assert sorted(Delivery.objects.values_list("kind", flat=True)) == ["first", "resolved"]


def test_the_tick_routes_events_whose_task_was_lost(queued, receiver, eager):
    hook_rule(receiver)
    lost = routing.store(event("cluster d"))  # stored, never enqueued: the emitter died in between
    assert tick()["routed_again"] == 0, "a just-stored event is its own task's to route"
    Event.objects.filter(pk=lost.pk).update(at=datetime.now(UTC) - timedelta(minutes=2))
    assert tick()["routed_again"] == 1
    assert Event.objects.get(pk=lost.pk).routed_at is not None
    assert orjson.loads(receiver.wait_for(1)[0].body)["message"]["subject"] == "cluster d"


def test_a_failed_attempt_is_stored_as_failed_with_its_answer_and_next_attempt(admin_persona, receiver, settings):
    settings.NOTIFICATIONS_BACKOFF_SECONDS = 30
    hook_rule(receiver)
    routing.record(event("cluster e"))
    row = Delivery.objects.get()
    receiver.status = 500
    before = datetime.now(UTC)
    outcome = delivery.attempt(row.pk)
    row.refresh_from_db()
    assert outcome.status == DeliveryStatus.FAILED and row.status == DeliveryStatus.FAILED
    assert (row.attempts, row.status_code, row.reason) == (1, 500, "HTTP 500")
    assert before + timedelta(seconds=14) <= row.next_attempt_at <= before + timedelta(seconds=31)  # half to all
    assert outcome.retry_at == row.next_attempt_at
    assert delivery.attempt(row.pk).status is None, "not due yet: nobody sends it before its next attempt"

    client = forced_login(admin_persona.user)
    assert "hook: failed (500)" in html(client.get("/notifications/")), "the event log shows the failed attempt"
    listed = client.get("/api/v1/notifications/deliveries/?status=failed").json()
    assert [d["id"] for d in listed["results"]] == [row.pk]
    assert listed["results"][0]["next_attempt_at"] and listed["results"][0]["attempts"] == 1

    receiver.status = 200
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=datetime.now(UTC))
    assert [pk for pk, _ in delivery.sweep(datetime.now(UTC) + timedelta(seconds=6))] == [row.pk], "sweep finds it"
    assert delivery.attempt(row.pk).status == DeliveryStatus.SENT
    row.refresh_from_db()
    assert (row.status, row.attempts, row.status_code) == (DeliveryStatus.SENT, 2, 200)


def test_worker_processes_route_and_deliver_each_event_once_in_order(queued, tmp_path, receiver):
    hook_rule(receiver)
    workers = [
        start_celery_worker(
            tmp_path / f"worker-{n}.log", queue="default", hostname=f"route-{n}-{free_port()}", WORKER_METRICS_PORT="0"
        )
        for n in (1, 2)
    ]
    try:
        for n in range(30):
            emit(event(f"cluster {n}"))
            emit(event(f"cluster {n}", resolves=True))
        for pk in Event.objects.values_list("pk", flat=True):  # each task handed out again, as a redelivery would
            route.apply_async(args=[pk])
        wait_for(
            "every message sent and resolved",
            lambda: Delivery.objects.filter(status=DeliveryStatus.SENT).count() == 60,
            timeout=180,
            interval=0.5,
        )
        time.sleep(2)  # duplicates, if any, would arrive now
        assert not Event.objects.filter(routed_at__isnull=True).exists()
        assert Message.objects.count() == 30 and set(Message.objects.values_list("state", flat=True)) == {"resolved"}
        bodies = [orjson.loads(r.body) for r in receiver.requests]
        counts = Counter((b["message"]["subject"], b["delivery"]) for b in bodies)
        assert len(counts) == 60 and set(counts.values()) == {1}
        logs = [(tmp_path / f"worker-{n}.log").read_text(errors="replace") for n in (1, 2)]
        assert any("notifications.route" in log for log in logs)
    finally:
        for worker in workers:
            stop_process(worker)
