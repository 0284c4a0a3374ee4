"""The cron app on the dashboard: failed and late runs of the last 24 hours (what the viewer may read), re-counted
live when a run fails or becomes late (the domain events notifications will subscribe to as well)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.urls import reverse

from apps.core.access import Action, restrict
from apps.cron.models import Run, RunState

WINDOW = timedelta(hours=24)


def counters(viewer: Any) -> list[dict[str, Any]]:
    since = datetime.now(UTC) - WINDOW
    runs = restrict(viewer, Action.READ, Run.objects.all())
    failed = runs.filter(state__in=(RunState.FAILED, RunState.TIMED_OUT), finished_at__gte=since).count()
    late = runs.filter(late=True, due_at__gte=since).count()
    url = reverse("cron:jobs")
    return [
        {
            "key": "cron_failed",
            "label": "Failed cron runs (24 h)",
            "value": failed,
            "url": f"{url}?state=failed",
            "state": "warn" if failed else "ok",
        },
        {
            "key": "cron_late",
            "label": "Late cron runs (24 h)",
            "value": late,
            "url": url,
            "state": "warn" if late else "ok",
        },
    ]


def _announce(sender: Any, run: Run, job: Any, **kwargs: Any) -> None:
    from apps.core.events import dashboard_changed

    what = kwargs.get("what")
    dashboard_changed(f"cron run of {job.name} {'late to ' + what if what else 'failed'}")


def register() -> None:
    from apps.core.selectors import register_counters
    from apps.cron import signals

    register_counters(counters)
    signals.run_failed.connect(_announce, dispatch_uid="cron.dashboard.failed")
    signals.run_late.connect(_announce, dispatch_uid="cron.dashboard.late")
