"""The change calendar on real PostgreSQL and Redis: entries through the API with audit and scoped rights, the core
question every automation asks, the status API, the portal and its banner, and cron's freeze policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.audit.models import AuditEvent
from apps.calendar import cache, services
from apps.calendar.models import CalendarEntry
from apps.core import calendar
from apps.core.access import Scope, ScopeKind
from apps.cron import execution
from apps.cron.models import Run
from apps.cron.services.jobs import job_create
from tests.support.clients import bind, error_fields, patch_json
from tests.support.clients import forced_login as client_for
from tests.support.clients import post_json as post
from tests.support.receiver import Receiver
from tests.support.rows import application_row, cluster_row

API = "/api/v1/calendar"
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("calendar_clean")]


def now_entry(hours_ago: float = 1, hours: float = 3, **values: Any) -> dict[str, Any]:
    """Values of a one-off entry (in UTC) that started ``hours_ago`` and lasts ``hours``."""
    start = (datetime.now(UTC) - timedelta(hours=hours_ago)).replace(second=0, microsecond=0)
    base = {
        "kind": "freeze",
        "title": "release freeze",
        "start_date": start.date(),
        "start_time": start.time(),
        "timezone": "UTC",
        "duration_minutes": int(hours * 60),
        "reason": "end-of-quarter close",
        "owner": "release-team",
    }
    return {**base, **values}


def as_json(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in values.items()}


# --- the core question ------------------------------------------------------------------------------------------


def test_an_admin_creates_a_freeze_through_the_api_it_is_audited_and_every_automation_sees_it(make_user):
    admin = make_user("cal-admin", role="admin")
    shop = Scope(ScopeKind.APPLICATION, "7", "web", "shop")
    assert calendar.frozen(shop) is None

    response = post(client_for(admin.user), f"{API}/entries/", as_json(now_entry(rrule="")))
    assert response.status_code == 201, response.content
    window = calendar.frozen(shop)
    assert window is not None and window.reason == "end-of-quarter close" and window.owner == "release-team"
    assert window.ends > datetime.now(UTC) + timedelta(hours=1)
    assert calendar.in_maintenance(shop) is None
    assert calendar.frozen(shop, at=datetime.now(UTC) + timedelta(hours=3)) is None, "over after its duration"

    event = AuditEvent.objects.get(action="calendar.entry.create")
    assert (event.actor_name, event.target_id) == ("cal-admin", str(response.json()["id"]))
    assert event.metadata["kind"] == "freeze"

    entry = CalendarEntry.objects.get()
    response = patch_json(client_for(admin.user), f"{API}/entries/{entry.pk}/", {"enabled": False})
    assert response.status_code == 200, response.content
    assert calendar.frozen(shop) is None, "a disabled entry stops applying right after the change"
    assert AuditEvent.objects.filter(action="calendar.entry.update").exists()


def test_an_entry_applies_only_where_its_scope_covers(make_user):
    cluster = cluster_row("cal-a")
    services.entry_create(**now_entry(scope_kind="namespace", scope_cluster=str(cluster.pk), scope_namespace="web"))
    assert calendar.frozen(Scope(ScopeKind.APPLICATION, str(cluster.pk), "web", "shop")) is not None
    assert calendar.frozen(Scope(ScopeKind.APPLICATION, str(cluster.pk), "blog", "blog")) is None
    assert calendar.frozen(Scope(ScopeKind.APPLICATION, str(cluster.pk + 1), "web", "shop")) is None
    assert calendar.frozen(Scope()) is None, "a namespace freeze does not freeze everything"


def test_bad_input_is_a_400_naming_the_field_and_nothing_is_stored(make_user):
    client = client_for(make_user("cal-admin2", role="admin").user)
    for field, change in (
        ("rrule", {"rrule": "FREQ=SECONDLY"}),
        ("rrule", {"rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"}),
        ("timezone", {"timezone": "Europe/Atlantis"}),
        ("duration_minutes", {"duration_minutes": 0}),
        ("kind", {"kind": "party"}),
        ("scope_cluster", {"scope_kind": "cluster"}),
        ("scope_namespace", {"scope_kind": "global", "scope_namespace": "web"}),
    ):
        response = post(client, f"{API}/entries/", as_json(now_entry(**change)))
        assert response.status_code == 400, (field, response.content)
        assert field in error_fields(response), (field, response.json())
    assert not CalendarEntry.objects.exists()


# --- scoped rights (the attacks) --------------------------------------------------------------------------------


def test_scoped_users_see_and_change_only_their_scope_entries(make_user):
    a, b = cluster_row("cal-a"), cluster_row("cal-b")
    global_entry = services.entry_create(**now_entry(title="global"))
    in_a = services.entry_create(**now_entry(title="in a", scope_kind="cluster", scope_cluster=str(a.pk)))
    in_b = services.entry_create(**now_entry(title="in b", scope_kind="cluster", scope_cluster=str(b.pk)))
    ns_a = services.entry_create(
        **now_entry(title="ns a", scope_kind="namespace", scope_cluster=str(a.pk), scope_namespace="web")
    )
    a_admin = make_user("a-admin")
    bind(a_admin.user, "admin", cluster=a)
    client = client_for(a_admin.user)

    listed = {row["title"] for row in client.get(f"{API}/entries/").json()["results"]}
    assert listed == {"global", "in a", "ns a"}, "their scope, and the global entry that affects them"
    assert client.get(f"{API}/entries/{in_b.pk}/").status_code == 404

    # writes outside the scope: refused, nothing changes
    assert (
        post(client, f"{API}/entries/", as_json(now_entry(scope_kind="cluster", scope_cluster=str(b.pk)))).status_code
        == 403
    )
    assert post(client, f"{API}/entries/", as_json(now_entry())).status_code == 403, "global needs a global grant"
    assert patch_json(client, f"{API}/entries/{global_entry.pk}/", {"title": "mine"}).status_code == 403
    assert patch_json(client, f"{API}/entries/{in_b.pk}/", {"title": "mine"}).status_code == 404
    moved = patch_json(client, f"{API}/entries/{in_a.pk}/", {"scope_kind": "global", "scope_cluster": ""})
    assert moved.status_code == 403, "an entry cannot be moved out of the writer's scope"
    assert client.delete(f"{API}/entries/{global_entry.pk}/").status_code == 403
    assert CalendarEntry.objects.get(pk=global_entry.pk).title == "global"
    assert CalendarEntry.objects.get(pk=in_a.pk).scope_kind == "cluster"

    # inside the scope: allowed
    assert patch_json(client, f"{API}/entries/{ns_a.pk}/", {"title": "ns a v2"}).status_code == 200
    assert client.delete(f"{API}/entries/{in_a.pk}/").status_code == 204
    assert AuditEvent.objects.filter(action="calendar.entry.delete", actor_name="a-admin").count() == 1

    viewer = make_user("a-viewer")
    bind(viewer.user, "viewer", cluster=a)
    own = as_json(now_entry(scope_kind="cluster", scope_cluster=str(a.pk)))
    assert post(client_for(viewer.user), f"{API}/entries/", own).status_code == 403
    outsider = make_user("cal-outsider")
    assert client_for(outsider.user).get(f"{API}/entries/").json()["results"] == []


# --- status and occurrences -------------------------------------------------------------------------------------


def test_the_status_api_says_whether_a_place_is_frozen_until_when_and_what_comes_next(make_user):
    a = cluster_row("cal-a")
    services.entry_create(
        **now_entry(scope_kind="application", scope_cluster=str(a.pk), scope_application="shop", reason="migration")
    )
    services.entry_create(**now_entry(hours_ago=-24, hours=2, kind="maintenance", title="patching", reason="kernel"))
    viewer = make_user("shop-viewer")
    bind(viewer.user, "viewer", cluster=a, application="shop")
    client = client_for(viewer.user)

    answer = client.get(f"{API}/status/", {"cluster": a.pk, "application": "shop"})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["frozen"] is True and body["in_maintenance"] is False
    assert body["freeze"]["reason"] == "migration" and body["freeze"]["owner"] == "release-team"
    ends = datetime.fromisoformat(body["freeze"]["ends_at"])
    assert timedelta(hours=1) < ends - datetime.now(UTC) <= timedelta(hours=2)
    assert [n["title"] for n in body["next"]] == ["patching"]

    other = client_for(make_user("cal-admin3", role="admin").user)
    assert other.get(f"{API}/status/", {"cluster": a.pk, "application": "blog"}).json()["frozen"] is False
    assert client.get(f"{API}/status/").json()["frozen"] is False, "the global calendar has no freeze"
    # attacks and bad input
    assert client.get(f"{API}/status/", {"cluster": a.pk, "application": "billing"}).status_code == 403
    assert client_for(make_user("nobody").user).get(f"{API}/status/").status_code == 403
    assert "cluster" in error_fields(client.get(f"{API}/status/", {"application": "shop"}))
    assert "colour" in error_fields(client.get(f"{API}/status/", {"colour": "red"}))


def test_the_occurrences_api_lists_a_range_in_utc_across_dst_and_bounds_the_range(make_user):
    services.entry_create(
        kind="maintenance",
        title="friday patching",
        rrule="FREQ=WEEKLY;BYDAY=FR",
        start_date=datetime(2027, 3, 12).date(),
        start_time=datetime(2027, 3, 12, 18).time(),
        timezone="Europe/Berlin",
        duration_minutes=120,
        reason="patches",
        owner="ops",
    )
    client = client_for(make_user("cal-reader", role="viewer").user)
    found = client.get(f"{API}/occurrences/", {"start": "2027-03-20T00:00:00Z", "end": "2027-04-05T00:00:00Z"})
    assert found.status_code == 200, found.content
    assert [o["starts_at"] for o in found.json()] == ["2027-03-26T17:00:00+00:00", "2027-04-02T16:00:00+00:00"]
    too_long = client.get(f"{API}/occurrences/", {"start": "2027-01-01T00:00:00Z", "end": "2028-01-01T00:00:00Z"})
    assert too_long.status_code == 400 and "end" in error_fields(too_long)


# --- portal ------------------------------------------------------------------------------------------------------


def test_the_portal_shows_the_month_the_editor_previews_and_affected_pages_carry_a_banner(make_user):
    admin = make_user("cal-portal", role="admin")
    client = client_for(admin.user)
    start = datetime.now(UTC) - timedelta(hours=1)
    preview = client.get(
        "/calendar/preview/",
        {
            "rrule": "FREQ=WEEKLY",
            "start_date": start.date().isoformat(),
            "start_time": "18:00",
            "timezone": "Europe/Berlin",
            "duration_minutes": "60",
        },
    )
    assert preview.status_code == 200 and preview.content.decode().count("<li>") == 10
    bad = client.get(
        "/calendar/preview/",
        {
            "rrule": "FREQ=SECONDLY",
            "start_date": "2027-01-01",
            "start_time": "1:00",
            "timezone": "UTC",
            "duration_minutes": "5",
        },
    )
    assert "rrule:" in bad.content.decode()

    form = {k: str(v) for k, v in as_json(now_entry(reason="quarter close")).items()}
    form["start_time"] = form["start_time"][:5]
    created = client.post("/calendar/new/", {**form, "scope_kind": "global", "enabled": "on"})
    assert created.status_code == 302, created.content.decode()[:2000]
    page = client.get("/calendar/").content.decode()
    assert 'data-kind="freeze"' in page and "calendar-freeze" in page
    assert 'data-calendar-banner="freeze"' in page and "quarter close" in page

    cluster = cluster_row("cal-portal-c")
    app = application_row(cluster, "web", "shop", ["a"])
    services.entry_create(
        **now_entry(
            kind="maintenance",
            reason="node upgrade",
            scope_kind="application",
            scope_cluster=str(cluster.pk),
            scope_application="shop",
        )
    )
    shown = client.get(f"/clusters/applications/{app.pk}/").content.decode()
    assert 'data-calendar-banner="maintenance"' in shown and "node upgrade" in shown
    on_cluster = client.get(f"/clusters/{cluster.pk}/").content.decode()
    assert "node upgrade" not in on_cluster, "an application's window is not the whole cluster's"
    week = client.get("/calendar/", {"view": "week"}).content.decode()
    assert 'data-view="week"' in week and week.count("data-day=") == 7 and 'data-kind="maintenance"' in week
    assert client.get("/calendar/", {"view": "year"}).status_code == 200, "a bad filter shows the month"
    assert "node upgrade" not in client.get("/calendar/").content.decode().split("<h1>")[0], "not on global pages"

    viewer = make_user("cal-portal-viewer", role="viewer")
    assert client_for(viewer.user).post("/calendar/new/", {**form, "scope_kind": "global"}).status_code == 403


# --- cron's freeze policy ----------------------------------------------------------------------------------------


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def test_a_cron_job_set_to_skip_is_skipped_inside_a_freeze_with_its_reason_and_one_set_to_run_runs(receiver):
    cluster = cluster_row("cal-cron")
    app = application_row(cluster, "web", "shop", ["a"])
    values = {"schedule": "* * * * *", "http_url": f"{receiver.url}/hook", "application": app}
    skipper, _ = job_create(name="skipper", freeze_policy="skip", **values)
    runner, _ = job_create(name="runner", freeze_policy="run", **values)
    services.entry_create(
        **now_entry(scope_kind="application", scope_cluster=str(cluster.pk), scope_application="shop", reason="CAB-42")
    )
    due = datetime.now(UTC) - timedelta(seconds=1)
    skipped = Run.objects.create(job=skipper, slot=due, due_at=due, not_before=due)
    running = Run.objects.create(job=runner, slot=due, due_at=due, not_before=due)

    assert execution.claim(skipped.pk, "w1") is None
    skipped.refresh_from_db()
    assert (skipped.state, skipped.skip_reason) == ("skipped", "freeze")
    assert "change freeze until" in skipped.reason and "CAB-42" in skipped.reason
    assert execution.claim(running.pk, "w1") is not None, "a job set to run runs during the freeze"

    CalendarEntry.objects.all().delete()
    cache.rebuild()
    later = Run.objects.create(job=skipper, slot=due + timedelta(minutes=1), due_at=due, not_before=due)
    assert execution.claim(later.pk, "w1") is not None, "after the freeze the job runs again"


def test_the_cron_api_takes_the_freeze_policy(make_user, receiver):
    client = client_for(make_user("cron-admin", role="admin").user)
    body = {"name": "nightly", "schedule": "@daily", "http_url": f"{receiver.url}/x", "freeze_policy": "skip"}
    created = post(client, "/api/v1/cron/jobs/", body)
    assert created.status_code == 201, created.content
    assert created.json()["freeze_policy"] == "skip"
    bad = post(client, "/api/v1/cron/jobs/", {**body, "name": "other", "freeze_policy": "maybe"})
    assert bad.status_code == 400 and "freeze_policy" in error_fields(bad)


# --- dashboard ---------------------------------------------------------------------------------------------------


def test_the_dashboard_counts_the_active_windows_the_viewer_may_read(make_user):
    a, b = cluster_row("cal-dash-a"), cluster_row("cal-dash-b")
    services.entry_create(**now_entry(scope_kind="cluster", scope_cluster=str(a.pk)))
    services.entry_create(**now_entry(scope_kind="cluster", scope_cluster=str(b.pk)))
    services.entry_create(**now_entry(kind="maintenance"))
    services.entry_create(**now_entry(hours_ago=-5, title="later"))  # not active yet
    admin = client_for(make_user("dash-admin", role="admin").user).get("/fragments/dashboard/counters/")
    assert 'id="counter-calendar_freezes">2<' in admin.content.decode()
    assert 'id="counter-calendar_maintenance">1<' in admin.content.decode()
    scoped = make_user("dash-a")
    bind(scoped.user, "viewer", cluster=a)
    shown = client_for(scoped.user).get("/fragments/dashboard/counters/").content.decode()
    assert 'id="counter-calendar_freezes">1<' in shown, "cluster b's freeze is not counted for a reader of a"
