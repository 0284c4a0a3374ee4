"""The live event log over the real Redis channel layer: a new event, and a delivery's outcome, reach the pages that
follow them through ``/ws/``; an event's own topic is for its readers only, and what a viewer re-fetches is
restricted to their scopes."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from apps.core.access import Scope, ScopeKind
from apps.core.domain_events import DomainEvent, Severity, emit
from tests.support.clients import bind, forced_login, html
from tests.support.rows import cluster_row
from tests.support.websocket import connect, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


def _refreshes(frame: str, target: str) -> bool:
    return f'id="{target}-refresh"' in frame and 'hx-swap-oob="true"' in frame


async def _next_frame_for(communicator, target: str, timeout: float = 5) -> str:  # type: ignore[no-untyped-def]
    """The next frame that re-fetches ``target`` (other topics' frames are skipped)."""
    for _ in range(10):
        frame = await communicator.receive_from(timeout=timeout)
        if _refreshes(frame, target):
            return frame
    raise AssertionError(f"no refresh of {target}")


async def test_a_new_event_reaches_the_open_event_log_and_each_viewer_refetches_only_their_rows(make_user, settings):
    settings.NOTIFICATIONS_ROUTE_INLINE = True

    @sync_to_async
    def setup() -> tuple[bytes, object, object]:
        c1, c2 = cluster_row("c1"), cluster_row("c2")
        local = make_user("lou-local")
        bind(local.user, "viewer", c1)
        return session_cookie(local), local.user, (c1, c2)

    cookie, user, (c1, c2) = await setup()
    communicator, connected, _ = await connect("/ws/?topics=notifications,notifications.deliveries", cookie)
    assert connected
    snapshots = [await communicator.receive_from(timeout=5) for _ in range(2)]
    assert any(_refreshes(s, "notification-events") for s in snapshots)
    assert any(_refreshes(s, "notification-deliveries") for s in snapshots)

    @sync_to_async
    def emit_two() -> None:
        with transaction.atomic():
            for cluster, subject in ((c1, "c1 is down"), (c2, "c2 is down")):
                emit(
                    DomainEvent(
                        kind="clusters.unreachable",
                        severity=Severity.ERROR,
                        subject=subject,
                        text="no answer",
                        scope=Scope(ScopeKind.CLUSTER, str(cluster.pk)),
                    )
                )

    await emit_two()
    frame = await _next_frame_for(communicator, "notification-events")
    url = re.search(r'hx-get="([^"]+)"', frame)
    assert url is not None and url.group(1) == "/notifications/table/"
    assert 'hx-include="#notification-filters, #notification-events-page"' in frame

    @sync_to_async
    def refetch() -> str:
        return html(forced_login(user).get(url.group(1)))

    table = await refetch()
    assert "c1 is down" in table and "c2 is down" not in table, "the re-fetched rows are the viewer's own"
    await communicator.disconnect()


async def test_a_delivery_outcome_reaches_its_events_page_whose_topic_only_its_readers_may_follow(
    admin_persona, make_user, receiver, settings
):
    settings.NOTIFICATIONS_ROUTE_INLINE = True
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 1

    @sync_to_async
    def setup() -> tuple[int, int, bytes, bytes]:
        from apps.notifications import routing, tasks  # noqa: F401 - the tasks are registered before routing
        from apps.notifications.models import Delivery
        from apps.notifications.services.channels import channel_create
        from apps.notifications.services.rules import rule_save

        c1, c2 = cluster_row("c1"), cluster_row("c2")
        hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/h")
        rule_save(name="r", kinds=["*"], min_severity="info", channels=[hook.pk], group_window_seconds=0)
        event = routing.record(
            DomainEvent(
                kind="clusters.unreachable",
                severity=Severity.ERROR,
                subject="c1 is down",
                text="t",
                scope=Scope(ScopeKind.CLUSTER, str(c1.pk)),
            )
        )
        stranger = make_user("sam-c2")
        bind(stranger.user, "viewer", c2)
        return event.pk, Delivery.objects.get().pk, session_cookie(admin_persona), session_cookie(stranger)

    event_id, delivery_id, admin_cookie, stranger_cookie = await setup()
    topic = f"notifications.event.{event_id}"

    outsider, connected, _ = await connect(f"/ws/?topics={topic}", stranger_cookie)
    assert connected
    assert f"not allowed to follow {topic}" in await outsider.receive_from(timeout=5)
    await outsider.disconnect()

    communicator, connected, _ = await connect(f"/ws/?topics={topic}", admin_cookie)
    assert connected
    assert _refreshes(await communicator.receive_from(timeout=5), "notification-event")

    @sync_to_async
    def deliver_through_the_task() -> str | None:
        from apps.notifications.tasks import deliver

        receiver.status = 502
        return deliver.apply(args=[delivery_id]).get()

    assert await deliver_through_the_task() == "dead"
    frame = await _next_frame_for(communicator, "notification-event")
    assert f'hx-get="/notifications/events/{event_id}/messages/"' in frame

    @sync_to_async
    def refetch() -> str:
        return html(forced_login(admin_persona.user).get(f"/notifications/events/{event_id}/messages/"))

    fragment = await refetch()
    assert f'data-delivery="{delivery_id}"' in fragment and 'data-status="dead"' in fragment and "HTTP 502" in fragment
    await communicator.disconnect()
