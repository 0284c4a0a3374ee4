"""Traffic tasks on the ``analysis`` queue: rolling up the ingestion buffer (every ``TRAFFIC_FLUSH_SECONDS``;
several may run at once, each takes its own entries), pruning rollups and samples past their retention, and
(daily) recomputing caching recommendations."""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.core.tasking import icc_task
from apps.traffic import events, rollup
from apps.traffic.metrics import FLUSH_SECONDS, FLUSHED
from apps.traffic.models import EdgeRollup, Level, RouteRollup, Sample


@icc_task(name="traffic.flush", queue="analysis", soft_time_limit=60)
def flush(max_seconds: float = 5.0) -> int:
    """Roll up what the receivers buffered, until the buffer is empty or ``max_seconds`` pass; then the pages of
    the applications that got data refresh (at most every few seconds each)."""
    started, total = time.monotonic(), 0
    touched: set[int] = set()
    while time.monotonic() - started < max_seconds:
        began = time.monotonic()
        batch = rollup.flush_batch()
        FLUSH_SECONDS.observe(time.monotonic() - began)
        done = batch.spans + len(batch.samples)
        touched |= batch.applications
        total += done
        if done == 0:
            break
    FLUSHED.inc(total)
    if touched:
        events.traffic_flushed(touched)  # each batch committed on its own: published at once
    return total


@icc_task(name="traffic.prune", queue="analysis", soft_time_limit=600)
def prune() -> int:
    """Delete minute, hour and day rollups and raw samples older than their retention settings."""
    now = timezone.now()
    keep = {
        Level.MINUTE: timedelta(hours=settings.TRAFFIC_MINUTE_RETENTION_HOURS),
        Level.HOUR: timedelta(days=settings.TRAFFIC_HOUR_RETENTION_DAYS),
        Level.DAY: timedelta(days=settings.TRAFFIC_DAY_RETENTION_DAYS),
    }
    removed = 0
    for level, age in keep.items():
        removed += RouteRollup.objects.filter(level=level, bucket__lt=now - age).delete()[0]
        removed += EdgeRollup.objects.filter(level=level, bucket__lt=now - age).delete()[0]
    cutoff = now - timedelta(hours=settings.TRAFFIC_SAMPLE_RETENTION_HOURS)
    removed += Sample.objects.filter(at__lt=cutoff).delete()[0]
    return removed


@icc_task(name="traffic.recommend", queue="analysis", soft_time_limit=1800)
def recommend(application_id: int | None = None) -> int:
    """Recompute the caching recommendations of one application, or (daily) of every one with recent samples."""
    from apps.clusters.models import Application
    from apps.traffic.services.recommendations import recommendations_compute

    since = timezone.now() - timedelta(hours=settings.TRAFFIC_RECOMMEND_WINDOW_HOURS)
    ids = (
        [application_id]
        if application_id is not None
        else list(Sample.objects.filter(at__gte=since).values_list("application_id", flat=True).distinct())
    )
    done = 0
    for application in Application.objects.filter(pk__in=ids).order_by("pk"):
        recommendations_compute(application=application, by=None)
        done += 1
    return done
