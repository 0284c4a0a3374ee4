"""The bench scripts cannot rot: each runs with ``--quick`` (small sizes, short durations) to the end and prints
its one line of JSON, with the expected keys and plausible values. No timing is asserted.

The benches use their own databases (``icc_bench_test`` and ``icc_bench_test_<bench>`` on this run's PostgreSQL
server) and Redis db 14 of this run's Redis (13 when the suite itself uses 14); a PostgreSQL advisory lock in
``bench/harness.py`` makes two runs on the same Redis db wait for each other.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from django.conf import settings

from tests.support.components import ROOT, require

pytestmark = pytest.mark.slow

QUICK_TIMEOUT_S = 300  # each quick run takes 20-60 s on 2 cores; a cold start or a loaded machine takes longer
BENCH_DATABASE = "icc_bench_test"
BENCH_REDIS_DB = 14
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")


def bench_environment() -> dict[str, str]:
    """This run's environment plus the benches' own stores on this run's PostgreSQL server and Redis."""
    db = settings.DATABASES["default"]
    credentials = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = f"{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    suite_redis = urlsplit(settings.REDIS_URL)
    suite_db = int(suite_redis.path.strip("/") or 0)
    redis_db = BENCH_REDIS_DB if suite_db != BENCH_REDIS_DB else BENCH_REDIS_DB - 1  # the suite flushes its own
    return {
        **os.environ,
        "BENCH_DATABASE_URL": f"postgres://{credentials}{'@' if credentials else ''}{host}/{BENCH_DATABASE}",
        "BENCH_REDIS_URL": urlunsplit(suite_redis._replace(path=f"/{redis_db}")),
    }


def run_quick(script: str) -> dict[str, Any]:
    """``python bench/<script> --quick``: exit status 0 and the last line of output as JSON."""
    try:
        completed = subprocess.run(
            [sys.executable, str(Path("bench") / script), "--quick"],
            cwd=ROOT,
            env=bench_environment(),
            capture_output=True,
            text=True,
            timeout=QUICK_TIMEOUT_S,
            check=False,  # the exit status is asserted below, with the output
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"bench/{script} --quick took over {QUICK_TIMEOUT_S} s:\n{tail(exc.stdout)}\n{tail(exc.stderr)}")
    output = f"--- stdout\n{tail(completed.stdout)}\n--- stderr\n{tail(completed.stderr)}"
    assert completed.returncode == 0, f"bench/{script} --quick exited with {completed.returncode}\n{output}"
    lines = completed.stdout.strip().splitlines()
    assert lines, f"bench/{script} --quick printed nothing\n{output}"
    try:
        summary = json.loads(lines[-1])
    except json.JSONDecodeError:
        pytest.fail(f"the last line of bench/{script} --quick is not JSON\n{output}")
    assert isinstance(summary, dict), output
    print(lines[-1])
    return summary


def tail(text: str | bytes | None, lines: int = 60) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join((text or "").splitlines()[-lines:])


