"""Editing notifications in the portal: channels (kind-shaped forms, write-only secrets, the outbound policy's
refusals as form errors), rules, deletions behind a confirmation page, the delivery log with dead letters and
their retry, and the links between an event, its messages, deliveries, rules and channels."""

from __future__ import annotations

import re

import pytest

from apps.audit.models import AuditEvent
from apps.core.access import Scope, ScopeKind
from apps.core.domain_events import DomainEvent, Severity
from apps.notifications import delivery, routing
from apps.notifications.channels import channel_secret
from apps.notifications.models import Channel, Delivery, DeliveryStatus, Event, Rule, Subscription
from apps.notifications.services.channels import channel_create
from apps.notifications.services.rules import rule_save, subscription_create
from tests.support.clients import bind, forced_login, html
from tests.support.rows import cluster_row

pytestmark = pytest.mark.django_db

SIGNING_KEY = "edit-signing-key-Zq81-never-rendered"
SLACK_TOKEN = "T0EDIT42/B0EDIT42/x9EditSlackPathToken77"


def _all_pages(client, *paths: str) -> str:
    """Every page's HTML, each checked to answer 200."""
    out = []
    for path in paths:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
        out.append(html(answer))
    return "\n".join(out)


def test_an_admin_creates_and_edits_a_webhook_channel_whose_signing_key_is_never_rendered(admin_persona, receiver):
    client = forced_login(admin_persona.user)
    form = html(client.get("/notifications/channels/new/?kind=webhook"))
    assert 'name="target"' in form and 'type="password"' in form and "Signing key" in form
    made = client.post(
        "/notifications/channels/new/",
        {"name": "hook", "kind": "webhook", "target": f"{receiver.url}/h", "secret": SIGNING_KEY, "max_per_minute": 30},
    )
    channel = Channel.objects.get(name="hook")
    assert made.status_code == 302 and made["Location"] == f"/notifications/channels/{channel.pk}/"
    assert channel_secret(channel) == SIGNING_KEY

    edit = html(client.get(f"/notifications/channels/{channel.pk}/"))
    assert "Leave empty to keep the stored one" in edit and f"{receiver.url}/h" in edit
    assert SIGNING_KEY not in edit
    saved = client.post(
        f"/notifications/channels/{channel.pk}/",
        {"name": "hook-renamed", "kind": "webhook", "target": f"{receiver.url}/h2", "secret": "", "max_per_minute": 7},
    )
    assert saved.status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.target, channel.max_per_minute, channel.enabled) == (
        "hook-renamed",
        f"{receiver.url}/h2",
        7,
        False,  # the box was not ticked
    )
    assert channel_secret(channel) == SIGNING_KEY, "an empty secret keeps the stored one"
    replaced = client.post(
        f"/notifications/channels/{channel.pk}/",
        {"name": "hook-renamed", "kind": "webhook", "target": f"{receiver.url}/h2", "secret": "new-key-1234"}
        | {"max_per_minute": 7, "enabled": "on"},
    )
    assert replaced.status_code == 302
    channel.refresh_from_db()
    assert channel_secret(channel) == "new-key-1234" and channel.enabled
    client.post(
        f"/notifications/channels/{channel.pk}/",
        {"name": "hook-renamed", "kind": "webhook", "target": f"{receiver.url}/h2", "remove_secret": "on"}
        | {"max_per_minute": 7, "enabled": "on"},
    )
    channel.refresh_from_db()
    assert not channel.has_secret, "a webhook's signing key can be removed"
    updates = AuditEvent.objects.filter(action="notifications.channel.update", target_id=str(channel.pk))
    assert updates.count() == 3
    assert SIGNING_KEY not in str(list(AuditEvent.objects.values_list("changes", flat=True)))
    pages = _all_pages(
        client,
        "/notifications/channels/",
        f"/notifications/channels/{channel.pk}/",
        f"/notifications/channels/{channel.pk}/delete/",
        "/notifications/deliveries/",
    )
    assert SIGNING_KEY not in pages and "new-key-1234" not in pages and "hook-renamed" in pages


