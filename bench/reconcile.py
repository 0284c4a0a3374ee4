"""Benchmark of cluster reconciliation against a real kube-apiserver (v1.20.2, etcd, controller-manager,
scheduler and the simulated node from tests/support/kube_node.py).

In one run:

1. creates ``--deployments`` Deployments (1 replica each, spread over 10 namespaces) and waits until their
   pods run;
2. anchor: the official ``kubernetes`` client listing the same kinds ICC observes (namespaces, nodes,
   deployments, statefulsets, daemonsets, pods, Warning events, ICC's Jobs), paginated with limit=500, into its model
   objects — the least any reconciler built on that client pays;
3. ICC's full sync of the same cluster (list + diff + bulk apply into PostgreSQL) on an empty database, and
   a second one with nothing changed; ratio full sync / anchor (target <= 3);
4. starts the watcher role (``manage.py icc_watch``) and the web role (uvicorn), subscribes a websocket
   client to an application's topic, then ``--trials`` times scales a Deployment out of band through the
   API and times (a) the change appearing in the database (drift detection; target p95 <= 1 s, where
   Argo CD polls every 180 s) and (b) the websocket message arriving (target p95 <= 200 ms);
5. the watcher's resident memory at that size.

The last line of output is one line of JSON. Run: ``.venv/bin/python bench/reconcile.py [--quick] [--deployments N]``.
The database ``icc_bench_reconcile`` and Redis db 14 are dropped and reused; never point them at data you keep.
"""

from __future__ import annotations

import json
import secrets
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: bench.harness, apps, tests

from bench import harness

TARGET_SYNC_RATIO = 3.0
TARGET_WS_P95_MS = 200.0
TARGET_DRIFT_P95_MS = 1000.0
ARGO_CD_POLL_S = 180
NAMESPACES = 10
SUFFIX = "_reconcile"  # database icc_bench_reconcile (BENCH_DATABASE_URL's name + this)
ADMIN = ("bench-admin", secrets.token_urlsafe(16))
DESIRED_SQL = "SELECT desired_replicas FROM clusters_workload WHERE cluster_id=%s AND namespace=%s AND name=%s"


# --- the cluster ----------------------------------------------------------------------------------------


def deployment(name: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0"}]},
            },
        },
    }


def populate(kube: Any, count: int) -> float:
    """Create the namespaces and Deployments; wait until every pod is Running. Returns seconds taken."""
    http = harness.kube_session(kube)
    started = time.monotonic()
    for i in range(NAMESPACES):
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"bench-{i}"}}
        http.post(f"{kube.url}/api/v1/namespaces", json=body, timeout=10).raise_for_status()

    def create(i: int) -> None:
        path = f"{kube.url}/apis/apps/v1/namespaces/bench-{i % NAMESPACES}/deployments"
        response = http.post(path, json=deployment(f"app-{i:05d}"), timeout=30)
        if response.status_code != 201:
            raise SystemExit(f"creating app-{i:05d}: {response.status_code} {response.text[:200]}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))
    deadline = time.monotonic() + max(600, count)
    running = 0
    while time.monotonic() < deadline:
        pods = http.get(f"{kube.url}/api/v1/pods", params={"fieldSelector": "status.phase=Running"}, timeout=60)
        running = sum(1 for p in pods.json()["items"] if p["metadata"]["namespace"].startswith("bench-"))
        if running >= count:
            return time.monotonic() - started
        time.sleep(2)
    raise SystemExit(f"only {running} of {count} pods running after the deadline")


def official_client_list(kube: Any) -> tuple[float, int]:
    """The anchor: list every observed kind with the official client (models), paginated by 500."""
    from kubernetes import client

    api = kube.api_client()
    core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
    calls = [
        core.list_namespace,
        core.list_node,
        apps.list_deployment_for_all_namespaces,
        apps.list_stateful_set_for_all_namespaces,
        apps.list_daemon_set_for_all_namespaces,
        core.list_pod_for_all_namespaces,
        lambda **kw: core.list_event_for_all_namespaces(field_selector="type=Warning", **kw),
        lambda **kw: batch.list_job_for_all_namespaces(label_selector="app.kubernetes.io/managed-by=icc", **kw),
    ]
    started = time.monotonic()
    objects = 0
    for call in calls:
        token = None
        while True:
            page = call(limit=500, _continue=token) if token else call(limit=500)
            objects += len(page.items)
            token = page.metadata._continue
            if not token:
                break
    return time.monotonic() - started, objects


# --- measurements through ICC ----------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the watcher runs as one process)."""
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1])
    return total / 1024