def assert_keys(summary: dict[str, Any], expected: set[str]) -> None:
    """The expected keys are there, and every key (nested too) is snake_case."""
    missing = expected - summary.keys()
    assert not missing, f"missing keys {sorted(missing)} in {summary}"

    def names(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [name for key, item in value.items() for name in (key, *names(item))]
        return []

    assert all(SNAKE_CASE.match(name) for name in names(summary)), sorted(names(summary))
    assert summary["quick"] is True


def require_kube_binaries() -> None:
    """The cached Kubernetes binaries, built here (in this test's time, not the bench's) when missing."""
    from tests.support.kube import kube_bin_dir

    kube_bin_dir()


def require_wrk() -> None:
    can_install = bool(shutil.which("apt-get")) and (os.geteuid() == 0 or bool(shutil.which("sudo")))
    require(bool(shutil.which("wrk")) or can_install, "wrk is missing and cannot be installed (apt-get install wrk)")


@pytest.mark.timeout(QUICK_TIMEOUT_S + 300)
def test_the_api_bench_lists_100_users_beside_hello_world() -> None:
    require_wrk()
    summary = run_quick("api.py")
    assert_keys(
        summary,
        {"hello_rps", "hello_p99_ms", "list_rps", "list_p99_ms", "list_items", "list_sql_queries"}
        | {"ratio_list_hello_rps", "non_2xx_responses", "target_ratio", "target_list_p99_ms"},
    )
    assert summary["list_items"] == 100
    assert summary["non_2xx_responses"] == 0
    assert summary["hello_rps"] > 0
    assert summary["list_rps"] > 0
    assert 1 <= summary["list_sql_queries"] < 50
    assert summary["ratio_list_hello_rps"] == pytest.approx(summary["list_rps"] / summary["hello_rps"], rel=0.01)


@pytest.mark.timeout(QUICK_TIMEOUT_S + 300)
def test_the_audit_bench_ingests_verifies_and_reads_history_beside_copy() -> None:
    summary = run_quick("audit.py")
    assert_keys(
        summary,
        {"single_events_per_s", "batched_events_per_s", "copy_rows_per_s", "ratio_batched_copy"}
        | {"verify_db_events_per_s", "verify_mem_events_per_s", "history_p50_ms", "history_p99_ms", "history_rows"}
        | {"synchronous_commit", "verify_ok", "target_batched_events_per_s"},
    )
    for rate in ("single_events_per_s", "batched_events_per_s", "copy_rows_per_s", "verify_db_events_per_s"):
        assert summary[rate] > 0, rate
    assert summary["history_rows"] >= 20_000
    assert summary["verify_ok"] is True
    assert summary["synchronous_commit"] == "on"
    assert 0 < summary["history_p50_ms"] <= summary["history_p99_ms"]


@pytest.mark.timeout(45 * 60)  # a cold cache builds the Kubernetes binaries first (~7 minutes)
def test_the_reconcile_bench_syncs_and_detects_drift_beside_the_official_client() -> None:
    require_kube_binaries()
    summary = run_quick("reconcile.py")
    assert_keys(
        summary,
        {"deployments", "objects", "official_client_list_ms", "full_sync_ms", "full_sync_ratio"}
        | {"resync_unchanged_ms", "drift_p50_ms", "drift_p95_ms", "ws_delivery_p95_ms", "ws_delivered"}
        | {"trials", "watcher_rss_mb", "target_full_sync_ratio"},
    )
    assert summary["deployments"] == 20
    assert summary["objects"] > summary["deployments"]  # pods, namespaces, the node besides the Deployments
    assert summary["official_client_list_ms"] > 0
    assert summary["full_sync_ms"] > 0
    assert 0 < summary["drift_p50_ms"] <= summary["drift_p95_ms"]
    assert summary["trials"] == 5
    assert summary["ws_delivered"] > 0
    assert summary["watcher_rss_mb"] > 0


@pytest.mark.timeout(45 * 60)  # a cold cache builds the Kubernetes binaries first (~7 minutes)
def test_the_scaler_bench_reacts_on_a_real_cluster_and_replays_against_the_hpa() -> None:
    require_kube_binaries()
    binary = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else "")
    require(bool(binary), "the prometheus binary is missing (apt-get install prometheus; scripts/test.sh does it)")
    summary = run_quick("scaler.py")
    assert_keys(
        summary,
        {"signal_reaction_p50_ms", "signal_reaction_p95_ms", "signal_trials", "hpa_sync_period_ms"}
        | {"prometheus_reaction_p50_ms", "prometheus_reaction_p95_ms", "prometheus_trials", "replay"}
        | {"target_signal_p95_ms", "target_prometheus_p95_ms"},
    )
    assert summary["signal_trials"] == 3
    assert summary["prometheus_trials"] == 2
    assert 0 < summary["signal_reaction_p50_ms"] <= summary["signal_reaction_p95_ms"]
    assert 0 < summary["prometheus_reaction_p50_ms"] <= summary["prometheus_reaction_p95_ms"]
    assert set(summary["replay"]) == {"spike", "ramp", "daily_noise20"}
    for trace, figures in summary["replay"].items():
        assert figures["icc_pod_s"] > 0, trace
        assert figures["cost_ratio_to_hpa"] > 0, trace


