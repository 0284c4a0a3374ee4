"""The notifications pages with the personas: the event log within the viewer's scope with its deliveries and dead
letters, channels (secrets never shown, send test), rules, subscriptions; viewers may not configure."""

from __future__ import annotations

import pytest

from apps.core.access import Scope, ScopeKind
from apps.core.domain_events import DomainEvent, Severity
from apps.notifications import delivery, routing
from apps.notifications.models import Channel, Delivery, Rule, Subscription
from apps.notifications.services.channels import channel_create
from apps.notifications.services.rules import rule_save
from tests.support.clients import bind, forced_login, html
from tests.support.rows import cluster_row

pytestmark = pytest.mark.django_db

SECRET = "portal-signing-key-never-shown"


def test_the_event_log_shows_events_in_scope_with_deliveries_and_dead_letters(
    admin_persona, make_user, receiver, settings
):
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 1
    c1, c2 = cluster_row("c1"), cluster_row("c2")
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/h", secret=SECRET)
    rule_save(name="r", kinds=["*"], min_severity="info", channels=[hook.pk], group_window_seconds=0)
    routing.record(
        DomainEvent(
            kind="clusters.unreachable",
            severity=Severity.ERROR,
            subject="cluster c1 down",
            text="t",
            scope=Scope(ScopeKind.CLUSTER, str(c1.pk)),
        )
    )
    routing.record(
        DomainEvent(
            kind="clusters.unreachable",
            severity=Severity.ERROR,
            subject="cluster c2 down",
            text="t",
            scope=Scope(ScopeKind.CLUSTER, str(c2.pk)),
        )
    )
    first, second = Delivery.objects.order_by("pk")
    delivery.attempt(first.pk)
    receiver.status = 500
    delivery.attempt(second.pk)
    page = forced_login(admin_persona.user).get("/notifications/")
    assert page.status_code == 200
    text = html(page)
    assert "cluster c1 down" in text and "cluster c2 down" in text
    assert 'id="dead-letters"' in text and f'data-dead="{second.pk}"' in text and "HTTP 500" in text
    local = make_user("lou-local")
    bind(local.user, "viewer", c1)
    mine = html(forced_login(local.user).get("/notifications/"))
    assert "cluster c1 down" in mine and "cluster c2 down" not in mine and 'id="dead-letters"' not in mine
    assert SECRET not in text


def test_channels_page_never_shows_secrets_and_sends_tests(admin_persona, receiver):
    client = forced_login(admin_persona.user)
    made = client.post(
        "/notifications/channels/",
        {"name": "hook", "kind": "webhook", "target": f"{receiver.url}/h", "secret": SECRET, "max_per_minute": 30},
    )
    assert made.status_code == 302
    slack = client.post(
        "/notifications/channels/",
        {
            "name": "slack",
            "kind": "slack",
            "secret": f"{receiver.url}/services/T/B/slack-portal-token",
            "max_per_minute": 30,
        },
    )
    assert slack.status_code == 302
    page = html(client.get("/notifications/channels/"))
    assert SECRET not in page and "slack-portal-token" not in page and "hook" in page
    channel = Channel.objects.get(name="hook")
    tested = client.post(f"/notifications/channels/{channel.pk}/test/", follow=True)
    assert "Test sent through hook" in html(tested)
    assert receiver.wait_for(1)[0].path == "/h"
    bad = client.post(
        "/notifications/channels/",
        {"name": "evil", "kind": "webhook", "target": "http://169.254.169.254/", "max_per_minute": 30},
    )
    assert bad.status_code == 400 and "metadata" in html(bad)
    refused = client.post(f"/notifications/channels/{channel.pk}/delete/", {"confirm": "wrong"}, follow=True)
    assert Channel.objects.filter(pk=channel.pk).exists() and "confirm" in html(refused)
    client.post(f"/notifications/channels/{channel.pk}/delete/", {"confirm": "hook"})
    assert not Channel.objects.filter(pk=channel.pk).exists()


def test_viewers_may_not_configure_channels_or_rules(viewer_persona):
    channel = Channel.objects.create(name="ops", kind="email", target="ops@example.com")
    client = forced_login(viewer_persona.user)
    page = html(client.get("/notifications/channels/"))
    assert "global configuration" in page and "ops@example.com" not in page
    assert (
        client.post(
            "/notifications/channels/", {"name": "x", "kind": "email", "target": "a@example.com", "max_per_minute": 1}
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/notifications/rules/",
            {
                "name": "x",
                "kinds": "*",
                "min_severity": "info",
                "scope_kind": "global",
                "group_window_seconds": 0,
                "repeat_interval_seconds": 0,
            },
        ).status_code
        == 403
    )
    assert client.post(f"/notifications/channels/{channel.pk}/test/").status_code == 404
    assert client.post(f"/notifications/channels/{channel.pk}/delete/", {"confirm": "ops"}).status_code == 404
    assert Channel.objects.count() == 1 and not Rule.objects.exists()


