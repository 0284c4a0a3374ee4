"""Events through rules to channels, in one process with real PostgreSQL, a real SMTP server and a real HTTP
receiver: grouping, resolved messages, payload shapes, signatures, retries to dead, maintenance."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from apps.clusters.models import ClusterStatus
from apps.clusters.sync.health import set_health
from apps.core import calendar
from apps.core.access import Scope, ScopeKind
from apps.core.domain_events import DomainEvent, Severity, emit
from apps.notifications import delivery
from apps.notifications.models import Delivery, DeliveryStatus, Event, Message, MessageState
from apps.notifications.services.channels import channel_create
from apps.notifications.services.rules import rule_save
from tests.support.rows import cluster_row

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def drain(timeout: float = 15) -> None:
    """Send every delivery that is or becomes due (as the beat's tick does), until none is pending or failed."""
    deadline = time.monotonic() + timeout
    unfinished = (*delivery.WAITING, DeliveryStatus.SENDING)
    while time.monotonic() < deadline:
        pending = list(
            Delivery.objects.filter(status__in=delivery.WAITING, next_attempt_at__lte=datetime.now(UTC)).values_list(
                "pk", flat=True
            )
        )
        for pk in pending:
            delivery.attempt(pk)
        if not Delivery.objects.filter(status__in=unfinished).exists():
            return
        time.sleep(0.02)
    raise AssertionError("deliveries still pending after the timeout")


def webhook_and_mail(receiver, *, window: int = 0, secret: str = "s3cret-signing-key", kinds=("clusters.*",)):  # type: ignore[no-untyped-def]
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/hook", secret=secret)
    mail = channel_create(name="ops-mail", kind="email", target="ops@example.com, oncall@example.com")
    rule = rule_save(
        name="clusters",
        kinds=list(kinds),
        min_severity="info",
        channels=[hook.pk, mail.pk],
        group_window_seconds=window,
    )
    return hook, mail, rule


def test_an_unreachable_cluster_sends_one_grouped_message_then_one_resolved(eager, smtp, receiver):
    webhook_and_mail(receiver, window=1)
    cluster = cluster_row("prod")
    set_health(cluster.pk, ClusterStatus.UNREACHABLE, "connection refused")
    for _ in range(4):  # the same condition reported again (watch and sync both see it) within the window
        emit(
            DomainEvent(
                kind="clusters.unreachable",
                severity=Severity.ERROR,
                subject="cluster prod",
                text="still down",
                scope=Scope(ScopeKind.CLUSTER, str(cluster.pk)),
                dedup_key=f"clusters.unreachable:{cluster.pk}",
            )
        )
    message = Message.objects.get()
    assert message.count == 5 and message.state == MessageState.OPEN
    assert Event.objects.filter(kind="clusters.unreachable").count() == 5
    time.sleep(1.1)
    drain()
    hooks = receiver.wait_for(1)
    mails = smtp.wait_for(1)
    assert len(hooks) == 1 and len(mails) == 1
    body = orjson.loads(hooks[0].body)
    assert body["delivery"] == "first" and body["message"]["count"] == 5
    assert body["message"]["dedup_key"] == f"clusters.unreachable:{cluster.pk}"
    assert "prod" in mails[0].subject and "(x5)" in mails[0].subject
    assert sorted(mails[0].recipients) == ["oncall@example.com", "ops@example.com"]

    set_health(cluster.pk, ClusterStatus.CONNECTED)
    drain()
    hooks = receiver.wait_for(2)
    mails = smtp.wait_for(2)
    assert len(hooks) == 2 and len(mails) == 2
    assert orjson.loads(hooks[1].body)["delivery"] == "resolved"
    assert mails[1].subject.startswith("[ICC] Resolved: cluster prod")
    message.refresh_from_db()
    assert message.state == MessageState.RESOLVED and message.resolved_at is not None
    # A new outage is a new condition: a new message.
    set_health(cluster.pk, ClusterStatus.UNREACHABLE, "refused again")
    assert Message.objects.filter(state=MessageState.OPEN).count() == 1
    assert Message.objects.count() == 2


def test_the_webhook_signature_verifies_with_the_channel_secret(eager, receiver):
    webhook_and_mail(receiver, secret="k3y-only-we-know")
    emit(DomainEvent(kind="clusters.unreachable", severity=Severity.ERROR, subject="cluster a", text="down"))
    drain()
    request = receiver.wait_for(1)[0]
    stamp, mac = dict(p.split("=", 1) for p in request.header("X-ICC-Signature").split(",")).values()
    key = request.header("Idempotency-Key")
    expected = hmac.new(b"k3y-only-we-know", f"{stamp}.{key}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected)
    assert abs(int(stamp) - time.time()) < 60
    forged = hmac.new(b"another-key", f"{stamp}.{key}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert forged != mac


def test_slack_and_teams_payloads_have_their_documented_shapes(eager, receiver):
    slack = channel_create(name="slack", kind="slack", secret=f"{receiver.url}/services/T000/B000/hook-token-8f2c41")
    teams = channel_create(name="teams", kind="teams", secret=f"{receiver.url}/webhookb2/abc/IncomingWebhook/TOKEN")
    rule_save(name="all", kinds=["*"], min_severity="warning", channels=[slack.pk, teams.pk], group_window_seconds=0)
    emit(
        DomainEvent(
            kind="scaler.conflict", severity=Severity.WARNING, subject="app shop", text="two owners", link="/scaler/1/"
        )
    )
    drain()
    by_path = {r.path: orjson.loads(r.body) for r in receiver.wait_for(2)}
    slack_body = by_path["/services/T000/B000/hook-token-8f2c41"]
    assert isinstance(slack_body["text"], str) and "app shop" in slack_body["text"]
    assert [b["type"] for b in slack_body["blocks"]] == ["header", "section", "context"]
    assert slack_body["blocks"][0]["text"]["type"] == "plain_text"
    assert slack_body["blocks"][1]["text"]["type"] == "mrkdwn"
    card = by_path["/webhookb2/abc/IncomingWebhook/TOKEN"]
    assert card["@type"] == "MessageCard" and card["@context"] == "https://schema.org/extensions"
    assert card["summary"] and card["title"] and card["text"] == "two owners"
    assert {f["name"] for f in card["sections"][0]["facts"]} >= {"Event", "Severity", "Scope"}
    assert card["potentialAction"][0]["@type"] == "OpenUri"
    assert card["potentialAction"][0]["targets"][0]["uri"].endswith("/scaler/1/")
    # The token part of the URL is not shown as the channel's target.
    slack.refresh_from_db()
    assert "hook-token-8f2c41" not in slack.target and slack.target.endswith("/…")


def test_a_failing_channel_is_retried_with_backoff_and_ends_dead(eager, receiver, settings):
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 4
    settings.NOTIFICATIONS_BACKOFF_SECONDS = 0.2
    settings.NOTIFICATIONS_MAX_BACKOFF_SECONDS = 5
    receiver.status = 500
    receiver.body = b"internal details the log must not keep"
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/hook")
    rule_save(name="r", kinds=["*"], min_severity="info", channels=[hook.pk], group_window_seconds=0)
    emit(DomainEvent(kind="clusters.unreachable", severity=Severity.ERROR, subject="cluster a", text="down"))
    drain(timeout=30)
    attempts = receiver.wait_for(4)
    assert len(attempts) == 4
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    # Equal jitter: attempt n waits between half and all of 0.2·2^(n-1) s.
    for n, gap in enumerate(gaps, start=1):
        assert 0.1 * 2 ** (n - 1) * 0.9 <= gap, gaps
    assert gaps[2] > gaps[0]
    row = Delivery.objects.get()
    assert row.status == DeliveryStatus.DEAD and row.attempts == 4
    assert row.status_code == 500 and row.reason == "HTTP 500"
    assert len({r.header("Idempotency-Key") for r in attempts}) == 1  # the same delivery, retried


def test_events_in_maintenance_are_marked_and_muted_unless_critical(eager, receiver):
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/hook")
    rule_save(name="r", kinds=["*"], min_severity="info", channels=[hook.pk], group_window_seconds=0)
    now = datetime.now(UTC)

    def provider(scope: Scope, at: datetime, kind: calendar.WindowKind) -> calendar.Window | None:
        if kind == calendar.WindowKind.MAINTENANCE and scope.cluster == "7":
            return calendar.Window(kind, now - timedelta(hours=1), now + timedelta(hours=1), "upgrade", "ops", 1, scope)
        return None

    calendar.provider_register("test-maintenance", provider)
    try:
        in_window = Scope(ScopeKind.CLUSTER, "7")
        emit(DomainEvent(kind="clusters.unreachable", severity=Severity.ERROR, subject="c7", text="x", scope=in_window))
        emit(
            DomainEvent(
                kind="clusters.unreachable", severity=Severity.CRITICAL, subject="c7 etcd", text="y", scope=in_window
            )
        )
        emit(
            DomainEvent(
                kind="clusters.unreachable",
                severity=Severity.ERROR,
                subject="c8",
                text="z",
                scope=Scope(ScopeKind.CLUSTER, "8"),
            )
        )
    finally:
        calendar._providers.pop("test-maintenance", None)
    drain()
    received = receiver.wait_for(2)
    time.sleep(0.2)
    subjects = {
        orjson.loads(r.body)["message"]["subject"]: orjson.loads(r.body)["message"] for r in receiver.received()
    }
    assert set(subjects) == {"c7 etcd", "c8"}
    assert subjects["c7 etcd"]["maintenance"] is True and subjects["c8"]["maintenance"] is False
    muted = Message.objects.get(subject="c7")
    assert muted.muted and muted.maintenance and not muted.deliveries.exists()
    assert Event.objects.get(subject="c7").maintenance
    assert len(received) == 2


def test_rules_match_kind_scope_and_severity_compared_whole(eager, receiver):
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/hook")
    rule_save(
        name="cluster-3",
        kinds=["cron.*"],
        min_severity="error",
        channels=[hook.pk],
        group_window_seconds=0,
        scope_kind="cluster",
        scope_cluster="3",
    )
    emit(
        DomainEvent(
            kind="cron.run_failed",
            severity=Severity.ERROR,
            subject="in",
            text="",
            scope=Scope(ScopeKind.NAMESPACE, "3", namespace="shop"),
        )
    )
    emit(
        DomainEvent(
            kind="cron.run_failed",
            severity=Severity.ERROR,
            subject="other cluster",
            text="",
            scope=Scope(ScopeKind.NAMESPACE, "33", namespace="shop"),
        )
    )
    emit(DomainEvent(kind="cron.run_failed", severity=Severity.ERROR, subject="global", text=""))
    emit(
        DomainEvent(
            kind="cron.run_late",
            severity=Severity.WARNING,
            subject="too mild",
            text="",
            scope=Scope(ScopeKind.CLUSTER, "3"),
        )
    )
    emit(
        DomainEvent(
            kind="clusters.unreachable",
            severity=Severity.ERROR,
            subject="other kind",
            text="",
            scope=Scope(ScopeKind.CLUSTER, "3"),
        )
    )
    drain()
    receiver.wait_for(1)
    time.sleep(0.2)
    assert [orjson.loads(r.body)["message"]["subject"] for r in receiver.received()] == ["in"]
    assert Event.objects.count() == 5


def test_an_open_condition_repeats_at_the_rule_interval_until_resolved(eager, receiver):
    from apps.notifications import repeats

    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/hook")
    rule_save(
        name="r",
        kinds=["*"],
        min_severity="info",
        channels=[hook.pk],
        group_window_seconds=0,
        repeat_interval_seconds=1,
    )
    emit(DomainEvent(kind="clusters.unreachable", severity=Severity.ERROR, subject="c", text="down", dedup_key="k"))
    drain()
    assert repeats.due_repeats() == []  # not yet due
    time.sleep(1.1)
    assert len(repeats.due_repeats()) == 1
    assert repeats.due_repeats() == []  # the next one is an interval later
    drain()
    emit(
        DomainEvent(
            kind="clusters.recovered", severity=Severity.INFO, subject="c", text="up", dedup_key="k", resolves=True
        )
    )
    drain()
    time.sleep(1.1)
    assert repeats.due_repeats() == []  # resolved: no more repeats
    bodies = [orjson.loads(r.body) for r in receiver.wait_for(3)]
    assert [(b["delivery"], b["sequence"]) for b in bodies] == [("first", 0), ("repeat", 1), ("resolved", 0)]


def test_a_subscription_mails_its_user_only_what_they_may_read(eager, smtp, make_user):
    from apps.notifications.services.rules import subscription_create
    from tests.support.clients import bind

    c1, c2 = cluster_row("c1"), cluster_row("c2")
    user = make_user("mia-mail")
    bind(user.user, "viewer", c1)
    subscription_create(
        by=user.user,
        kinds=["clusters.*"],
        scope_kind="cluster",
        scope_cluster=str(c1.pk),
        email="mia@example.com",
        group_window_seconds=0,
    )
    set_health(c1.pk, ClusterStatus.UNREACHABLE, "refused")
    set_health(c2.pk, ClusterStatus.UNREACHABLE, "refused")
    drain()
    mails = smtp.wait_for(1)
    time.sleep(0.2)
    assert len(smtp.received()) == 1 and mails[0].recipients == ["mia@example.com"]
    assert "cluster c1" in mails[0].subject
    # Her binding is gone: the next condition is not mailed to her any more.
    from apps.users.models import RoleBinding

    RoleBinding.objects.filter(user=user.user).delete()
    set_health(c1.pk, ClusterStatus.CONNECTED)
    set_health(c1.pk, ClusterStatus.UNREACHABLE, "again")
    drain()
    assert Delivery.objects.filter(recipient="mia@example.com").count() == 1  # neither resolved nor the new one
    assert not Message.objects.filter(subscription__isnull=False, state=MessageState.OPEN).exists()
    assert len(smtp.received()) == 1


def test_a_broken_audit_chain_is_a_critical_event_resolved_when_it_verifies_again(eager, receiver):
    from apps.audit.chain import VerifyResult
    from apps.audit.verification import record_verify_result

    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/hook")
    rule_save(
        name="audit",
        kinds=["audit.*"],
        min_severity="info",
        channels=[hook.pk],
        group_window_seconds=0,
        repeat_interval_seconds=3600,
    )  # a repeating rule groups the condition for as long as it is open
    record_verify_result(VerifyResult(ok=True, checked=3))
    record_verify_result(VerifyResult(ok=False, checked=3, first_bad_seq=2, reason="hash mismatch"))
    record_verify_result(VerifyResult(ok=False, checked=3, first_bad_seq=2, reason="hash mismatch"))
    drain()
    record_verify_result(VerifyResult(ok=True, checked=3))
    drain()
    bodies = [orjson.loads(r.body) for r in receiver.wait_for(2)]
    assert [b["delivery"] for b in bodies] == ["first", "resolved"]
    assert bodies[0]["message"]["severity"] == "critical" and "seq 2" in bodies[0]["message"]["text"]
    assert Message.objects.get().count == 2


def test_the_tick_resends_lost_deliveries_and_frees_claims_of_vanished_workers(receiver):
    from celery import current_app

    from apps.notifications.tasks import tick

    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/hook")
    rule_save(name="r", kinds=["*"], min_severity="info", channels=[hook.pk], group_window_seconds=0)
    for key in ("lost", "stuck"):  # enqueued to a broker no worker reads here: as good as lost
        emit(DomainEvent(kind="clusters.unreachable", severity=Severity.ERROR, subject=key, text="x", dedup_key=key))
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    Delivery.objects.update(next_attempt_at=long_ago)
    Delivery.objects.filter(message__subject="stuck").update(status=DeliveryStatus.SENDING, claimed_at=long_ago)
    current_app.conf.task_always_eager = True
    try:
        assert tick()["enqueued"] == 2
    finally:
        current_app.conf.task_always_eager = False
    subjects = sorted(orjson.loads(r.body)["message"]["subject"] for r in receiver.wait_for(2))
    assert subjects == ["lost", "stuck"]
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}
