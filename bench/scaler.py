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

The last line of output is one line of JSON. Run: ``.venv/bin/python bench/scaler.py [--quick] [--trials N]``.
The database ``icc_bench_scaler`` and Redis db 14 are dropped and reused; never point them at data you keep.
"""

from __future__ import annotations

import json
import secrets
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: bench.harness, apps, tests

from bench import harness

SUFFIX = "_scaler"  # database icc_bench_scaler (BENCH_DATABASE_URL's name + this)
TARGET_SIGNAL_P95_MS = 1000.0
TARGET_PROMETHEUS_P95_MS = 5000.0
HPA_SYNC_PERIOD_MS = 15000.0
TARGET_OVERLOAD_RATIO = 0.7
TARGET_COST_RATIO = 1.1
TARGET_REVERSALS_PER_10MIN = 1.0
TARGET_PER_POD = 10.0  # the policy's per-pod target of the bench metric
NAMESPACE = "bench-scaler"
# Policy behaviour without stabilization, cooldowns or flap guard: every trial's change is acted on at once.
FAST = {
    "scale_down_stabilization_s": 0,
    "cooldown_down_s": 0,
    "cooldown_up_s": 0,
    "flap_guard_max_reversals": None,
    "max_step_up_pods": 4,
}


def summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None}
    return {"p50_ms": round(statistics.median(values), 1), "p95_ms": round(harness.percentile(values, 0.95), 1)}


# --- replay (pure) ---------------------------------------------------------------------------------------


def replay_figures() -> dict[str, Any]:
    from apps.scaler import replay, replay_traces

    sim = replay.Simulation()
    traces = {
        "spike": replay_traces.spike(),
        "ramp": replay_traces.ramp(),
        "daily_noise20": replay_traces.daily_cycle(noise=0.2, seed=1, period_s=7200),
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


class Deployment:
    """The Deployment ``web`` of application ``shop`` (2 replicas), read through the API server."""

    def __init__(self, kube: Any) -> None:
        self.http = harness.kube_session(kube)
        self.path = f"{kube.url}/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        self.http.post(f"{kube.url}/api/v1/namespaces", json=namespace, timeout=10).raise_for_status()
        labels = {"app.kubernetes.io/name": "web", "app.kubernetes.io/part-of": "shop"}
        body = {
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
        self.http.post(self.path, json=body, timeout=10).raise_for_status()

    def spec_replicas(self) -> int:
        return int(self.http.get(f"{self.path}/web", timeout=10).json()["spec"]["replicas"])

    def ready_replicas(self) -> int:
        status = self.http.get(f"{self.path}/web", timeout=10).json().get("status", {})
        return int(status.get("readyReplicas") or 0)


def start_roles(env: dict[str, str]) -> list[Any]:
    """The watcher (keeps pods observed) and a Celery worker on the ``decisions`` queue."""
    worker = ["-m", "celery", "-A", "iccapp", "worker", "--pool", "solo", "-Q", "decisions"]
    worker += ["--without-mingle", "--without-gossip", "--loglevel", "WARNING"]
    return [harness.start_process(env, "manage.py", "icc_watch"), harness.start_process(env, *worker)]


def signal_trials(deployment: Deployment, workload: Any, admin: Any, trials: int) -> list[float]:
    """Per trial: post per-pod values asking for one pod more (or less); ms until the API server shows it."""
    from django.db import connections
    from django.test import Client

    from apps.clusters.models import Pod

    client = Client()
    client.force_login(admin)
    times: list[float] = []
    for trial in range(trials):
        current = deployment.spec_replicas()
        want = 3 if current == 2 else 2
        harness.wait_for(lambda c=current: observed_pods(Pod, workload) == c, 60, f"{current} pods observed")
        pods = list(Pod.objects.filter(workload=workload, deleting=False).values_list("name", flat=True))
        connections.close_all()
        value = TARGET_PER_POD * want / len(pods) - 0.5  # ceil(len x value / target) == want
        body = {"application": workload.application_id, "metric": "rps"}
        body["values"] = [{"pod": pod, "value": value} for pod in pods]
        started = time.monotonic()
        response = client.post("/api/v1/scaler/signals/", json.dumps(body), content_type="application/json")
        if response.status_code != 202:
            raise SystemExit(f"signal refused: {response.status_code} {response.content[:300]!r}")
        with explained(workload):
            what = f"trial {trial}: {want} replicas"
            harness.wait_for(lambda w=want: deployment.spec_replicas() == w, 30, what, 0.005)
        times.append((time.monotonic() - started) * 1000)
        harness.wait_for(lambda w=want: deployment.ready_replicas() == w, 60, f"{want} ready", 0.05)
    return times


def prometheus_trials(deployment: Deployment, workload: Any, exporter: Any, policy_id: int, trials: int) -> list[float]:
    """Per trial: the exporter's per-pod value asks for one pod more (or less), the policy is evaluated every
    second; ms from the change to the API server showing it."""
    from django.db import connections

    from apps.clusters.models import Pod
    from apps.scaler import evaluation

    stopping = threading.Event()

    def evaluate_every_second() -> None:
        while not stopping.wait(1.0):
            try:
                evaluation.evaluate(policy_id, "periodic")
            finally:
                connections.close_all()

    loop = threading.Thread(target=evaluate_every_second, daemon=True)
    times: list[float] = []
    set_load(exporter, Pod, workload, TARGET_PER_POD * 0.99)  # hold at the current count
    loop.start()
    try:
        for trial in range(trials):
            current = deployment.spec_replicas()
            want = 3 if current == 2 else 2
            harness.wait_for(lambda c=current: observed_pods(Pod, workload) == c, 60, f"{current} pods observed")
            value = TARGET_PER_POD * want / current - 0.5
            started = time.monotonic()
            set_load(exporter, Pod, workload, value)
            what = f"prometheus trial {trial}: {want} replicas"
            with explained(workload):
                harness.wait_for(lambda w=want: deployment.spec_replicas() == w, 60, what, 0.01)
            times.append((time.monotonic() - started) * 1000)
            harness.wait_for(lambda w=want: deployment.ready_replicas() == w, 60, f"{want} ready", 0.05)
            set_load(exporter, Pod, workload, TARGET_PER_POD)  # on target: hold
            time.sleep(2)
    finally:
        stopping.set()
        loop.join(10)
    return times


def main() -> int:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--trials", type=int, default=None, help="pushed-signal trials (50; quick 3)")
    parser.add_argument("--prometheus-trials", type=int, default=None, help="Prometheus-path trials (trials/5, >= 5)")
    args = parser.parse_args()
    args.trials = args.trials or (3 if args.quick else 50)
    args.prometheus_trials = args.prometheus_trials or (2 if args.quick else max(5, args.trials // 5))

    from tests.support.prometheus import Exporter, PrometheusServer

    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        raise SystemExit("prometheus is missing: apt-get install prometheus")
    exporter = Exporter()
    prom_port = harness.free_port()
    settings = {
        "PROMETHEUS_URL": f"http://127.0.0.1:{prom_port}",
        "CLUSTER_SYNC_SECONDS": "3600",  # no periodic resync during the measurements
        "WORKER_METRICS_PORT": "0",
    }
    processes: list[Any] = []
    with (
        harness.bench_run(SUFFIX, **settings) as run,
        harness.kube_cluster(run.data_dir / "kube") as kube,
    ):
        from django.contrib.auth import get_user_model
        from django.db import connections

        from apps.clusters import services, sync
        from apps.clusters.models import Workload
        from apps.scaler import services as scaler_services

        (run.data_dir / "prom").mkdir()
        prom = PrometheusServer(binary, run.data_dir / "prom", prom_port, exporter)
        try:
            prom.start()
            deployment = Deployment(kube)
            harness.wait_for(lambda: deployment.ready_replicas() == 2, 60, "2 ready pods")
            cluster = services.cluster_register(
                name="bench", auth_mode="token", api_url=kube.url, token=kube.token, ca_data=kube.ca_path.read_text()
            )
            sync.full_sync(cluster.pk)
            workload = Workload.objects.select_related("application").get(
                cluster=cluster, namespace=NAMESPACE, name="web"
            )
            admin = get_user_model().objects.create_superuser(
                "bench-admin", "b@example.test", secrets.token_urlsafe(12)
            )
            connections.close_all()
            processes += start_roles(run.env)

            # (a) pushed signal
            policy = scaler_services.policy_create(
                application=workload.application,
                mode="active",
                min_replicas=1,
                max_replicas=6,
                metrics=[{"name": "rps", "target": TARGET_PER_POD}],
                behavior=FAST,
            )
            time.sleep(3)  # the worker is up and the policy's first evaluation done
            signal_ms = signal_trials(deployment, workload, admin, args.trials)
            print(f"pushed signal -> scale seen by the apiserver: {summary(signal_ms)}", flush=True)
            scaler_services.policy_update(policy, enabled=False)
            connections.close_all()

            # (b) Prometheus path, evaluated every second
            prom_metric = {"name": "load", "source": "custom", "kind": "per_pod", "target": TARGET_PER_POD}
            prom_metric["query"] = "bench_load{$selector}"
            prom_policy = scaler_services.policy_create(
                application=workload.application,
                name="prometheus",
                mode="active",
                min_replicas=1,
                max_replicas=6,
                metrics=[prom_metric],
                behavior=FAST,
            )
            connections.close_all()
            prom_ms = prometheus_trials(deployment, workload, exporter, prom_policy.pk, args.prometheus_trials)
            print(f"Prometheus (1 s scrape, 1 s evaluation) -> scale: {summary(prom_ms)}", flush=True)
        finally:
            for process in processes:
                harness.stop_process(process)
            prom.stop()
            exporter.close()

    replay = replay_figures()
    signal_p95 = summary(signal_ms)["p95_ms"] or 0.0
    print(f"pushed signal p95 {signal_p95} ms vs the HPA's sync period {HPA_SYNC_PERIOD_MS:.0f} ms")
    harness.emit(
        {
            "signal_reaction_p50_ms": summary(signal_ms)["p50_ms"],
            "signal_reaction_p95_ms": summary(signal_ms)["p95_ms"],
            "signal_trials": len(signal_ms),
            "target_signal_p95_ms": TARGET_SIGNAL_P95_MS,
            "hpa_sync_period_ms": HPA_SYNC_PERIOD_MS,
            "signal_p95_ratio_to_hpa_sync": round(signal_p95 / HPA_SYNC_PERIOD_MS, 4),
            "prometheus_reaction_p50_ms": summary(prom_ms)["p50_ms"],
            "prometheus_reaction_p95_ms": summary(prom_ms)["p95_ms"],
            "prometheus_trials": len(prom_ms),
            "target_prometheus_p95_ms": TARGET_PROMETHEUS_P95_MS,
            "replay": replay,
            "target_overload_ratio": TARGET_OVERLOAD_RATIO,
            "target_cost_ratio": TARGET_COST_RATIO,
            "target_reversals_per_10min": TARGET_REVERSALS_PER_10MIN,
            "quick": args.quick,
        }
    )
    return 0


@contextmanager
def explained(workload: Any) -> Iterator[None]:
    """On a trial's timeout, print the application's latest decisions (what the scaler thought and why)."""
    try:
        yield
    except SystemExit:
        from django.db import connections

        from apps.scaler.models import Decision

        latest = Decision.objects.filter(application_id=workload.application_id).order_by("-at")[:8]
        for d in latest:
            change = f"{d.current_replicas}->{d.desired_replicas}"
            print(f"  decision {d.at:%H:%M:%S.%f} {d.trigger} {change} {d.outcome}: {d.reason}", flush=True)
        connections.close_all()
        raise


def observed_pods(pod_model: Any, workload: Any) -> int:
    from django.db import connections

    count = pod_model.objects.filter(workload=workload, deleting=False, ready=True).count()
    connections.close_all()
    return int(count)


def set_load(exporter: Any, pod_model: Any, workload: Any, value: float) -> list[str]:
    """Every observed pod reports ``value`` (stale pods are dropped from the exporter)."""
    from django.db import connections

    pods = list(pod_model.objects.filter(workload=workload, deleting=False).values_list("name", flat=True))
    connections.close_all()
    exporter.clear(NAMESPACE)
    for pod in pods:
        exporter.set("bench_load", NAMESPACE, pod, value)
    return pods


if __name__ == "__main__":
    raise SystemExit(main())
