"""The dashboard leads with "Needs attention": open notification conditions, failing pods and active change
freezes / maintenance windows, each only to those who may read them, in a number of queries that does not grow
with what there is, and live when a pod starts failing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.access import Scope, ScopeKind
from apps.core.domain_events import DomainEvent, Severity
from tests.support.clients import bind, forced_login, html
from tests.support.rows import application_row, cluster_row
from tests.support.websocket import connect, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _calendar_rebuilt_after() -> Iterator[None]:
    """The calendar is kept in memory per process: forget this test's entries once they are gone."""
    from apps.calendar import cache

    yield
    cache.rebuild()


def _attention(page: str) -> str:
    found = re.search(r'<section id="dashboard-attention".*?</section>', page, re.S)
    assert found is not None, "the dashboard has its Needs attention section"
    return found.group(0)


def _crashing(app: Any, name: str, restarts: int = 7) -> Any:
    from apps.clusters.models import Pod

    return Pod.objects.create(
        cluster=app.cluster,
        namespace=app.namespace,
        name=name,
        uid=f"uid-{name}",
        application=app,
        phase="Running",
        ready=False,
        restarts=restarts,
        reason="CrashLoopBackOff",
    )


def _freeze(cluster: Any, title: str) -> Any:
    from apps.calendar import cache, services

    start = (datetime.now(UTC) - timedelta(minutes=30)).replace(second=0, microsecond=0)
    entry = services.entry_create(
        kind="freeze",
        title=title,
        start_date=start.date(),
        start_time=start.time(),
        timezone="UTC",
        duration_minutes=180,
        reason="quarter close",
        owner="release-team",
        scope_kind="cluster",
        scope_cluster=str(cluster.pk),
    )
    cache.rebuild()
    return entry


def _open_condition(cluster: Any, subject: str) -> Any:
    from apps.notifications import routing

    return routing.record(
        DomainEvent(
            kind="clusters.unreachable",
            severity=Severity.CRITICAL,
            subject=subject,
            text="no answer",
            scope=Scope(ScopeKind.CLUSTER, str(cluster.pk)),
            dedup_key=f"down:{subject}",
        )
    )


@pytest.fixture
def two_clusters(settings) -> tuple[Any, Any]:  # type: ignore[no-untyped-def]
    from apps.notifications import tasks  # noqa: F401 - registered before routing enqueues deliveries
    from apps.notifications.services.channels import channel_create
    from apps.notifications.services.rules import rule_save

    settings.NOTIFICATIONS_ROUTE_INLINE = True
    c1, c2 = cluster_row("c1"), cluster_row("c2")
    ops = channel_create(name="ops", kind="email", target="ops@example.com")
    rule_save(name="all", kinds=["*"], min_severity="warning", channels=[ops.pk], group_window_seconds=3600)
    return c1, c2


def test_attention_comes_first_and_shows_each_viewer_only_what_they_may_read(two_clusters, admin_persona, make_user):
    c1, c2 = two_clusters
    web = application_row(c1, "shop", "web", ["a"])
    pod = _crashing(web, "web-crashing")
    event = _open_condition(c1, "c1 api unreachable")
    entry = _freeze(c1, "c1 release freeze")
    other = application_row(c2, "shop", "api", ["a"])
    _crashing(other, "api-crashing")
    _open_condition(c2, "c2 api unreachable")
    _freeze(c2, "c2 release freeze")

    local = make_user("lou-c1")
    bind(local.user, "viewer", c1)
    page = html(forced_login(local.user).get("/"))
    assert page.index('id="dashboard-attention"') < page.index('id="dashboard-counters"'), "attention leads"
    mine = _attention(page)
    assert f"c1 / shop / {pod.name}" in mine and "CrashLoopBackOff" in mine
    assert f'href="/clusters/applications/{web.pk}/"' in mine
    assert "c1 api unreachable" in mine and f'href="/notifications/events/{event.pk}/"' in mine
    assert "c1 release freeze" in mine and f'href="/calendar/{entry.pk}/"' in mine
    for hidden in ("api-crashing", "c2 api unreachable", "c2 release freeze"):
        assert hidden not in mine, hidden
    assert 'data-attention-total="1"' in mine

    everything = _attention(html(forced_login(admin_persona.user).get("/")))
    for shown in ("web-crashing", "api-crashing", "c1 api unreachable", "c2 api unreachable", "c2 release freeze"):
        assert shown in everything, shown

    outsider = make_user("olga-nobody")
    calm = _attention(html(forced_login(outsider.user).get("/")))
    assert "crashing" not in calm and "unreachable" not in calm and "release freeze" not in calm
    assert "No open condition within your scopes." in calm and "Every pod you may read is ready." in calm


