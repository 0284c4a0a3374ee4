"""The notifications pages in Chromium against a real ICC server: a new event appears in an open event log without
a reload (htmx re-fetches the table with the page's filters), and the dashboard leads with "Needs attention"."""

from __future__ import annotations

from typing import Any

import pytest

from apps.core.access import Scope, ScopeKind
from apps.core.domain_events import DomainEvent, Severity
from tests.support.browser import log_in_to, outside_playwright, record_frames, wait_for_frame
from tests.support.components import ARTIFACTS
from tests.support.server import RunningServer

pytestmark = pytest.mark.browser


def _emit(subject: str, severity: Severity = Severity.ERROR) -> None:
    from django.db import transaction

    from apps.core.domain_events import emit
    from apps.notifications import tasks  # noqa: F401 - registered before routing enqueues

    with transaction.atomic():
        emit(
            DomainEvent(
                kind="clusters.unreachable",
                severity=severity,
                subject=subject,
                text="no answer",
                scope=Scope(ScopeKind.GLOBAL),
            )
        )


def _failing_things() -> None:
    from datetime import UTC, datetime, timedelta

    from apps.calendar import cache, services
    from apps.clusters.models import Pod
    from tests.support.rows import application_row, cluster_row

    web = application_row(cluster_row("prod"), "shop", "web", ["ok"])
    Pod.objects.create(
        cluster=web.cluster,
        namespace="shop",
        name="web-7d9c-x2",
        uid="uid-x2",
        application=web,
        phase="Running",
        restarts=12,
        reason="CrashLoopBackOff",
    )
    start = datetime.now(UTC) - timedelta(minutes=5)
    services.entry_create(
        kind="freeze",
        title="year-end freeze",
        start_date=start.date(),
        start_time=start.time().replace(microsecond=0),
        timezone="UTC",
        duration_minutes=120,
        reason="year-end close",
        owner="release-team",
    )
    cache.rebuild()


def test_a_new_event_appears_in_the_filtered_event_log_without_a_reload(
    icc_server: RunningServer, admin_persona: Any, page: Any
) -> None:
    from playwright.sync_api import expect

    frames = record_frames(page)
    log_in_to(page, icc_server.url, "/notifications/?severity=error", admin_persona)
    wait_for_frame(page, frames, "notification-events-refresh")
    table = page.locator("#notification-events")
    expect(table).to_contain_text("No events match")

    outside_playwright(lambda: _emit("a warning the filter hides", Severity.WARNING))
    outside_playwright(lambda: _emit("api server unreachable"))

    expect(table).to_contain_text("api server unreachable", timeout=15_000)
    expect(table).not_to_contain_text("a warning the filter hides")
    expect(page.locator("select[name=severity]")).to_have_value("error")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "notifications-event-log-live.png"), full_page=True)

    outside_playwright(_failing_things)
    page.goto(f"{icc_server.url}/")
    attention = page.locator("#dashboard-attention")
    expect(attention).to_contain_text("Needs attention")
    expect(attention).to_contain_text("prod / shop / web-7d9c-x2")
    expect(attention).to_contain_text("Change freeze: year-end freeze")
    page.screenshot(path=str(ARTIFACTS / "dashboard-attention.png"), full_page=True)
