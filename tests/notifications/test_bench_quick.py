"""bench/notifications.py cannot rot: its ``--quick`` run (50 events per phase, two real worker processes, a local
webhook receiver and SMTP server) ends with one line of JSON holding every figure beside its anchor. No timing is
asserted; every event must arrive.

Like tests/core/test_benches.py, the bench uses its own database (``icc_bench_test_notifications`` on this run's
PostgreSQL server) and Redis db 14 (13 when the suite itself uses 14).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from django.conf import settings

from tests.support.components import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")


def bench_environment() -> dict[str, str]:
    db = settings.DATABASES["default"]
    credentials = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = f"{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    suite_redis = urlsplit(settings.REDIS_URL)
    redis_db = 14 if int(suite_redis.path.strip("/") or 0) != 14 else 13  # the suite flushes its own db
    return {
        **os.environ,
        "BENCH_DATABASE_URL": f"postgres://{credentials}{'@' if credentials else ''}{host}/icc_bench_test",
        "BENCH_REDIS_URL": urlunsplit(suite_redis._replace(path=f"/{redis_db}")),
    }


def test_the_notifications_bench_delivers_every_event_and_prints_its_figures_beside_anchors() -> None:
    completed = subprocess.run(
        [sys.executable, str(Path("bench") / "notifications.py"), "--quick"],
        cwd=ROOT,
        env=bench_environment(),
        capture_output=True,
        text=True,
        timeout=540,
        check=False,  # asserted below, with the output
    )
    output = f"--- stdout\n{completed.stdout[-4000:]}\n--- stderr\n{completed.stderr[-4000:]}"
    assert completed.returncode == 0, output
    summary: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    expected = {"webhook_p50_ms", "webhook_p99_ms", "email_p50_ms", "email_p99_ms", "events_per_s", "emit_p99_ms"}
    expected |= {"anchor_http_post_p50_ms", "anchor_http_post_p99_ms", "anchor_smtp_send_p50_ms"}
    expected |= {"anchor_smtp_send_p99_ms", "anchor_insert_p99_ms", "target_webhook_p99_ms", "quick"}
    assert expected <= summary.keys(), sorted(expected - summary.keys())
    assert all(SNAKE_CASE.match(key) for key in summary), sorted(summary)
    assert summary["quick"] is True and summary["events"] == 50 and summary["burst_events"] == 50
    assert summary["webhook_missing"] == summary["email_missing"] == summary["burst_missing"] == 0, output
    for channel in ("webhook", "email"):
        assert 0 < summary[f"{channel}_p50_ms"] <= summary[f"{channel}_p99_ms"], summary
    for anchor in ("anchor_http_post", "anchor_smtp_send", "anchor_insert"):
        assert 0 < summary[f"{anchor}_p50_ms"] <= summary[f"{anchor}_p99_ms"], summary
    assert summary["events_per_s"] > 0 and summary["emit_per_s"] > 0
    assert 0 < summary["emit_p50_ms"] <= summary["emit_p99_ms"]
