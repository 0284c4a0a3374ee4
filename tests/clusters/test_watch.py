"""The watcher role against a real kube-apiserver: watch events to the database and on to a websocket client,
410 Gone and relists, repair by resync, leases across watcher processes, and health when the API server goes
away and comes back.

Bounds stated here are generous ceilings for a loaded CI machine, not performance goals (bench/ measures those).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection
from django.db.models import F
from django.test import Client
from django.utils import timezone
from kubernetes import client
from prometheus_client import REGISTRY

from apps.audit.models import AuditEvent
from apps.clusters import gateway as gateways
from apps.clusters import services, sync
from apps.clusters.kinds import KINDS, PART_OF
from apps.clusters.models import (
    ApplicationVersion,
    Cluster,
    ClusterStatus,
    Pod,
    WarningEvent,
    WatchState,
    Workload,
)
from apps.clusters.watch import Applier, ClusterWatch, Watcher, leases
from apps.core.models import Lease
from tests.support.clusters import deployment_body as deployment
from tests.support.clusters import deployment_settled, register, service_account_token
from tests.support.components import ROOT, free_port, wait_for
from tests.support.server import running_icc, server_env, stop_process

pytestmark = [pytest.mark.timeout(45 * 60), pytest.mark.django_db(transaction=True)]

WEBSOCKET_BOUND_SECONDS = 5.0
LEASE_SECONDS = 3  # the shortest lease the settings allow


def states(cluster: Cluster) -> dict[str, WatchState]:
    return {s.kind: s for s in WatchState.objects.filter(cluster=cluster)}


def status_becomes(cluster: Cluster, status: str, timeout: float) -> Cluster:
    """Wait until the cluster row has ``status``; return it."""
    return wait_for(
        f"cluster status {status}",
        lambda: (c := Cluster.objects.get(pk=cluster.pk)).status == status and c,
        timeout=timeout,
    )


def all_streams_connected(cluster: Cluster) -> bool:
    found = states(cluster)
    return set(found) == set(KINDS) and all(s.connected for s in found.values())


def workload(cluster: Cluster, namespace: str, name: str) -> Workload | None:
    return Workload.objects.filter(cluster=cluster, namespace=namespace, name=name).first()


@pytest.fixture
def watchers() -> Iterator[Callable[..., Watcher]]:
    """Start in-process watchers (short lease, fast polling); every one still running is stopped at the end."""
    started: list[Watcher] = []

    def start(**options: Any) -> Watcher:
        options.setdefault("lease_seconds", LEASE_SECONDS)
        options.setdefault("poll_seconds", 0.5)
        watcher = Watcher(**options).start()
        started.append(watcher)
        return watcher

    yield start
    for watcher in started:
        watcher.stop()


# --- watch -> database -> websocket, through a real ICC server with the embedded watcher ------------------------


def test_watch_changes_reach_a_websocket_subscriber_within_5_seconds(
    kube_apiserver,
    api,
    namespace,
    admin_persona,
    tmp_path,
    collected_static,
):
    """Create, scale, change the image of and delete a Deployment through the real API: each change reaches the
    database and then a websocket client subscribed to the cluster's or application's topic within 5 s. The
    server is ``manage.py run`` with the watcher embedded (ICC_WATCHER_EMBEDDED=true)."""
    from websockets.sync.client import connect

    apps_api = client.AppsV1Api(api)
    cluster = register(kube_apiserver)
    browser = Client()
    assert browser.login(username=admin_persona.username, password=admin_persona.password)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    port = free_port()
    latencies: dict[str, float] = {}

    with running_icc(tmp_path, collected_static, port, ICC_WATCHER_EMBEDDED="true") as server:
        wait_for("the embedded watcher's streams", lambda: all_streams_connected(cluster), timeout=60)
        holder = leases.holder_of(cluster.pk)
        assert holder is not None and f":{server.process.pid}:" in holder, "the server process holds the lease"

        @contextlib.contextmanager
        def subscribe(topic: str) -> Iterator[Any]:
            with connect(
                f"ws://127.0.0.1:{port}/ws/?topics={topic}",
                origin=f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
                additional_headers={"Cookie": cookie},
                open_timeout=10,
            ) as ws:
                snapshot = str(ws.recv(timeout=10))
                assert "not allowed" not in snapshot and "unknown topic" not in snapshot, snapshot
                yield ws

        def measure(what: str, ws: Any, change: Callable[[], Any], applied: Callable[[], bool], shows: str = "") -> str:
            """Make the change; wait for a message that arrives once the database shows it (and contains
            ``shows``, when given). Returns that message."""
            started = time.perf_counter()
            change()
            deadline = started + WEBSOCKET_BOUND_SECONDS
            while True:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    pytest.fail(f"{what}: no websocket message showing it within {WEBSOCKET_BOUND_SECONDS}s")
                try:
                    message = str(ws.recv(timeout=remaining))
                except TimeoutError:
                    continue
                if applied() and shows in message:
                    latencies[what] = time.perf_counter() - started
                    return message

        with subscribe(f"clusters.cluster.{cluster.pk}") as cluster_ws:
            measure(
                "create",
                cluster_ws,
                lambda: apps_api.create_namespaced_deployment(
                    namespace, deployment("web", "nginx:1.19", replicas=1, labels={PART_OF: "shop"})
                ),
                lambda: workload(cluster, namespace, "web") is not None,
                shows=namespace,
            )
        web = workload(cluster, namespace, "web")
        assert web is not None and web.application.name == "shop"
        wait_for("web to run", lambda: deployment_settled(apps_api, namespace, "web"))

        with subscribe(f"clusters.application.{web.application_id}") as app_ws:
            measure(
                "scale",
                app_ws,
                lambda: apps_api.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 3}}),
                lambda: Workload.objects.filter(pk=web.pk, desired_replicas=3).exists(),
            )
            wait_for("3 pods in the database", lambda: Pod.objects.filter(workload=web, ready=True).count() == 3)
            measure(
                "image",
                app_ws,
                lambda: apps_api.patch_namespaced_deployment(
                    "web",
                    namespace,
                    {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.21"}]}}}},
                ),
                lambda: ApplicationVersion.objects.filter(application_id=web.application_id, revision="2").exists(),
                shows="nginx:1.21",
            )
            version = ApplicationVersion.objects.get(application_id=web.application_id, revision="2")
            assert version.changes == [{"container": "web", "from": "nginx:1.19", "to": "nginx:1.21"}]
            measure(
                "delete",
                app_ws,
                lambda: apps_api.delete_namespaced_deployment("web", namespace),
                lambda: not Workload.objects.filter(pk=web.pk).exists(),
            )
        # WatchState rows and last_event_at are written at most once a second (last_event_at after every stream's row).
        wait_for("the stream's counters", lambda: states(cluster)["deployments"].events_applied >= 4, timeout=10)
        wait_for("the cluster's last event", lambda: Cluster.objects.get(pk=cluster.pk).last_event_at, timeout=10)
        cluster.refresh_from_db()
        assert cluster.status == ClusterStatus.CONNECTED, cluster.last_error
        assert cluster.last_event_at is not None
    print(
        "\nwatch event -> websocket message (API call to message received): "
        + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in latencies.items())
    )
    assert set(latencies) == {"create", "scale", "image", "delete"}


# --- 410 Gone, relists and resync ---------------------------------------------------------------------------------


def compact_etcd(kube: Any) -> int:
    """Compact the test cluster's etcd up to its current revision (as kube-apiserver does every 5 minutes)."""
    args = kube.processes["etcd"].args
    url = next(a.split("=", 1)[1] for a in args if a.startswith("--listen-client-urls="))
    revision = int(requests.post(f"{url}/v3/kv/range", json={"key": "AA=="}, timeout=5).json()["header"]["revision"])
    requests.post(
        f"{url}/v3/kv/compaction", json={"revision": revision, "physical": True}, timeout=30
    ).raise_for_status()
    return revision


