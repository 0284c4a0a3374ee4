"""The notifications API with the personas: channels with write-only secrets, rules, subscriptions, the event log
within the viewer's scope, dead letters, the outbound policy on channel URLs, and secrets kept out of answers and
the audit trail."""

from __future__ import annotations

import time

import pytest

from apps.audit.models import AuditEvent
from apps.core.access import Scope, ScopeKind
from apps.core.domain_events import DomainEvent, Severity
from apps.notifications import delivery, routing
from apps.notifications.models import Channel, Delivery, DeliveryStatus
from tests.support.clients import bind, error_fields, forced_login, patch_json, post_json, results
from tests.support.rows import cluster_row

pytestmark = pytest.mark.django_db

API = "/api/v1/notifications"
SECRET = "whsec-do-not-leak-4242"
SLACK_TOKEN = "T0001/B0001/slacktokendonotleak"


def test_channels_keep_their_secret_write_only(admin_persona, receiver):
    client = forced_login(admin_persona.user)
    made = post_json(
        client, f"{API}/channels/", {"name": "hook", "kind": "webhook", "target": f"{receiver.url}/h", "secret": SECRET}
    )
    assert made.status_code == 201, made.content
    slack = post_json(
        client,
        f"{API}/channels/",
        {"name": "slack", "kind": "slack", "secret": f"{receiver.url}/services/{SLACK_TOKEN}"},
    )
    assert slack.status_code == 201, slack.content
    body = made.content + slack.content + client.get(f"{API}/channels/").content
    body += client.get(f"{API}/channels/{made.json()['id']}/").content
    assert SECRET.encode() not in body and b"slacktokendonotleak" not in body
    assert made.json()["has_secret"] is True
    stored = Channel.objects.get(name="hook")
    assert SECRET.encode() not in bytes(stored.secret_encrypted)  # encrypted at rest
    changed = patch_json(client, f"{API}/channels/{made.json()['id']}/", {"max_per_minute": 5})
    assert changed.status_code == 200 and changed.json()["has_secret"] is True  # kept when not given
    trail = "".join(str(e.changes) + e.message for e in AuditEvent.objects.filter(action__startswith="notifications."))
    assert SECRET not in trail and "slacktokendonotleak" not in trail
    assert AuditEvent.objects.filter(action="notifications.channel.create").count() == 2


def test_send_test_reports_the_channel_answer(admin_persona, receiver):
    client = forced_login(admin_persona.user)
    channel = post_json(client, f"{API}/channels/", {"name": "hook", "kind": "webhook", "target": f"{receiver.url}/h"})
    answer = post_json(client, f"{API}/channels/{channel.json()['id']}/test/")
    assert answer.status_code == 200 and answer.json() == {"ok": True, "status_code": 200, "reason": ""}
    assert receiver.wait_for(1)[0].path == "/h"
    receiver.status = 503
    failed = post_json(client, f"{API}/channels/{channel.json()['id']}/test/").json()
    assert failed == {"ok": False, "status_code": 503, "reason": "HTTP 503"}


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/x",
        "http://[::ffff:169.254.169.254]/",
        "http://0.0.0.0:8000/",
    ],
)
def test_a_channel_url_to_a_forbidden_address_is_refused(admin_persona, url):
    client = forced_login(admin_persona.user)
    hook = post_json(client, f"{API}/channels/", {"name": "evil", "kind": "webhook", "target": url})
    assert hook.status_code == 400 and "target" in error_fields(hook)
    slack = post_json(client, f"{API}/channels/", {"name": "evil2", "kind": "slack", "secret": url})
    assert slack.status_code == 400 and "secret" in error_fields(slack)
    assert not Channel.objects.exists()


def test_a_channel_whose_address_turns_forbidden_is_refused_at_connect_time(admin_persona, receiver, settings):
    client = forced_login(admin_persona.user)
    channel = post_json(client, f"{API}/channels/", {"name": "hook", "kind": "webhook", "target": f"{receiver.url}/h"})
    settings.OUTBOUND_ALLOWED_CIDRS = []  # loopback is no longer allowed: the stored URL must not be called
    answer = post_json(client, f"{API}/channels/{channel.json()['id']}/test/").json()
    assert answer["ok"] is False and "outbound address policy" in answer["reason"]
    assert receiver.received() == []


def test_only_global_configurers_see_or_change_channels_and_rules(viewer_persona, operator_persona, make_user):
    cluster = cluster_row("c1")
    scoped_admin = make_user("sara-scoped")
    bind(scoped_admin.user, "admin", cluster)
    Channel.objects.create(name="existing", kind="email", target="a@example.com")
    for persona in (viewer_persona, operator_persona, scoped_admin):
        client = forced_login(persona.user)
        assert results(client.get(f"{API}/channels/")) == []
        assert results(client.get(f"{API}/rules/")) == []
        made = post_json(client, f"{API}/channels/", {"name": "x", "kind": "email", "target": "b@example.com"})
        assert made.status_code == 403
        rule = post_json(
            client,
            f"{API}/rules/",
            {"name": "r", "kinds": ["*"], "scope_kind": "cluster", "scope_cluster": str(cluster.pk)},
        )
        assert rule.status_code == 403
    assert Channel.objects.count() == 1