def test_a_slack_channel_keeps_its_url_secret_on_every_page(admin_persona, receiver):
    client = forced_login(admin_persona.user)
    url = f"{receiver.url}/services/{SLACK_TOKEN}"
    form = html(client.get("/notifications/channels/new/?kind=slack"))
    assert "Incoming webhook URL" in form and 'name="target"' not in form
    missing = client.post("/notifications/channels/new/", {"name": "s", "kind": "slack", "max_per_minute": 30})
    assert missing.status_code == 400 and 'data-error-for="secret"' in html(missing)
    made = client.post(
        "/notifications/channels/new/", {"name": "slack", "kind": "slack", "secret": url, "max_per_minute": 30}
    )
    assert made.status_code == 302
    channel = Channel.objects.get(name="slack")
    rule = rule_save(name="to-slack", kinds=["*"], min_severity="info", channels=[channel.pk], group_window_seconds=0)
    routing.record(DomainEvent(kind="cron.run_failed", severity=Severity.ERROR, subject="nightly failed", text="t"))
    sent = Delivery.objects.get()
    delivery.attempt(sent.pk)
    event = Event.objects.get()
    # An edit that leaves the URL empty keeps it, and the shown target (scheme and host) stays.
    kept = client.post(
        f"/notifications/channels/{channel.pk}/",
        {"name": "slack", "kind": "slack", "secret": "", "max_per_minute": 5, "enabled": "on"},
    )
    assert kept.status_code == 302
    channel.refresh_from_db()
    assert channel_secret(channel) == url and channel.target.startswith("http://127.0.0.1")
    pages = _all_pages(
        client,
        "/notifications/",
        "/notifications/table/",
        f"/notifications/events/{event.pk}/",
        f"/notifications/events/{event.pk}/messages/",
        "/notifications/deliveries/",
        "/notifications/deliveries/table/",
        f"/notifications/deliveries/?channel={channel.pk}",
        "/notifications/channels/",
        f"/notifications/channels/{channel.pk}/",
        f"/notifications/channels/{channel.pk}/delete/",
        "/notifications/rules/",
        f"/notifications/rules/{rule.pk}/",
    )
    assert SLACK_TOKEN not in pages and "x9EditSlackPathToken77" not in pages
    assert "slack" in pages


def test_a_url_refused_by_the_outbound_policy_is_a_form_error_naming_the_field_and_nothing_changes(
    admin_persona, receiver
):
    client = forced_login(admin_persona.user)
    channel = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/h", secret=SIGNING_KEY)
    before = Channel.objects.filter(pk=channel.pk).values().get()
    bad = client.post(
        f"/notifications/channels/{channel.pk}/",
        {"name": "renamed", "kind": "webhook", "target": "http://169.254.169.254/latest", "max_per_minute": 30},
    )
    text = html(bad)
    assert bad.status_code == 400
    assert re.search(r'data-error-for="target">[^<]*metadata', text), "the error sits under the URL field"
    assert Channel.objects.filter(pk=channel.pk).values().get() == before, "nothing stored changed"
    assert "<h1>Webhook channel hook</h1>" in text, "the page shows what is stored, not the refused input"
    assert SIGNING_KEY not in text
    slack = client.post(
        "/notifications/channels/new/",
        {"name": "s", "kind": "slack", "secret": "http://metadata.google.internal/hooks/x", "max_per_minute": 30},
    )
    assert slack.status_code == 400 and 'data-error-for="secret"' in html(slack)
    assert "metadata.google.internal/hooks" not in html(slack), "a refused secret is not echoed back"
    assert not Channel.objects.filter(name="s").exists()
    email = client.post(
        "/notifications/channels/new/", {"name": "m", "kind": "email", "target": "not-an-address", "max_per_minute": 3}
    )
    assert email.status_code == 400 and re.search(r'data-error-for="target">[^<]*not an e-mail', html(email))


def test_an_admin_edits_a_rule_and_its_page_links_its_channels(admin_persona):
    client = forced_login(admin_persona.user)
    ops = Channel.objects.create(name="ops", kind="email", target="ops@example.com")
    pager = Channel.objects.create(name="pager", kind="email", target="pager@example.com")
    rule = rule_save(name="clusters", kinds=["clusters.*"], min_severity="error", channels=[ops.pk])
    page = html(client.get(f"/notifications/rules/{rule.pk}/"))
    assert f'href="/notifications/channels/{ops.pk}/"' in page and 'value="clusters.*"' in page
    cluster = cluster_row("c1")
    saved = client.post(
        f"/notifications/rules/{rule.pk}/",
        {
            "name": "clusters-and-cron",
            "kinds": "clusters.*, cron.*",
            "min_severity": "warning",
            "scope_kind": "cluster",
            "scope_cluster": str(cluster.pk),
            "channels": [pager.pk],
            "group_window_seconds": 120,
            "repeat_interval_seconds": 600,
            "enabled": "on",
        },
    )
    assert saved.status_code == 302
    rule.refresh_from_db()
    assert rule.name == "clusters-and-cron" and rule.kinds == ["clusters.*", "cron.*"]
    assert rule.scope == Scope(ScopeKind.CLUSTER, str(cluster.pk)) and list(rule.channels.all()) == [pager]
    assert (rule.group_window_seconds, rule.repeat_interval_seconds, rule.notify_resolved) == (120, 600, False)
    channel_page = html(client.get(f"/notifications/channels/{pager.pk}/"))
    assert f'href="/notifications/rules/{rule.pk}/"' in channel_page, "a channel links the rules sending to it"
    bad = client.post(
        f"/notifications/rules/{rule.pk}/",
        {"name": "x", "kinds": "Not A Kind", "min_severity": "info", "scope_kind": "global"}
        | {"group_window_seconds": 0, "repeat_interval_seconds": 0},
    )
    assert bad.status_code == 400 and re.search(r'data-error-for="kinds">[^<]*not an event kind', html(bad))
    rule.refresh_from_db()
    assert rule.name == "clusters-and-cron", "a refused edit changes nothing"


