"""Failed and late cron runs on the dashboard: counted for what the viewer may read, announced live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.core.selectors import dashboard_counters
from apps.cron.models import Run
from apps.cron.services.jobs import job_create
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db


def counter(viewer, key: str) -> object:
    return next(c for c in dashboard_counters(viewer) if c["key"] == key)


def test_failed_and_late_runs_are_counted_for_what_the_viewer_may_read(viewer_persona, outsider_persona, make_user):
    from apps.users.models import RoleBinding

    cluster = cluster_row("prod")
    shop = application_row(cluster, "shop", "shop", [])
    blog = application_row(cluster, "blog", "blog", [])
    now = datetime.now(UTC)
    for app in (shop, blog):
        job, _ = job_create(application=app, name="nightly", schedule="@daily", http_url="http://127.0.0.1:9/x")
        Run.objects.create(job=job, slot=now, due_at=now, not_before=now, state="failed", finished_at=now)
        late = now - timedelta(minutes=5)
        Run.objects.create(job=job, slot=late, due_at=late, not_before=late, state="scheduled", late=True)
    old = now - timedelta(days=2)
    Run.objects.create(job=job, slot=old, due_at=old, not_before=old, state="timed_out", finished_at=old)

    failed = counter(viewer_persona.user, "cron_failed")
    assert failed["value"] == 2 and failed["state"] == "warn" and "state=failed" in failed["url"]
    assert counter(viewer_persona.user, "cron_late")["value"] == 2
    assert counter(outsider_persona.user, "cron_failed")["value"] == 0

    scoped = make_user("shop-viewer")
    RoleBinding.objects.create(
        user=scoped.user,
        role="viewer",
        scope_kind="application",
        scope_cluster=str(cluster.pk),
        scope_application="shop",
    )
    assert counter(scoped.user, "cron_failed")["value"] == 1
    assert counter(scoped.user, "cron_late")["value"] == 1