def test_rules_validate_naming_the_field(admin_persona):
    client = forced_login(admin_persona.user)
    bad = [
        ({"name": "r", "kinds": []}, "kinds"),
        ({"name": "r", "kinds": ["*"], "min_severity": "loud"}, "min_severity"),
        ({"name": "r", "kinds": ["*"], "scope_kind": "cluster"}, "scope_cluster"),
        (
            {"name": "r", "kinds": ["*"], "scope_kind": "cluster", "scope_cluster": "1", "scope_namespace": "x"},
            "scope_namespace",
        ),
        ({"name": "r", "kinds": ["*"], "channels": [999]}, "channels"),
    ]
    for body, field in bad:
        answer = post_json(client, f"{API}/rules/", body)
        assert answer.status_code == 400 and field in error_fields(answer), (body, answer.content)
    good = post_json(client, f"{API}/rules/", {"name": "r", "kinds": ["clusters.*"], "min_severity": "error"})
    assert good.status_code == 201 and good.json()["kinds"] == ["clusters.*"]


def test_events_are_visible_within_the_viewer_scope_with_their_deliveries(admin_persona, make_user, receiver):
    c1, c2 = cluster_row("c1"), cluster_row("c2")
    local = make_user("lena-local")
    bind(local.user, "viewer", c1)
    client = forced_login(admin_persona.user)
    hook = post_json(client, f"{API}/channels/", {"name": "hook", "kind": "webhook", "target": f"{receiver.url}/h"})
    post_json(
        client,
        f"{API}/rules/",
        {
            "name": "r",
            "kinds": ["*"],
            "min_severity": "info",
            "channels": [hook.json()["id"]],
            "group_window_seconds": 0,
        },
    )
    for cluster in (c1, c2):
        routing.record(
            DomainEvent(
                kind="clusters.unreachable",
                severity=Severity.ERROR,
                subject=f"cluster {cluster.name}",
                text="down",
                scope=Scope(ScopeKind.CLUSTER, str(cluster.pk)),
            )
        )
    routing.record(DomainEvent(kind="audit.chain_broken", severity=Severity.CRITICAL, subject="audit", text="x"))
    for pk in Delivery.objects.values_list("pk", flat=True):
        delivery.attempt(pk)
    seen = results(forced_login(local.user).get(f"{API}/events/"))
    assert [e["subject"] for e in seen] == ["cluster c1"]
    assert seen[0]["messages"][0]["deliveries_sent"] == 1
    detail = forced_login(local.user).get(f"{API}/events/{seen[0]['id']}/").json()
    assert detail["messages"][0]["deliveries"][0]["status"] == "sent"
    assert detail["messages"][0]["deliveries"][0]["status_code"] == 200
    assert len(results(client.get(f"{API}/events/"))) == 3
    assert results(client.get(f"{API}/events/?severity=critical"))[0]["subject"] == "audit"
    assert client.get(f"{API}/events/?severity=loud").status_code == 400
    assert results(forced_login(make_user("o-outsider").user).get(f"{API}/events/")) == []
    other = results(client.get(f"{API}/events/?q=c2"))[0]["id"]
    assert forced_login(local.user).get(f"{API}/events/{other}/").status_code == 404


def test_dead_letters_are_listed(admin_persona, receiver, settings):
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 2
    settings.NOTIFICATIONS_BACKOFF_SECONDS = 0.01
    receiver.status = 500
    client = forced_login(admin_persona.user)
    hook = post_json(client, f"{API}/channels/", {"name": "hook", "kind": "webhook", "target": f"{receiver.url}/h"})
    post_json(
        client,
        f"{API}/rules/",
        {
            "name": "r",
            "kinds": ["*"],
            "min_severity": "info",
            "channels": [hook.json()["id"]],
            "group_window_seconds": 0,
        },
    )
    routing.record(DomainEvent(kind="clusters.unreachable", severity=Severity.ERROR, subject="c", text="down"))
    pk = Delivery.objects.get().pk
    delivery.attempt(pk)
    time.sleep(0.05)
    delivery.attempt(pk)
    dead = results(client.get(f"{API}/deliveries/?status=dead"))
    assert [(d["id"], d["attempts"], d["status_code"], d["reason"]) for d in dead] == [(pk, 2, 500, "HTTP 500")]
    assert Delivery.objects.get().status == DeliveryStatus.DEAD


def test_subscriptions_are_their_owner_and_only_where_they_may_read(make_user, receiver):
    cluster, other = cluster_row("c1"), cluster_row("c2")
    user = make_user("sue-sub")
    bind(user.user, "viewer", cluster)
    client = forced_login(user.user)
    mine = post_json(
        client,
        f"{API}/subscriptions/",
        {
            "kinds": ["clusters.*"],
            "scope_kind": "cluster",
            "scope_cluster": str(cluster.pk),
            "email": "sue@example.com",
        },
    )
    assert mine.status_code == 201, mine.content
    escape = post_json(
        client,
        f"{API}/subscriptions/",
        {"kinds": ["*"], "scope_kind": "cluster", "scope_cluster": str(other.pk), "email": "sue@example.com"},
    )
    assert escape.status_code == 403
    wide = post_json(client, f"{API}/subscriptions/", {"kinds": ["*"], "email": "sue@example.com"})
    assert wide.status_code == 403  # global is wider than what she reads
    stranger = forced_login(make_user("sam-stranger").user)
    assert results(stranger.get(f"{API}/subscriptions/")) == []
    assert stranger.delete(f"{API}/subscriptions/{mine.json()['id']}/").status_code == 404
    assert len(results(client.get(f"{API}/subscriptions/"))) == 1