@pytest.mark.parametrize("persona", ["operator_persona", "viewer_persona", "outsider_persona"])
def test_others_may_neither_create_nor_edit_channels_and_rules(persona, request):
    user = request.getfixturevalue(persona).user
    channel = Channel.objects.create(name="ops", kind="email", target="ops@example.com")
    rule = rule_save(name="r", kinds=["*"], channels=[channel.pk])
    client = forced_login(user)
    assert client.get("/notifications/channels/new/?kind=email").status_code == 403
    assert (
        client.post(
            "/notifications/channels/new/",
            {"name": "x", "kind": "email", "target": "a@example.com", "max_per_minute": 1},
        ).status_code
        == 403
    )
    assert client.get(f"/notifications/channels/{channel.pk}/").status_code == 404
    changed = {"name": "x", "kind": "email", "target": "evil@example.com", "max_per_minute": 1}
    assert client.post(f"/notifications/channels/{channel.pk}/", changed).status_code == 404
    assert client.get(f"/notifications/rules/{rule.pk}/").status_code == 404
    assert client.post(f"/notifications/rules/{rule.pk}/", {"name": "x", "kinds": "*"}).status_code == 404
    assert client.post(f"/notifications/rules/{rule.pk}/delete/", {"confirm": "on"}).status_code == 404
    channel.refresh_from_db()
    assert (channel.name, channel.target) == ("ops", "ops@example.com") and Channel.objects.count() == 1
    assert Rule.objects.get().name == "r"
    assert AuditEvent.objects.filter(action="portal.notifications.channel.create", outcome="denied").count() == 2


def test_deletions_need_their_confirmation_page(admin_persona, viewer_persona):
    client = forced_login(admin_persona.user)
    channel = Channel.objects.create(name="ops", kind="email", target="ops@example.com")
    rule = rule_save(name="r", kinds=["*"], channels=[channel.pk])
    confirm = html(client.get(f"/notifications/channels/{channel.pk}/delete/"))
    assert "Delete channel ops?" in confirm and 'name="confirm"' in confirm
    assert client.post(f"/notifications/channels/{channel.pk}/delete/").status_code == 400
    assert Channel.objects.filter(pk=channel.pk).exists()
    assert "Delete rule r?" in html(client.get(f"/notifications/rules/{rule.pk}/delete/"))
    unticked = client.post(f"/notifications/rules/{rule.pk}/delete/", {})
    assert unticked.status_code == 400 and Rule.objects.filter(pk=rule.pk).exists()
    assert client.post(f"/notifications/rules/{rule.pk}/delete/", {"confirm": "on"}).status_code == 302
    assert not Rule.objects.exists()
    assert client.post(f"/notifications/channels/{channel.pk}/delete/", {"confirm": "ops"}).status_code == 302
    assert not Channel.objects.exists()
    mine = subscription_create(by=viewer_persona.user, kinds=["*"], email="vic@example.com")
    viewer = forced_login(viewer_persona.user)
    assert "Delete your subscription" in html(viewer.get(f"/notifications/subscriptions/{mine.pk}/delete/"))
    assert viewer.post(f"/notifications/subscriptions/{mine.pk}/delete/").status_code == 400
    assert Subscription.objects.filter(pk=mine.pk).exists()
    assert client.post(f"/notifications/subscriptions/{mine.pk}/delete/", {"confirm": "on"}).status_code == 404
    assert viewer.post(f"/notifications/subscriptions/{mine.pk}/delete/", {"confirm": "on"}).status_code == 302
    assert not Subscription.objects.exists()


