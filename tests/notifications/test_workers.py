"""Delivery through real Celery worker processes: two workers handed every delivery several times never send one
twice; a burst of 1,000 events becomes one message per condition and the channel's rate limit holds."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from apps.core.access import Scope, ScopeKind
from apps.core.domain_events import DomainEvent, Severity, emit
from apps.notifications import delivery
from apps.notifications.models import Delivery, DeliveryStatus, Event, Message
from apps.notifications.services.channels import channel_create
from apps.notifications.services.rules import rule_save
from apps.notifications.tasks import deliver
from tests.support.components import free_port, wait_for
from tests.support.server import start_celery_worker, stop_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(5 * 60)]


def test_two_workers_never_deliver_the_same_message_twice(tmp_path, receiver, smtp):
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/hook", max_per_minute=10000)
    mail = channel_create(name="mail", kind="email", target="ops@example.com", max_per_minute=10000)
    rule_save(name="all", kinds=["*"], min_severity="info", channels=[hook.pk, mail.pk], group_window_seconds=0)
    extra = {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp.port), "WORKER_METRICS_PORT": "0"}
    workers = [
        start_celery_worker(
            tmp_path / f"worker-{n}.log", queue="default", hostname=f"notify-{n}-{free_port()}", **extra
        )
        for n in (1, 2)
    ]
    try:
        for i in range(100):
            emit(
                DomainEvent(
                    kind="clusters.unreachable",
                    severity=Severity.ERROR,
                    subject=f"cluster {i}",
                    text="down",
                    scope=Scope(ScopeKind.CLUSTER, str(i)),
                    dedup_key=f"clusters.unreachable:{i}",
                )
            )
        ids = list(Delivery.objects.values_list("pk", flat=True))
        assert len(ids) == 200
        for _ in range(2):  # every delivery handed out twice more: as a lost-task sweep and a retry would
            for pk in ids:
                deliver.apply_async(args=[pk])
        wait_for(
            "every delivery sent",
            lambda: Delivery.objects.filter(status=DeliveryStatus.SENT).count() == 200,
            timeout=180,
            interval=0.5,
        )
        time.sleep(2)  # duplicates, if any, would arrive now
        keys = Counter(receiver.keys())
        assert len(keys) == 100 and set(keys.values()) == {1}
        subjects = Counter(m.subject for m in smtp.received())
        assert len(subjects) == 100 and set(subjects.values()) == {1}
        assert Delivery.objects.filter(attempts=1).count() == 200
        logs = [(tmp_path / f"worker-{n}.log").read_text(errors="replace") for n in (1, 2)]
        assert all("notifications.deliver" in log for log in logs), "both workers took deliveries"
    finally:
        for worker in workers:
            stop_process(worker)


def test_a_burst_of_1000_events_is_grouped_and_rate_limited(receiver, eager):
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/hook", max_per_minute=8)
    rule_save(name="all", kinds=["scaler.*"], min_severity="info", channels=[hook.pk], group_window_seconds=60)
    started = time.monotonic()
    for i in range(1000):
        emit(
            DomainEvent(
                kind="scaler.conflict",
                severity=Severity.WARNING,
                subject=f"app {i % 20}",
                text="two owners",
                scope=Scope(ScopeKind.CLUSTER, "1"),
            )
        )
    elapsed = time.monotonic() - started
    assert Event.objects.count() == 1000
    counts = sorted(Message.objects.values_list("count", flat=True))
    assert counts == [50] * 20, "one message per condition, with its count"
    assert Delivery.objects.count() == 20  # grouped: nothing more was created for the other 980 events
    # The group window passes: make every first delivery due now and hand them all to the sender.
    Delivery.objects.update(next_attempt_at=datetime.now(UTC))
    outcomes = [delivery.attempt(pk) for pk in Delivery.objects.order_by("pk").values_list("pk", flat=True)]
    receiver.wait_for(8)
    time.sleep(0.3)
    assert len(receiver.received()) == 8, "at most max_per_minute in any 60 s"
    assert all(orjson.loads(r.body)["message"]["count"] == 50 for r in receiver.received())
    deferred = Delivery.objects.filter(status=DeliveryStatus.PENDING)
    assert deferred.count() == 12
    first_claim = Delivery.objects.filter(status=DeliveryStatus.SENT).order_by("claimed_at")[0].claimed_at
    assert all(d.next_attempt_at >= first_claim + timedelta(seconds=60) for d in deferred)
    assert all("rate limit" in d.reason and d.attempts == 0 for d in deferred)
    assert sum(o.status == DeliveryStatus.PENDING for o in outcomes) == 12
    # Deferred, not lost: when their minute comes they go.
    Delivery.objects.update(claimed_at=datetime.now(UTC) - timedelta(seconds=61))
    Delivery.objects.filter(status=DeliveryStatus.PENDING).update(next_attempt_at=datetime.now(UTC))
    for pk in list(deferred.values_list("pk", flat=True)):
        delivery.attempt(pk)
    receiver.wait_for(16)
    assert elapsed < 120
