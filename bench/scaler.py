"""Benchmark of the scaler: reaction time on a real cluster, and replay against the HPA and a baseline.

In one run:

1. **reaction** against a real kube-apiserver (v1.20.2 with controller-manager, scheduler and the simulated
   node of the tests), a real Prometheus scraping an exporter every second, a real Celery worker on the
   ``decisions`` queue and the watcher (``manage.py icc_watch``) keeping pods observed:
   (a) pushed signal: ``POST /api/v1/scaler/signals/`` → the scale change seen by the API server, p50/p95
   over ``--trials`` (target p95 <= 1 s; the HPA's floor is its 15 s sync period);
   (b) Prometheus path: the exporter's value changes → the scale change seen by the API server, with the
   policy evaluated every second (target p95 <= 5 s);
2. **replay** (pure, same traces for all): ICC's default policy against the HPA's default algorithm and a
   reactive baseline on a spike, a ramp and a daily cycle with ±20% noise: overloaded pod-seconds and
   pod-seconds relative to the HPA (target <= 0.7x and <= 1.1x) and reversals per 10 minutes (target <= 1).

The last line of output is one line of JSON. Run: ``.venv/bin/python bench/scaler.py [--trials N]``.
The database ``icc_bench_scaler`` and Redis db 14 are dropped and reused; never point them at data you keep.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATABASE = "icc_bench_scaler"
TARGET_SIGNAL_P95_MS = 1000.0
TARGET_PROMETHEUS_P95_MS = 5000.0
HPA_SYNC_PERIOD_MS = 15000.0
TARGET_OVERLOAD_RATIO = 0.7
TARGET_COST_RATIO = 1.1
TARGET_REVERSALS_PER_10MIN = 1.0
TARGET_PER_POD = 10.0  # the policy's per-pod target of the bench metric


def database_url() -> str:
    base = os.environ.get("BENCH_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/icc_bench"
    return urlunsplit(urlsplit(base)._replace(path=f"/{DATABASE}"))


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def reset_stores() -> None:
    admin = urlunsplit(urlsplit(database_url())._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    client = redis.Redis.from_url(redis_url(), socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def bench_env(data_dir: Path, prometheus_url: str) -> dict[str, str]:
    drop = ("DATABASE_", "REDIS_", "CELERY_", "SECRET_KEY", "DEBUG", "ICC_", "CLUSTER_", "PROMETHEUS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        DJANGO_SETTINGS_MODULE="iccapp.settings",
        DATABASE_URL=database_url(),
        REDIS_URL=redis_url(),
        SECRET_KEY=secrets.token_urlsafe(48),
        ICC_ENCRYPTION_KEYS=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        PROMETHEUS_URL=prometheus_url,
        LOG_LEVEL="WARNING",
        LOG_FORMAT="text",
        ICC_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
        CLUSTER_SYNC_SECONDS="3600",
        WORKER_METRICS_PORT="0",
    )
    return env


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None}
    return {"p50_ms": round(statistics.median(values), 1), "p95_ms": round(percentile(values, 0.95), 1)}


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# --- replay (pure) ---------------------------------------------------------------------------------------


def replay_figures() -> dict[str, Any]:
    from apps.scaler import replay

    sim = replay.Simulation()
    traces = {
        "spike": replay.spike(),
        "ramp": replay.ramp(),
        "daily_noise20": replay.daily_cycle(noise=0.2, seed=1, period_s=7200),
    }
    figures: dict[str, Any] = {}
    for name, trace in traces.items():
        results = replay.compare(trace, sim)
        icc, hpa = results["icc"], results["hpa"]
        figures[name] = {
            "icc_overloaded_pod_s": round(icc.overloaded_pod_seconds, 1),
            "hpa_overloaded_pod_s": round(hpa.overloaded_pod_seconds, 1),
            "reactive_overloaded_pod_s": round(results["reactive"].overloaded_pod_seconds, 1),
            "overload_ratio_to_hpa": round(icc.overloaded_pod_seconds / hpa.overloaded_pod_seconds, 3)
            if hpa.overloaded_pod_seconds
            else None,
            "icc_pod_s": round(icc.pod_seconds, 1),
            "hpa_pod_s": round(hpa.pod_seconds, 1),
            "cost_ratio_to_hpa": round(icc.pod_seconds / hpa.pod_seconds, 3),
            "icc_reversals_per_10min": round(icc.reversals_per_10min, 2),
            "hpa_reversals_per_10min": round(hpa.reversals_per_10min, 2),
            "reactive_reversals_per_10min": round(results["reactive"].reversals_per_10min, 2),
        }
        print(f"replay {name}: {figures[name]}", flush=True)
    return figures


# --- reaction on a real cluster ----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    args = parser.parse_args()

    from tests.kube import kube_bin_dir, new_cluster, start_cluster, start_node, stop_cluster
    from tests.prom import Exporter, PrometheusServer

    data_dir = Path(tempfile.mkdtemp(prefix="icc-bench-scaler-"))
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        raise SystemExit("prometheus is missing: apt-get install prometheus")
    exporter = Exporter()
    (data_dir / "prom").mkdir()
    prom = PrometheusServer(binary, data_dir / "prom", _free_port(), exporter)
    env = bench_env(data_dir, prom.url)
    os.environ.update(env)
    reset_stores()
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=600)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections
    from django.test import Client

    from apps.clusters import reconcile, services
    from apps.clusters.models import Pod, Workload
    from apps.scaler import evaluation
    from apps.scaler import services as scaler_services

    (data_dir / "kube").mkdir()
    kube = new_cluster(kube_bin_dir(), data_dir / "kube")
    processes: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {}
    try:
        prom.start()
        start_cluster(kube)
        start_node(kube)
        http = requests.Session()
        http.trust_env = False  # REQUESTS_CA_BUNDLE would override the cluster CA
        http.headers["Authorization"] = f"Bearer {kube.token}"
        http.verify = str(kube.ca_path)
        namespace = "bench-scaler"
        http.post(
            f"{kube.url}/api/v1/namespaces",
            json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            timeout=10,
        ).raise_for_status()
        labels = {"app.kubernetes.io/name": "web", "app.kubernetes.io/part-of": "shop"}
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "registry.example/web:1"}]},
                },
            },
        }
        path = f"{kube.url}/apis/apps/v1/namespaces/{namespace}/deployments"
        http.post(path, json=deployment, timeout=10).raise_for_status()

        def spec_replicas() -> int:
            return int(http.get(f"{path}/web", timeout=10).json()["spec"]["replicas"])

        def ready_replicas() -> int:
            return int(http.get(f"{path}/web", timeout=10).json().get("status", {}).get("readyReplicas") or 0)

        wait(lambda: ready_replicas() == 2, 60, "2 ready pods")
        cluster = services.cluster_register(
            name="bench", auth_mode="token", api_url=kube.url, token=kube.token, ca_data=kube.ca_path.read_text()
        )
        reconcile.full_sync(cluster.pk)
        workload = Workload.objects.select_related("application").get(cluster=cluster, namespace=namespace, name="web")
        application = workload.application
        admin = get_user_model().objects.create_superuser("bench-admin", "b@example.test", secrets.token_urlsafe(12))
        connections.close_all()

        processes.append(
            subprocess.Popen([sys.executable, "manage.py", "icc_watch"], cwd=ROOT, env=env, start_new_session=True)
        )
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "iccapp",
                    "worker",
                    "--pool",
                    "solo",
                    "-Q",
                    "decisions",
                    "--without-mingle",
                    "--without-gossip",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=ROOT,
                env=env,
                start_new_session=True,
            )
        )
        fast = {
            "scale_down_stabilization_s": 0,
            "cooldown_down_s": 0,
            "cooldown_up_s": 0,
            "flap_guard_max_reversals": None,
            "max_step_up_pods": 4,
        }
        # (a) pushed signal ------------------------------------------------------------------------------
        signal_metric = {"name": "rps", "target": TARGET_PER_POD}
        policy = scaler_services.policy_create(
            application=application, mode="active", min_replicas=1, max_replicas=6, metrics=[signal_metric],
            behavior=fast,
        )  # fmt: skip
        client = Client()
        client.force_login(admin)
        time.sleep(3)  # the worker is up and the policy's first evaluation done
        signal_ms: list[float] = []
        for trial in range(args.trials):
            current = spec_replicas()
            want = 3 if current == 2 else 2
            wait(lambda c=current: observed_pods(Pod, workload) == c, 60, f"{current} pods observed")
            pods = list(Pod.objects.filter(workload=workload, deleting=False).values_list("name", flat=True))
            connections.close_all()
            value = TARGET_PER_POD * want / len(pods) - 0.5  # ceil(len x value / target) == want
            started = time.monotonic()
            response = client.post(
                "/api/v1/scaler/signals/",
                json.dumps({"application": application.pk, "metric": "rps",
                            "values": [{"pod": pod, "value": value} for pod in pods]}),
                content_type="application/json",
            )  # fmt: skip
            if response.status_code != 202:
                raise SystemExit(f"signal refused: {response.status_code} {response.content[:300]!r}")
            wait(lambda w=want: spec_replicas() == w, 30, f"trial {trial}: {want} replicas", 0.005)
            signal_ms.append((time.monotonic() - started) * 1000)
            wait(lambda w=want: ready_replicas() == w, 60, f"{want} ready", 0.05)
        print(f"pushed signal -> scale seen by the apiserver: {summary(signal_ms)}", flush=True)
        scaler_services.policy_update(policy, enabled=False)
        connections.close_all()

        # (b) Prometheus path, evaluated every second -----------------------------------------------------
        prom_metric = {
            "name": "load", "source": "custom", "kind": "per_pod", "query": "bench_load{$selector}",
            "target": TARGET_PER_POD,
        }  # fmt: skip
        prom_policy = scaler_services.policy_create(
            application=application, name="prometheus", mode="active", min_replicas=1, max_replicas=6,
            metrics=[prom_metric], behavior=fast,
        )  # fmt: skip
        connections.close_all()
        stopping = threading.Event()

        def evaluate_every_second() -> None:
            while not stopping.wait(1.0):
                try:
                    evaluation.evaluate(prom_policy.pk, "periodic")
                finally:
                    connections.close_all()

        loop = threading.Thread(target=evaluate_every_second, daemon=True)
        prom_ms: list[float] = []
        trials = max(5, args.trials // 5)
        current = spec_replicas()
        pods = set_load(exporter, Pod, workload, namespace, TARGET_PER_POD * 0.99)  # hold at the current count
        loop.start()
        for trial in range(trials):
            current = spec_replicas()
            want = 3 if current == 2 else 2
            wait(lambda c=current: observed_pods(Pod, workload) == c, 60, f"{current} pods observed")
            value = TARGET_PER_POD * want / current - 0.5
            started = time.monotonic()
            pods = set_load(exporter, Pod, workload, namespace, value)
            wait(lambda w=want: spec_replicas() == w, 60, f"prometheus trial {trial}: {want} replicas", 0.01)
            prom_ms.append((time.monotonic() - started) * 1000)
            wait(lambda w=want: ready_replicas() == w, 60, f"{want} ready", 0.05)
            set_load(exporter, Pod, workload, namespace, TARGET_PER_POD)  # on target: hold
            time.sleep(2)
        stopping.set()
        loop.join(10)
        print(f"Prometheus (1 s scrape, 1 s evaluation) -> scale: {summary(prom_ms)} ({len(pods)} pods)", flush=True)

        replay = replay_figures()
        result = {
            "signal_reaction_p50_ms": summary(signal_ms)["p50_ms"],
            "signal_reaction_p95_ms": summary(signal_ms)["p95_ms"],
            "signal_trials": len(signal_ms),
            "target_signal_p95_ms": TARGET_SIGNAL_P95_MS,
            "hpa_sync_period_ms": HPA_SYNC_PERIOD_MS,
            "signal_p95_ratio_to_hpa_sync": round((summary(signal_ms)["p95_ms"] or 0) / HPA_SYNC_PERIOD_MS, 4),
            "prometheus_reaction_p50_ms": summary(prom_ms)["p50_ms"],
            "prometheus_reaction_p95_ms": summary(prom_ms)["p95_ms"],
            "prometheus_trials": len(prom_ms),
            "target_prometheus_p95_ms": TARGET_PROMETHEUS_P95_MS,
            "replay": replay,
            "target_overload_ratio": TARGET_OVERLOAD_RATIO,
            "target_cost_ratio": TARGET_COST_RATIO,
            "target_reversals_per_10min": TARGET_REVERSALS_PER_10MIN,
        }
    finally:
        for process in processes:
            stop(process)
        prom.stop()
        exporter.close()
        stop_cluster(kube)
        connections.close_all()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(result))
    return 0


def _free_port() -> int:
    from tests.conftest import free_port

    return free_port()


def wait(check: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")


def observed_pods(pod_model: Any, workload: Any) -> int:
    from django.db import connections

    count = pod_model.objects.filter(workload=workload, deleting=False, ready=True).count()
    connections.close_all()
    return int(count)


def set_load(exporter: Any, pod_model: Any, workload: Any, namespace: str, value: float) -> list[str]:
    """Every observed pod reports ``value`` (stale pods are dropped from the exporter)."""
    from django.db import connections

    pods = list(pod_model.objects.filter(workload=workload, deleting=False).values_list("name", flat=True))
    connections.close_all()
    exporter.clear(namespace)
    for pod in pods:
        exporter.set("bench_load", namespace, pod, value)
    return pods


if __name__ == "__main__":
    raise SystemExit(main())