def _dead_letter(receiver, settings, cluster) -> Delivery:
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 1
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/h")
    rule_save(name="r", kinds=["*"], min_severity="info", channels=[hook.pk], group_window_seconds=0)
    routing.record(
        DomainEvent(
            kind="clusters.unreachable",
            severity=Severity.ERROR,
            subject="cluster c1 down",
            text="t",
            scope=Scope(ScopeKind.CLUSTER, str(cluster.pk)),
        )
    )
    dead = Delivery.objects.get()
    receiver.status = 503
    delivery.attempt(dead.pk)
    dead.refresh_from_db()
    assert dead.status == DeliveryStatus.DEAD
    return dead


def test_the_delivery_log_filters_dead_letters_and_an_operator_retries_one(
    admin_persona, operator_persona, viewer_persona, receiver, settings
):
    c1 = cluster_row("c1")
    dead = _dead_letter(receiver, settings, c1)
    event = Event.objects.get()
    viewer = forced_login(viewer_persona.user)
    listed = html(viewer.get("/notifications/deliveries/?status=dead"))
    assert f'data-delivery="{dead.pk}"' in listed and "HTTP 503" in listed
    assert f'href="/notifications/events/{event.pk}/"' in listed, "a delivery links its event"
    assert 'data-retry="' not in listed, "a viewer is offered no retry"
    assert f'data-delivery="{dead.pk}"' not in html(viewer.get("/notifications/deliveries/?status=sent"))
    assert viewer.post(f"/notifications/deliveries/{dead.pk}/retry/").status_code == 403
    dead.refresh_from_db()
    assert dead.status == DeliveryStatus.DEAD
    event_page = html(viewer.get(f"/notifications/events/{event.pk}/"))
    assert f'data-delivery="{dead.pk}"' in event_page and 'data-status="dead"' in event_page
    admin_page = html(forced_login(admin_persona.user).get(f"/notifications/events/{event.pk}/"))
    assert 'href="/notifications/rules/' in admin_page and 'href="/notifications/channels/' in admin_page
    assert 'href="/notifications/rules/' not in event_page, "rules are global configuration: not linked for viewers"

    operator = forced_login(operator_persona.user)
    assert f'data-retry="{dead.pk}"' in html(operator.get("/notifications/deliveries/?status=dead"))
    receiver.status = 200
    retried = operator.post(f"/notifications/deliveries/{dead.pk}/retry/", {"next": "/notifications/deliveries/"})
    assert retried.status_code == 302
    dead.refresh_from_db()
    assert dead.status in (DeliveryStatus.PENDING, DeliveryStatus.SENT) and dead.reason.startswith("retried by")
    audit = AuditEvent.objects.get(action="notifications.delivery.retry")
    assert audit.target_id == str(dead.pk) and audit.changes["before"]["status_code"] == 503
    again = operator.post(f"/notifications/deliveries/{dead.pk}/retry/", follow=True)
    assert "only a dead delivery" in html(again)
    assert AuditEvent.objects.filter(action="notifications.delivery.retry").count() == 1


def test_a_delivery_outside_the_viewers_scope_is_not_found(make_user, receiver, settings):
    c1, c2 = cluster_row("c1"), cluster_row("c2")
    dead = _dead_letter(receiver, settings, c1)
    elsewhere = make_user("otto-c2")
    bind(elsewhere.user, "operator", c2)
    client = forced_login(elsewhere.user)
    assert f'data-delivery="{dead.pk}"' not in html(client.get("/notifications/deliveries/"))
    assert client.post(f"/notifications/deliveries/{dead.pk}/retry/").status_code == 404
    assert client.get(f"/notifications/events/{Event.objects.get().pk}/").status_code == 404