def warning_event(core: client.CoreV1Api, namespace: str, name: str, about: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    core.create_namespaced_event(
        namespace,
        {
            "metadata": {"name": name},
            "involvedObject": {"kind": "Deployment", "name": about, "namespace": namespace, "apiVersion": "apps/v1"},
            "reason": name,
            "message": f"{name} for the test",
            "type": "Warning",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": "icc-test"},
        },
    )


def test_410_gone_relists_without_losing_or_duplicating_state(kube_apiserver, api, namespace):
    """Streams resume from the versions of the last full sync while the cluster changed and etcd was compacted
    meanwhile. Events (which kube-apiserver 1.20 serves from etcd, not its watch cache) answer 410 Gone and
    relist; the cached kinds replay what they missed. Either way the database ends with exactly the cluster's
    state: what changed while nobody watched is there, once, and what was deleted is gone."""
    apps_api, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps_api.create_namespaced_deployment(namespace, deployment("keep", "nginx:1.19", labels={PART_OF: "shop"}))
    apps_api.create_namespaced_deployment(namespace, deployment("drop", "nginx:1.19"))
    warning_event(core, namespace, "old-warning", "keep")
    wait_for("both to run", lambda: all(deployment_settled(apps_api, namespace, n) for n in ("keep", "drop")))
    cluster = register(kube_apiserver)
    synced = sync.full_sync(cluster.pk)
    assert WarningEvent.objects.filter(cluster=cluster, namespace=namespace, reason="old-warning").exists()
    # Changes nobody watches: deployments added, removed and scaled, a warning added and one removed.
    apps_api.create_namespaced_deployment(namespace, deployment("added", "redis:6"))
    apps_api.delete_namespaced_deployment("drop", namespace)
    apps_api.patch_namespaced_deployment_scale("keep", namespace, {"spec": {"replicas": 2}})
    warning_event(core, namespace, "new-warning", "added")
    core.delete_namespaced_event("old-warning", namespace)
    wait_for("the changes to settle", lambda: deployment_settled(apps_api, namespace, "keep"))
    compacted = compact_etcd(kube_apiserver)
    assert int(synced.resource_versions["events"]) < compacted
    relists_before = REGISTRY.get_sample_value(
        "icc_clusters_watch_relists_total", {"cluster": cluster.name, "kind": "events"}
    )

    applier = Applier(0)
    applier.start()
    watch = ClusterWatch(cluster, [applier], resource_versions=synced.resource_versions)
    watch.start()
    try:
        wait_for("the events stream to relist after 410 Gone", lambda: watch.streams["events"].relists == 1)
        wait_for("every stream to watch", lambda: all(s.connected for s in watch.streams.values()))

        def mirrored() -> bool:
            rows = {w.name: w.desired_replicas for w in Workload.objects.filter(cluster=cluster, namespace=namespace)}
            warnings = set(
                WarningEvent.objects.filter(cluster=cluster, namespace=namespace).values_list("reason", flat=True)
            )
            return rows == {"keep": 2, "added": 1} and warnings == {"new-warning"}

        wait_for("the database to mirror the cluster", mirrored, timeout=15)
        # The watch goes on from the relist's version: a later change arrives as an event.
        warning_event(core, namespace, "later-warning", "keep")
        wait_for(
            "the event after the relist",
            lambda: WarningEvent.objects.filter(cluster=cluster, namespace=namespace, reason="later-warning").exists(),
        )
        assert {k: s.relists for k, s in watch.streams.items() if s.relists} == {"events": 1}, "only events were gone"
        watch.flush(force=True)
    finally:
        watch.signal_stop()
        watch.join(10)
        applier.stop()
        applier.join(10)
        connection.close()
    keep = workload(cluster, namespace, "keep")
    assert keep is not None
    assert ApplicationVersion.objects.filter(application=keep.application).count() == 1, "no duplicate version"
    assert Workload.objects.filter(cluster=cluster, namespace=namespace).count() == 2
    assert WarningEvent.objects.filter(cluster=cluster, namespace=namespace).count() == 2
    state = states(cluster)["events"]
    assert state.relists == 1 and int(state.resource_version) > compacted
    relists_after = REGISTRY.get_sample_value(
        "icc_clusters_watch_relists_total", {"cluster": cluster.name, "kind": "events"}
    )
    assert relists_after == (relists_before or 0) + 1


def test_bookmarks_move_the_version_on_and_error_events_become_domain_errors(kube_apiserver):
    """kube-apiserver 1.20 sends bookmarks too rarely to wait for one in a test; these are the messages it sends."""
    cluster = register(kube_apiserver)
    applier = Applier(0)  # not started: the queue shows what the stream hands over
    stream = ClusterWatch(cluster, [applier]).streams["pods"]
    stream.resource_version = "100"
    stream._handle({"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "250"}}})
    assert stream.resource_version == "250" and stream.submitted == 0, "a bookmark only moves the version on"
    pod = {"kind": "Pod", "metadata": {"name": "p", "namespace": "n", "resourceVersion": "260"}}
    stream._handle({"type": "MODIFIED", "object": pod})
    assert stream.resource_version == "260" and stream.submitted == 1
    job = applier.jobs.get_nowait()
    assert job is not None and (job.event_type, job.obj) == ("MODIFIED", pod)
    expired = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version: 1 (250)"}
    with pytest.raises(gateways.Gone, match=r"HTTP 410 Gone \(Expired\)"):  # ICC's words, never the body's
        stream._handle({"type": "ERROR", "object": expired})
    forbidden = {"kind": "Status", "code": 403, "reason": "Forbidden", "message": "pods is forbidden"}
    with pytest.raises(gateways.Forbidden):
        stream._handle({"type": "ERROR", "object": forbidden})


def test_a_resync_repairs_what_the_watcher_missed_while_stopped(kube_apiserver, api, namespace, watchers):
    apps_api = client.AppsV1Api(api)
    cluster = register(kube_apiserver)
    watcher = watchers()
    wait_for("the streams", lambda: all_streams_connected(cluster))
    apps_api.create_namespaced_deployment(namespace, deployment("web", "nginx:1.19"))
    apps_api.create_namespaced_deployment(namespace, deployment("tmp", "nginx:1.19"))
    rows = Workload.objects.filter(cluster=cluster, namespace=namespace)
    wait_for("the watcher to see both", lambda: rows.count() == 2)
    added = REGISTRY.get_sample_value(
        "icc_clusters_watch_events_total", {"cluster": cluster.name, "kind": "deployments", "type": "ADDED"}
    )
    assert added is not None and added >= 2
    assert (REGISTRY.get_sample_value("icc_clusters_watch_apply_seconds_count", {"kind": "deployments"}) or 0) >= 2
    lag = REGISTRY.get_sample_value("icc_clusters_watch_lag_seconds", {"cluster": cluster.name, "kind": "deployments"})
    assert lag is not None and 0 <= lag < 30
    watcher.stop()
    lag_series = {"cluster": cluster.name, "kind": "deployments"}
    assert REGISTRY.get_sample_value("icc_clusters_watch_lag_seconds", lag_series) is None, "no stale series"
    assert leases.holder_of(cluster.pk) is None, "a clean stop releases the lease"
    assert not any(s.connected for s in states(cluster).values())

    apps_api.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 4}})
    apps_api.delete_namespaced_deployment("tmp", namespace)
    wait_for("the change to be done", lambda: deployment_settled(apps_api, namespace, "web"))
    time.sleep(1)
    assert workload(cluster, namespace, "web").desired_replicas == 1, "nobody watched: the row is stale"
    assert workload(cluster, namespace, "tmp") is not None

    result = sync.full_sync(cluster.pk)
    assert result.changes["deployments"]["updated"] >= 1 and result.changes["deployments"]["deleted"] >= 1
    assert workload(cluster, namespace, "web").desired_replicas == 4
    assert workload(cluster, namespace, "tmp") is None