def measure_drift(
    kube: Any, cluster: Any, dsn: str, port: int, session: str, trials: int, deployments: int
) -> dict[str, list[float]]:
    """``trials`` times: subscribe a websocket to one application, scale its Deployment out of band, and time
    the new replica count in the database and the websocket message."""
    from django.db import connections
    from websockets.sync.client import connect

    from apps.clusters import events
    from apps.clusters.models import Application

    base = f"http://127.0.0.1:{port}"
    http = harness.kube_session(kube)
    drift_ms: list[float] = []
    ws_ms: list[float] = []
    with psycopg.connect(dsn, autocommit=True) as db:
        for trial in range(trials):
            index = (trial * 7919) % deployments
            name, namespace = f"app-{index:05d}", f"bench-{index % NAMESPACES}"
            app = Application.objects.get(cluster=cluster, namespace=namespace, name=name)
            connections.close_all()
            replicas = 2 + trial % 2
            with connect(
                f"ws://127.0.0.1:{port}/ws/?topics={events.application(app.pk)}",
                additional_headers={"Cookie": f"sessionid={session}", "Origin": base},
                open_timeout=10,
            ) as ws:
                ws.recv(timeout=10)  # the snapshot sent on subscribe
                received: list[float] = []

                def listen(ws: Any = ws, received: list[float] = received) -> None:
                    try:
                        ws.recv(timeout=10)
                        received.append(time.monotonic())
                    except Exception:
                        return  # no message within the timeout: counted as not delivered

                listener = threading.Thread(target=listen)
                listener.start()
                sent = time.monotonic()
                http.patch(
                    f"{kube.url}/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
                    data=json.dumps({"spec": {"replicas": replicas}}),
                    headers={"Content-Type": "application/merge-patch+json"},
                    timeout=10,
                ).raise_for_status()

                def seen(args: tuple[Any, ...] = (cluster.pk, namespace, name), want: int = replicas) -> bool:
                    row = db.execute(DESIRED_SQL, args).fetchone()
                    return bool(row and row[0] == want)

                harness.wait_for(seen, 30, f"{name} scaled in the database", 0.002)
                drift_ms.append((time.monotonic() - sent) * 1000)
                listener.join(15)
                if received:
                    ws_ms.append((received[0] - sent) * 1000)
    return {"drift_ms": drift_ms, "ws_ms": ws_ms}