def test_rules_are_created_from_the_page(admin_persona):
    client = forced_login(admin_persona.user)
    channel = Channel.objects.create(name="ops", kind="email", target="ops@example.com")
    made = client.post(
        "/notifications/rules/",
        {
            "name": "clusters",
            "kinds": "clusters.*, cron.run_failed",
            "min_severity": "error",
            "scope_kind": "global",
            "channels": [channel.pk],
            "group_window_seconds": 60,
            "repeat_interval_seconds": 3600,
            "notify_resolved": "on",
        },
    )
    assert made.status_code == 302
    rule = Rule.objects.get()
    assert rule.kinds == ["clusters.*", "cron.run_failed"] and list(rule.channels.all()) == [channel]
    bad = client.post(
        "/notifications/rules/",
        {
            "name": "bad",
            "kinds": "*",
            "min_severity": "info",
            "scope_kind": "cluster",
            "group_window_seconds": 0,
            "repeat_interval_seconds": 0,
        },
    )
    assert bad.status_code == 400 and "needs a cluster" in html(bad)
    assert "clusters.*" in html(client.get("/notifications/rules/"))


def test_a_subscription_outside_the_users_scope_is_refused_on_the_page(make_user):
    c1, c2 = cluster_row("c1"), cluster_row("c2")
    user = make_user("pia-page")
    bind(user.user, "viewer", c1)
    client = forced_login(user.user)
    base = {
        "kinds": "clusters.*",
        "min_severity": "warning",
        "scope_kind": "cluster",
        "group_window_seconds": 30,
        "email": "pia@example.com",
    }
    refused = client.post("/notifications/subscriptions/", {**base, "scope_cluster": str(c2.pk)})
    assert refused.status_code == 400 and "only where you may read" in html(refused)
    assert client.post("/notifications/subscriptions/", {**base, "scope_cluster": str(c1.pk)}).status_code == 302
    assert Subscription.objects.get().user_id == user.user.pk
    assert "pia@example.com" in html(client.get("/notifications/subscriptions/"))


def test_the_admin_shows_channels_read_only_without_their_secret(admin_persona, receiver):
    channel = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/h", secret=SECRET)
    client = forced_login(admin_persona.user)
    page = client.get(f"/admin/notifications/channel/{channel.pk}/change/")
    assert page.status_code == 200 and "hook" in html(page)
    assert SECRET not in html(page) and "Save" not in html(page)
    assert SECRET not in html(client.get("/admin/notifications/channel/"))
    assert client.post(f"/admin/notifications/channel/{channel.pk}/delete/", {"post": "yes"}).status_code == 403


def test_the_dashboard_counts_open_conditions_by_severity_within_scope(admin_persona, make_user, receiver):
    c1, c2 = cluster_row("c1"), cluster_row("c2")
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/h")
    rule_save(name="r", kinds=["*"], min_severity="info", channels=[hook.pk], group_window_seconds=0)
    rule_save(name="r2", kinds=["clusters.*"], min_severity="info", channels=[hook.pk], group_window_seconds=0)
    for cluster in (c1, c2):
        routing.record(
            DomainEvent(
                kind="clusters.unreachable",
                severity=Severity.ERROR,
                subject=cluster.name,
                text="t",
                scope=Scope(ScopeKind.CLUSTER, str(cluster.pk)),
                dedup_key=cluster.name,
            )
        )
    routing.record(
        DomainEvent(
            kind="clusters.recovered",
            severity=Severity.INFO,
            subject="c2",
            text="t",
            scope=Scope(ScopeKind.CLUSTER, str(c2.pk)),
            dedup_key="c2",
            resolves=True,
        )
    )
    routing.record(DomainEvent(kind="audit.chain_broken", severity=Severity.CRITICAL, subject="audit", text="t"))
    admin = html(forced_login(admin_persona.user).get("/fragments/dashboard/counters/"))
    assert 'id="counter-notifications_open_error">1<' in admin  # two rules, one condition; c2 resolved
    assert 'id="counter-notifications_open_critical">1<' in admin
    local = make_user("dee-dash")
    bind(local.user, "viewer", c2)
    mine = html(forced_login(local.user).get("/fragments/dashboard/counters/"))
    assert 'id="counter-notifications_open_error">0<' in mine
    assert 'id="counter-notifications_open_critical">0<' in mine