def test_new_paused_resumed_and_removed_clusters_are_followed_within_seconds(
    kube_apiserver,
    api,
    namespace,
    watchers,
):
    """The watcher polls the cluster table every couple of seconds (0.5 s here): a registered cluster is watched,
    a paused one dropped (lease released, nothing applied), a resumed one watched again (its relist repairs what
    changed meanwhile), a removed one dropped. Bound: 10 s each."""
    apps_api = client.AppsV1Api(api)
    watcher = watchers()
    time.sleep(1)
    cluster = register(kube_apiserver)
    wait_for("the new cluster to be watched", lambda: all_streams_connected(cluster), timeout=10)
    assert leases.holder_of(cluster.pk) == watcher.holder

    services.cluster_set_paused(cluster, paused=True, reason="maintenance")
    wait_for("the paused cluster to be dropped", lambda: cluster.pk not in watcher.clusters, timeout=10)
    wait_for("its lease to be released", lambda: leases.holder_of(cluster.pk) is None, timeout=10)
    wait_for("its streams to show it", lambda: not any(s.connected for s in states(cluster).values()), timeout=10)
    apps_api.create_namespaced_deployment(namespace, deployment("while-paused", "nginx:1.19"))
    time.sleep(2)
    assert workload(cluster, namespace, "while-paused") is None, "a paused cluster is not watched"
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.PAUSED

    services.cluster_set_paused(Cluster.objects.get(pk=cluster.pk), paused=False, reason="done")
    wait_for("the resumed cluster's relist", lambda: workload(cluster, namespace, "while-paused") is not None, 10)
    wait_for("connected", lambda: Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.CONNECTED, timeout=10)

    streams = list(watcher.clusters[cluster.pk].streams.values())
    services.cluster_delete(Cluster.objects.get(pk=cluster.pk), confirm=cluster.name, reason="test")
    wait_for("the removed cluster to be dropped", lambda: cluster.pk not in watcher.clusters, timeout=10)
    wait_for("its streams to end", lambda: not any(s.is_alive() for s in streams), timeout=10)
    assert watcher.running()