def main() -> int:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--deployments", type=int, default=None, help="Deployments in the cluster (1000; quick 20)")
    parser.add_argument("--trials", type=int, default=None, help="drift/websocket trials (50; quick 5)")
    args = parser.parse_args()
    args.deployments = args.deployments or (20 if args.quick else 1000)
    args.trials = args.trials or (5 if args.quick else 50)

    processes: list[Any] = []
    with (
        harness.bench_run(SUFFIX, collectstatic=True, CLUSTER_SYNC_SECONDS="3600") as run,  # no periodic resync
        harness.kube_cluster(run.data_dir / "kube") as kube,
    ):
        from django.contrib.auth import get_user_model
        from django.db import connections

        from apps.clusters import services, sync
        from apps.clusters.models import WatchState

        get_user_model().objects.create_superuser(ADMIN[0], "bench@example.test", ADMIN[1])
        try:
            print(f"creating {args.deployments} deployments with 1 pod each ...", flush=True)
            created_s = populate(kube, args.deployments)
            print(f"  all pods running after {created_s:.1f} s", flush=True)

            anchors = [official_client_list(kube) for _ in range(3)]
            anchor_s = statistics.median(a[0] for a in anchors)
            objects = anchors[0][1]
            print(f"official client list of {objects} objects: {anchor_s * 1000:.0f} ms (median of 3)", flush=True)

            cluster = services.cluster_register(
                name="bench", auth_mode="token", api_url=kube.url, token=kube.token, ca_data=kube.ca_path.read_text()
            )
            first = sync.full_sync(cluster.pk)
            again = sync.full_sync(cluster.pk)
            changed = sum(sum(v.values()) for v in again.changes.values())
            print(f"ICC full sync (empty database): {first.seconds * 1000:.0f} ms for {first.objects} objects")
            print(f"ICC full sync (no change): {again.seconds * 1000:.0f} ms, {changed} changes", flush=True)
            connections.close_all()

            port = harness.free_port()
            web = harness.start_server(run.env, port, 1)
            processes.append(web)
            watcher = harness.start_process(run.env, "manage.py", "icc_watch")
            processes.append(watcher)
            harness.wait_ready(f"http://127.0.0.1:{port}", web)
            session = harness.login(f"http://127.0.0.1:{port}", *ADMIN)
            harness.wait_for(
                lambda: WatchState.objects.filter(cluster=cluster, connected=True).count() >= 7,
                120,
                "the watcher to connect every stream",
                0.2,
            )
            connections.close_all()
            time.sleep(2)
            rss = rss_mb(watcher.pid)
            times = measure_drift(kube, cluster, run.stores.database_url, port, session, args.trials, args.deployments)
        finally:
            for process in processes:
                harness.stop_process(process)
    drift_ms, ws_ms = times["drift_ms"], times["ws_ms"]
    drift_p95 = harness.percentile(drift_ms, 0.95)
    result = {
        "deployments": args.deployments,
        "objects": objects,
        "populate_s": round(created_s, 1),
        "official_client_list_ms": round(anchor_s * 1000, 1),
        "full_sync_ms": round(first.seconds * 1000, 1),
        "full_sync_ratio": round(first.seconds / anchor_s, 2),
        "resync_unchanged_ms": round(again.seconds * 1000, 1),
        "resync_unchanged_ratio": round(again.seconds / anchor_s, 2),
        "target_full_sync_ratio": TARGET_SYNC_RATIO,
        "drift_p50_ms": round(statistics.median(drift_ms), 1),
        "drift_p95_ms": round(drift_p95, 1),
        "target_drift_p95_ms": TARGET_DRIFT_P95_MS,
        "argo_cd_poll_ms": ARGO_CD_POLL_S * 1000,
        "drift_ratio_to_argo_poll": round(drift_p95 / (ARGO_CD_POLL_S * 1000), 5),
        "ws_delivery_p50_ms": round(statistics.median(ws_ms), 1) if ws_ms else None,
        "ws_delivery_p95_ms": round(harness.percentile(ws_ms, 0.95), 1) if ws_ms else None,
        "ws_delivered": len(ws_ms),
        "trials": args.trials,
        "target_ws_p95_ms": TARGET_WS_P95_MS,
        "watcher_rss_mb": round(rss, 1),
        "quick": args.quick,
    }
    print(f"full sync {result['full_sync_ms']} ms vs official client list {result['official_client_list_ms']} ms")
    print(f"  ratio {result['full_sync_ratio']} (target <= {TARGET_SYNC_RATIO})")
    print(f"drift detection p50 {result['drift_p50_ms']} ms, p95 {result['drift_p95_ms']} ms (target <= 1000 ms)")
    print(f"watch -> db -> websocket p50 {result['ws_delivery_p50_ms']} ms, p95 {result['ws_delivery_p95_ms']} ms")
    print(f"watcher RSS {result['watcher_rss_mb']} MB at {result['objects']} objects")
    harness.emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