@pytest.mark.timeout(QUICK_TIMEOUT_S + 300)
def test_the_cron_bench_fires_jobs_through_a_worker_kill_beside_celery_beat() -> None:
    summary = run_quick("cron.py")
    assert_keys(
        summary,
        {"jobs", "minutes", "lateness_p50_ms", "lateness_p99_ms", "duplicates", "retried_after_kill", "missed"}
        | {"runs_per_s", "celery_beat_lateness_p50_ms", "celery_beat_lateness_p99_ms", "celery_beat_missed"}
        | {"celery_beat_two_beats_duplicates", "target_lateness_p99_ms"},
    )
    assert summary["jobs"] == 40
    assert summary["minutes"] == 1
    assert summary["runs_per_s"] > 0
    assert summary["duplicates"] == 0  # exactly once is a property, not a timing
    assert 0 <= summary["lateness_p50_ms"] <= summary["lateness_p99_ms"]
    assert 0 <= summary["celery_beat_lateness_p50_ms"] <= summary["celery_beat_lateness_p99_ms"]
    assert summary["celery_beat_two_beats_duplicates"] > 0  # two beats fire every entry twice


@pytest.mark.timeout(45 * 60)  # a cold cache builds the Kubernetes binaries first (~7 minutes)
def test_the_compliance_bench_scans_beside_the_official_client_and_admits_through_the_webhook() -> None:
    require_kube_binaries()
    summary = run_quick("compliance.py")
    assert_keys(
        summary,
        {"deployments", "official_client_list_ms", "scan_ms", "scan_ratio_to_list", "evaluations_per_s"}
        | {"scan_results", "rescan_unchanged_ms", "target_scan_ratio", "creates", "enforced_checks"}
        | {"create_p99_ms", "create_webhook_p99_ms", "admission_added_p99_ms", "webhook_p99_ms", "webhook_reviews"}
        | {"target_admission_added_p99_ms"},
    )
    assert summary["deployments"] == 200
    from apps.compliance.checks import POLICIES, checks_for_policy

    built_in = {check.id for policy in POLICIES for check in checks_for_policy(policy)}  # baseline is in restricted
    assert summary["scan_results"] == 200 * len(built_in), "every built-in check once per Deployment"
    assert summary["evaluations_per_s"] > 0 and summary["official_client_list_ms"] > 0
    assert summary["scan_ratio_to_list"] == pytest.approx(summary["scan_ms"] / summary["official_client_list_ms"], 0.02)
    assert summary["creates"] == 50 and summary["enforced_checks"] == 20
    assert summary["webhook_reviews"] >= 50, "the API server asked ICC about every create while the webhook was on"
    assert 0 < summary["webhook_p99_ms"] < summary["create_webhook_p99_ms"]


@pytest.mark.timeout(QUICK_TIMEOUT_S + 300)
def test_the_traffic_bench_rolls_up_every_span_beside_the_bare_parse_and_times_the_queries() -> None:
    summary = run_quick("traffic.py")
    assert_keys(
        summary,
        {"spans_per_s", "ingest_p99_ms", "parse_only_spans_per_s", "routes_query_p99_ms", "graph_query_p99_ms"}
        | {"ingest_p50_ms", "window_spans", "requests", "non_2xx_responses", "rollups_exact", "rollups"}
        | {"routes_in_table", "graph_edges", "target_spans_per_s", "target_ingest_p99_ms"},
    )
    assert summary["non_2xx_responses"] == 0
    assert summary["rollups_exact"] is True, summary["rollups"]  # every span sent is in the rollups, once
    assert summary["spans_per_s"] > 0 and summary["parse_only_spans_per_s"] > summary["spans_per_s"]
    assert 0 < summary["ingest_p50_ms"] <= summary["ingest_p99_ms"]
    assert summary["routes_in_table"] == 100
    assert summary["graph_edges"] >= 40  # the query phase's edges, beside the ingested ones
    assert summary["routes_query_p99_ms"] > 0 and summary["graph_query_p99_ms"] > 0