def test_a_resolved_condition_and_a_recovered_pod_leave_the_list(two_clusters, admin_persona):
    from apps.notifications import routing

    c1, _ = two_clusters
    web = application_row(c1, "shop", "web", ["a"])
    pod = _crashing(web, "web-crashing")
    _open_condition(c1, "c1 api unreachable")
    client = forced_login(admin_persona.user)
    assert "c1 api unreachable" in _attention(html(client.get("/")))
    routing.record(
        DomainEvent(
            kind="clusters.recovered",
            severity=Severity.INFO,
            subject="c1 api unreachable",
            text="back",
            scope=Scope(ScopeKind.CLUSTER, str(c1.pk)),
            dedup_key="down:c1 api unreachable",
            resolves=True,
        )
    )
    pod.ready, pod.reason = True, ""
    pod.save()
    calm = _attention(html(client.get("/")))
    assert "c1 api unreachable" not in calm and "web-crashing" not in calm


def _dashboard_queries(client: Any) -> int:
    """The dashboard's queries, the fewer of two requests (a cache refresh may fall in one of them)."""
    from apps.calendar import cache

    counted = []
    for _ in range(2):
        cache.rebuild()
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/").status_code == 200
        counted.append(len(captured.captured_queries))
    return min(counted)


def test_the_dashboard_costs_the_same_queries_for_2_items_of_each_as_for_12(two_clusters, make_user):
    c1, _ = two_clusters
    local = make_user("lou-c1")
    bind(local.user, "viewer", c1)
    client = forced_login(local.user)
    web = application_row(c1, "shop", "web", ["a"])
    client.get("/")  # the session and the user's grants are warm

    def add(first: int, last: int) -> None:
        for n in range(first, last):
            _crashing(web, f"web-crashing-{n}", restarts=n)
            _open_condition(c1, f"condition {n}")
            _freeze(c1, f"freeze {n}")

    add(0, 2)
    few = _dashboard_queries(client)
    add(2, 12)
    many = _dashboard_queries(client)
    assert many == few, f"{few} queries for 2 items of each, {many} for 12"
    page = _attention(html(client.get("/")))
    assert len(re.findall(r'data-attention-item="clusters"', page)) == 5, "the first few are listed"
    assert "12 in all" in page


async def test_a_pod_that_starts_failing_reaches_an_open_dashboard(admin_persona, make_user, monkeypatch):
    from apps.clusters import dashboard

    monkeypatch.setattr(dashboard, "COALESCE_SECONDS", 0.05)

    @sync_to_async
    def setup() -> tuple[Any, bytes, bytes]:
        c1, c2 = cluster_row("c1"), cluster_row("c2")
        application_row(c1, "shop", "web", ["a"])
        stranger = make_user("sam-c2")
        bind(stranger.user, "viewer", c2)
        return c1, session_cookie(admin_persona), session_cookie(stranger)

    cluster, admin_cookie, stranger_cookie = await setup()
    watching, connected, _ = await connect("/ws/?topics=dashboard", admin_cookie)
    assert connected
    assert 'id="dashboard-attention"' in await watching.receive_from(timeout=5)
    other, connected, _ = await connect("/ws/?topics=dashboard", stranger_cookie)
    assert connected
    await other.receive_from(timeout=5)

    @sync_to_async
    def crash() -> None:
        from apps.clusters.sync.watch_event import apply_event

        changed = apply_event(
            cluster,
            "pods",
            "MODIFIED",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "web-a",
                    "namespace": "shop",
                    "uid": "p-web-a",
                    "resourceVersion": "99",
                    "labels": {"app": "web"},
                },
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "False"}],
                    "containerStatuses": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "ready": False,
                            "restartCount": 5,
                            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        }
                    ],
                },
            },
        )
        assert changed

    await crash()
    frame = await watching.receive_from(timeout=5)
    assert 'id="dashboard-attention" ' in frame and "hx-swap-oob" in frame
    assert "c1 / shop / web-a" in frame and "CrashLoopBackOff" in frame
    stranger_frame = await other.receive_from(timeout=5)
    assert "web-a" not in stranger_frame, "each subscriber's fragment is rendered with their own rights"
    await watching.disconnect()
    await other.disconnect()