# --- leases --------------------------------------------------------------------------------------------------------


def test_concurrent_lease_takers_have_exactly_one_winner(kube_apiserver):
    cluster = register(kube_apiserver)
    barrier = threading.Barrier(8)

    def race(team: str) -> list[str]:
        winners: list[str] = []

        def take(holder: str) -> None:
            try:
                barrier.wait(10)
                if leases.acquire(cluster.pk, holder, 30):
                    winners.append(holder)
            finally:
                connection.close()

        threads = [threading.Thread(target=take, args=(f"{team}-{i}",)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        return winners

    first = race("a")  # nobody held it: one INSERT wins
    assert len(first) == 1 and leases.holder_of(cluster.pk) == first[0]
    assert race("b") == [], "a valid lease is nobody else's"
    Lease.objects.filter(name=leases.lease_name(cluster.pk)).update(expires_at=timezone.now() - timedelta(seconds=1))
    second = race("c")  # it expired: one conditional UPDATE wins
    assert len(second) == 1 and leases.holder_of(cluster.pk) == second[0]
    assert leases.renew([cluster.pk], first[0], 30) == set(), "the old holder cannot renew"
    assert leases.renew([cluster.pk], second[0], 30) == {cluster.pk}


def test_only_one_watcher_holds_a_cluster_and_another_takes_over_when_it_dies(
    kube_apiserver,
    api,
    namespace,
    watchers,
):
    """Two watchers, a 3 s lease: the first keeps the cluster by renewing; when it dies without releasing, the
    second takes over once the lease expired (bound: lease + 5 s) and applies the cluster's changes."""
    apps_api = client.AppsV1Api(api)
    cluster = register(kube_apiserver)
    first = watchers(holder="replica-a")
    wait_for("replica-a to watch", lambda: all_streams_connected(cluster))
    second = watchers(holder="replica-b")
    time.sleep(2 * LEASE_SECONDS)  # longer than a lease: only renewals keep it
    assert leases.holder_of(cluster.pk) == "replica-a"
    assert list(first.clusters) == [cluster.pk] and second.clusters == {}

    died = time.monotonic()
    first.stop(release=False)  # a crash: the lease stays until it expires
    assert leases.holder_of(cluster.pk) == "replica-a"
    wait_for("replica-b to take over", lambda: leases.holder_of(cluster.pk) == "replica-b", timeout=LEASE_SECONDS + 5)
    took = time.monotonic() - died
    print(f"\nwatch lease takeover after the holder died: {took:.1f}s (lease {LEASE_SECONDS}s)")
    assert took >= 1.0, "not before the lease expired"
    wait_for("replica-b's streams", lambda: list(second.clusters) == [cluster.pk] and all_streams_connected(cluster))
    apps_api.create_namespaced_deployment(namespace, deployment("after", "nginx:1.19"))
    wait_for("replica-b to apply events", lambda: workload(cluster, namespace, "after") is not None, timeout=10)


def test_a_watcher_that_loses_its_lease_stops_watching(kube_apiserver, api, namespace, watchers):
    apps_api = client.AppsV1Api(api)
    cluster = register(kube_apiserver)
    watcher = watchers(holder="replica-a")
    wait_for("the streams", lambda: all_streams_connected(cluster))
    streams = list(watcher.clusters[cluster.pk].streams.values())
    # Another replica took the lease (say replica-a was paused longer than its lease).
    Lease.objects.filter(name=leases.lease_name(cluster.pk)).update(
        holder="replica-b", expires_at=timezone.now() + timedelta(seconds=600), generation=F("generation") + 1
    )
    wait_for("replica-a to give the cluster up", lambda: watcher.clusters == {}, timeout=LEASE_SECONDS + 3)
    wait_for("its streams to end", lambda: not any(s.is_alive() for s in streams), timeout=10)
    apps_api.create_namespaced_deployment(namespace, deployment("unseen", "nginx:1.19"))
    time.sleep(2)
    assert workload(cluster, namespace, "unseen") is None, "no longer applied by replica-a"
    assert leases.holder_of(cluster.pk) == "replica-b"


def test_sigterm_releases_the_lease_and_another_replica_takes_over_at_once(kube_apiserver, tmp_path):
    """Two ``manage.py icc_watch`` processes with a 60 s lease: one holds the cluster; SIGTERM makes it release
    its lease and exit, and the other takes over within seconds, long before the lease would have expired."""
    cluster = register(kube_apiserver)
    env = server_env(CLUSTER_WATCH_LEASE_SECONDS="60", ICC_DATA_DIR=str(tmp_path))
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        for index in range(2):
            log_path = tmp_path / f"watch-{index}.log"
            logs.append(log_path)
            with log_path.open("wb") as log:
                command = [sys.executable, "manage.py", "icc_watch"]
                processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        holder = wait_for("one process to hold the lease", lambda: leases.holder_of(cluster.pk), timeout=60)
        by_pid = {p.pid: p for p in processes}
        owner = by_pid[int(holder.split(":")[1])]
        other = next(p for p in processes if p is not owner)
        wait_for("its streams", lambda: all_streams_connected(cluster), timeout=60)
        time.sleep(1)
        assert leases.holder_of(cluster.pk) == holder, "the other process did not take it"

        stopped = time.monotonic()
        owner.send_signal(signal.SIGTERM)
        assert owner.wait(20) == 0
        new_holder = wait_for(
            "the other process to take over",
            lambda: (h := leases.holder_of(cluster.pk)) not in (None, holder) and h,
            timeout=15,
        )
        took = time.monotonic() - stopped
        print(f"\nwatch lease handover after SIGTERM: {took:.1f}s (lease 60s)")
        assert f":{other.pid}:" in new_holder
        assert took < 30, "released, not expired"
        assert "leases released" in logs[processes.index(owner)].read_text()
    finally:
        for process in processes:
            stop_process(process)  # SIGTERM, then SIGKILL after 20 s
        for log_path in logs:
            print(log_path.read_text()[-3000:], file=sys.stderr)
    assert leases.holder_of(cluster.pk) is None, "every process released its lease"


def sqlite_env(data_dir: Path) -> dict[str, str]:
    """The embedded default's environment: SQLite in ``data_dir``, no Redis (keys as in the test run)."""
    drop = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_", "PYTEST_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(ICC_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", LOG_FORMAT="text")
    return env


def in_sqlite(env: dict[str, str], code: str) -> str:
    script = "import django; django.setup()\n" + textwrap.dedent(code)
    command = [sys.executable, "-c", script]
    env = {**env, "DJANGO_SETTINGS_MODULE": "iccapp.settings"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_the_watcher_and_its_leases_work_on_the_embedded_sqlite_default(kube_apiserver, tmp_path):
    """Two ``manage.py icc_watch`` processes on one SQLite database: one takes the lease and mirrors the cluster,
    SIGTERM releases it and the other takes over."""
    env = sqlite_env(tmp_path)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    cluster_id = int(
        in_sqlite(
            env,
            f"""
            from apps.clusters import services
            cluster = services.cluster_register(
                name="embedded", auth_mode="token", api_url={kube_apiserver.url!r}, token={kube_apiserver.token!r},
                ca_data=open({str(kube_apiserver.ca_path)!r}).read(),
            )
            print(cluster.pk)
            """,
        )
    )
    state = f"""
        from apps.clusters.watch import leases
        from apps.clusters.models import Cluster, Namespace, WatchState
        connected = WatchState.objects.filter(cluster_id={cluster_id}, connected=True).count()
        namespaces = Namespace.objects.filter(cluster_id={cluster_id}, name="kube-system").count()
        status = Cluster.objects.get(pk={cluster_id}).status
        print(leases.holder_of({cluster_id}) or "-", connected, namespaces, status)
        """
    processes = []
    try:
        for index in range(2):
            log = (tmp_path / f"watch-{index}.log").open("wb")
            processes.append(
                subprocess.Popen([sys.executable, "manage.py", "icc_watch"], cwd=ROOT, env=env, stdout=log, stderr=log)
            )

        def mirrored() -> str | None:
            seen = in_sqlite(env, state)
            return seen if seen.endswith(f" {len(KINDS)} 1 connected") else None

        seen = wait_for("a holder mirroring the cluster", mirrored, timeout=60)
        holder = seen.split()[0]
        owner = next(p for p in processes if f":{p.pid}:" in holder)
        other = next(p for p in processes if p is not owner)
        owner.send_signal(signal.SIGTERM)
        assert owner.wait(20) == 0
        wait_for("the other process to take over", lambda: f":{other.pid}:" in in_sqlite(env, state), timeout=30)
    finally:
        for process in processes:
            stop_process(process)  # SIGTERM, then SIGKILL after 20 s
        for index in range(len(processes)):
            print((tmp_path / f"watch-{index}.log").read_text()[-2000:], file=sys.stderr)


# --- health ---

READ_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["namespaces", "nodes", "pods", "events"], "verbs": ["list", "watch"]},
    {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets"], "verbs": ["list", "watch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list", "watch"]},
]


class TcpProxy:
    """A TCP forwarder on a fixed loopback port that can be stopped (connections cut, port closed) and started."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                downstream, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                downstream.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    downstream.close()
                    upstream.close()
                    return
                self._sockets.update((downstream, upstream))
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass  # either side closed (the test cut the proxy): this direction of the copy ends
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def test_a_cluster_that_stops_answering_is_unreachable_then_recovers_by_itself(
    kube_apiserver,
    api,
    namespace,
    watchers,
):
    """The session's API server registered a second time behind a TCP proxy: cutting the proxy turns the cluster
    unreachable with the error shown (bound 20 s); restoring it brings the cluster back to connected by itself
    (bound 30 s, the reconnect backoff is capped at 10 s) with what changed meanwhile."""
    apps_api = client.AppsV1Api(api)
    target_port = int(kube_apiserver.url.rsplit(":", 1)[1])
    proxy = TcpProxy(target_port).start()
    try:
        cluster = register(kube_apiserver, api_url=f"https://127.0.0.1:{proxy.port}")
        watchers()
        wait_for("connected", lambda: Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.CONNECTED, timeout=30)
        wait_for("the stream states", lambda: all_streams_connected(cluster), timeout=10)

        cut = time.monotonic()
        proxy.stop()
        down = status_becomes(cluster, ClusterStatus.UNREACHABLE, timeout=20)
        print(f"\nunreachable noticed after {time.monotonic() - cut:.1f}s: {down.last_error}")
        assert "connection refused" in down.last_error and f"127.0.0.1:{proxy.port}" in down.last_error
        assert down.last_error_at is not None
        assert REGISTRY.get_sample_value("icc_clusters_status", {"cluster": cluster.name, "status": "unreachable"}) == 1
        wait_for("the stream states to show it", lambda: not any(s.connected for s in states(cluster).values()))
        assert all("connection refused" in s.last_error for s in states(cluster).values())
        assert AuditEvent.objects.filter(action="clusters.cluster.health", message__contains="-> unreachable").exists()

        # Meanwhile, the cluster changes.
        apps_api.create_namespaced_deployment(namespace, deployment("meanwhile", "nginx:1.19"))

        restored = time.monotonic()
        proxy.start()
        up = status_becomes(cluster, ClusterStatus.CONNECTED, timeout=30)
        print(f"recovered {time.monotonic() - restored:.1f}s after the API server came back")
        assert up.last_error == ""
        wait_for("what changed meanwhile", lambda: workload(cluster, namespace, "meanwhile") is not None, timeout=15)
        wait_for("the stream states", lambda: all_streams_connected(cluster), timeout=10)
    finally:
        proxy.stop()


def test_a_kind_icc_may_no_longer_watch_makes_the_cluster_degraded(kube_apiserver, api, watchers):
    """RBAC loses the right to watch events after registration: that stream fails with 403, the others work, and
    the cluster is degraded naming the kind; granting it again brings it back to connected."""
    rbac = client.RbacAuthorizationV1Api(api)
    role_name = f"icc-watch-{uuid.uuid4().hex[:8]}"
    token = service_account_token(kube_apiserver, name=role_name, rules=READ_RULES)
    cluster = services.cluster_register(
        name=f"c-{uuid.uuid4().hex[:8]}",
        auth_mode="token",
        api_url=kube_apiserver.url,
        token=token,
        ca_data=kube_apiserver.ca_path.read_text(),
    )
    without_events = [{**READ_RULES[0], "resources": ["namespaces", "nodes", "pods"]}, *READ_RULES[1:]]
    rbac.patch_cluster_role(role_name, {"rules": without_events})
    try:
        watchers()
        degraded = status_becomes(cluster, ClusterStatus.DEGRADED, timeout=30)
        assert "watch events" in degraded.last_error and "forbidden" in degraded.last_error.lower()
        # The stream's row is flushed at most every FLUSH_SECONDS, so it may trail the cluster's status.
        found = wait_for("the events stream's row", lambda: (rows := states(cluster)) and "events" in rows and rows)
        assert not found["events"].connected and "forbidden" in found["events"].last_error.lower()
        wait_for("the other streams", lambda: all(s.connected for k, s in states(cluster).items() if k != "events"))
    finally:
        rbac.patch_cluster_role(role_name, {"rules": READ_RULES})
    wait_for("connected again", lambda: Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.CONNECTED, 30)