def test_the_event_log_filters_by_kind_severity_state_and_text_and_paginates(
    admin_persona, receiver, settings, monkeypatch
):
    from apps.notifications import views

    settings.NOTIFICATIONS_MAX_ATTEMPTS = 1
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/h")
    rule_save(name="r", kinds=["clusters.*"], min_severity="error", channels=[hook.pk], group_window_seconds=0)
    for n in range(3):
        routing.record(DomainEvent(kind="clusters.unreachable", severity=Severity.ERROR, subject=f"down {n}", text="t"))
    routing.record(DomainEvent(kind="cron.run_late", severity=Severity.WARNING, subject="late job", text="slow"))
    routing.record(
        DomainEvent(
            kind="clusters.recovered",
            severity=Severity.INFO,
            subject="down 0 back",
            text="t",
            dedup_key="clusters.unreachable:down 0",
            resolves=True,
        )
    )
    client = forced_login(admin_persona.user)

    def subjects(query: str) -> set[str]:
        table = html(client.get(f"/notifications/table/?{query}"))
        return set(re.findall(r'<td><a href="/notifications/events/\d+/">([^<]+)</a>', table))

    assert subjects("kind=cron.") == {"late job"}
    assert subjects("severity=warning") == {"late job"}
    assert subjects("q=slow") == {"late job"}
    assert subjects("state=unrouted") == {"late job"}
    assert subjects("state=open") == {"down 1", "down 2"}
    assert subjects("state=resolved") == {"down 0", "down 0 back"}
    receiver.status = 500
    delivery.attempt(Delivery.objects.order_by("pk").first().pk)
    assert subjects("state=dead") == {"down 0", "down 0 back"}
    bad = client.get("/notifications/?severity=loud")
    assert bad.status_code == 200 and 'data-error-for="severity"' in html(bad)

    monkeypatch.setattr(views, "EVENTS_PAGE", 2)
    first = html(client.get("/notifications/?kind=clusters."))
    assert "Page 1 of 2" in first and "page=2" in first and "kind=clusters." in first
    second = subjects("kind=clusters.&page=2")
    assert len(second) == 2 and "late job" not in second


def test_a_subscriber_edits_their_subscription_only_where_they_may_read(make_user):
    c1, c2 = cluster_row("c1"), cluster_row("c2")
    pia = make_user("pia-edit")
    bind(pia.user, "viewer", c1)
    mine = subscription_create(
        by=pia.user, kinds=["clusters.*"], email="pia@example.com", scope_kind="cluster", scope_cluster=str(c1.pk)
    )
    client = forced_login(pia.user)
    page = html(client.get(f"/notifications/subscriptions/{mine.pk}/"))
    assert 'value="clusters.*"' in page and 'value="pia@example.com"' in page
    base = {"kinds": "clusters.*, cron.*", "min_severity": "error", "group_window_seconds": 60, "enabled": "on"}
    saved = client.post(
        f"/notifications/subscriptions/{mine.pk}/",
        base | {"scope_kind": "cluster", "scope_cluster": str(c1.pk), "email": "pia.ops@example.com"},
    )
    assert saved.status_code == 302
    mine.refresh_from_db()
    assert (mine.kinds, mine.min_severity, mine.email, mine.group_window_seconds) == (
        ["clusters.*", "cron.*"],
        "error",
        "pia.ops@example.com",
        60,
    )
    wider = client.post(
        f"/notifications/subscriptions/{mine.pk}/", base | {"scope_kind": "cluster", "scope_cluster": str(c2.pk)}
    )
    assert wider.status_code == 400
    assert re.search(r'data-error-for="scope_kind">[^<]*only where you may read', html(wider))
    mine.refresh_from_db()
    assert mine.scope_cluster == str(c1.pk), "a refused edit changes nothing"
    assert AuditEvent.objects.filter(action="notifications.subscription.update").count() == 1
    other = make_user("olga-other")
    bind(other.user, "viewer")
    stranger = forced_login(other.user)
    assert stranger.get(f"/notifications/subscriptions/{mine.pk}/").status_code == 404
    assert stranger.post(f"/notifications/subscriptions/{mine.pk}/", base | {"scope_kind": "global"}).status_code == 404


def test_the_logs_cost_the_same_queries_for_2_events_as_for_12(admin_persona, receiver):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/h")
    rule_save(name="r", kinds=["*"], min_severity="info", channels=[hook.pk], group_window_seconds=0)
    client = forced_login(admin_persona.user)

    def add(first: int, last: int) -> None:
        for n in range(first, last):
            routing.record(DomainEvent(kind="cron.run_failed", severity=Severity.ERROR, subject=f"job {n}", text="t"))

    def queries(path: str) -> int:
        """The fewer of two requests (an in-memory calendar that is due for a refresh reads once in one)."""
        counted = []
        for _ in range(2):
            with CaptureQueriesContext(connection) as captured:
                assert client.get(path).status_code == 200
            counted.append(len(captured.captured_queries))
        return min(counted)

    add(0, 2)
    client.get("/notifications/")
    few = {path: queries(path) for path in ("/notifications/", "/notifications/deliveries/")}
    add(2, 12)
    many = {path: queries(path) for path in few}
    assert many == few
    event = Event.objects.order_by("-pk").first()
    assert event is not None and queries(f"/notifications/events/{event.pk}/") <= few["/notifications/"]
