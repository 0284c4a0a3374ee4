"""Full sync and event application against a real kube-apiserver (with controller-manager, scheduler and the
simulated node, so Deployments, StatefulSets and DaemonSets really get pods).

Each test works in its own namespace and registers its own cluster row for the shared API server, so it reads
only its namespace's rows (other modules' objects may exist in the cluster).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from django.db import connection, transaction
from kubernetes import client

from apps.clusters import gateway as gateways
from apps.clusters import services, sync
from apps.clusters.kinds import PART_OF
from apps.clusters.models import (
    Application,
    ApplicationVersion,
    Cluster,
    ClusterStatus,
    Namespace,
    Node,
    Pod,
    WarningEvent,
    Workload,
)
from apps.core.locks import advisory_lock
from tests.support.clusters import deployment_body as deployment
from tests.support.clusters import deployment_settled, register
from tests.support.components import wait_for

pytestmark = [pytest.mark.timeout(45 * 60), pytest.mark.django_db(transaction=True)]

APP_NAME = "app.kubernetes.io/name"


# --- helpers ---------------------------------------------------------------------------------------------------


def rolled_out_to(gateway: gateways.Gateway, path: str, revision: str) -> dict[str, Any] | None:
    """The Deployment at ``path`` once its controller gave it ``revision`` (else None)."""
    obj: dict[str, Any] = gateway.get(path)
    annotations = obj["metadata"].get("annotations") or {}
    return obj if annotations.get("deployment.kubernetes.io/revision") == revision else None


def namespace_pods(core: client.CoreV1Api, namespace: str) -> dict[str, Any]:
    return {p.metadata.name: p for p in core.list_namespaced_pod(namespace).items}


def rows_of(namespace: str, cluster: Cluster) -> dict[str, list[tuple[Any, ...]]]:
    """What the database holds for one namespace: every row's id, resourceVersion and update time."""
    fields = ("id", "resource_version", "updated_at")
    return {
        "workloads": sorted(Workload.objects.filter(cluster=cluster, namespace=namespace).values_list(*fields)),
        "pods": sorted(Pod.objects.filter(cluster=cluster, namespace=namespace).values_list(*fields)),
        "events": sorted(WarningEvent.objects.filter(cluster=cluster, namespace=namespace).values_list(*fields)),
        "namespace": sorted(Namespace.objects.filter(cluster=cluster, name=namespace).values_list(*fields)),
        "versions": sorted(
            ApplicationVersion.objects.filter(
                application__cluster=cluster, application__namespace=namespace
            ).values_list("id", "revision", "observed_at")
        ),
    }


# --- full sync ---------------------------------------------------------------------------------------------------


def test_full_sync_mirrors_namespaces_workloads_pods_and_warnings(kube_apiserver, api, namespace):
    apps_api, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps_api.create_namespaced_deployment(
        namespace, deployment("web", "nginx:1.19", replicas=2, labels={PART_OF: "shop", APP_NAME: "web"})
    )
    apps_api.create_namespaced_deployment(namespace, deployment("api", "api:3.1", labels={APP_NAME: "api-svc"}))
    apps_api.create_namespaced_stateful_set(
        namespace,
        {
            "metadata": {"name": "db"},
            "spec": {
                "serviceName": "db",
                "replicas": 1,
                "selector": {"matchLabels": {"icc-test/app": "db"}},
                "template": {
                    "metadata": {"labels": {"icc-test/app": "db"}},
                    "spec": {"containers": [{"name": "postgres", "image": "postgres:13"}]},
                },
            },
        },
    )
    apps_api.create_namespaced_daemon_set(
        namespace,
        {
            "metadata": {"name": "agent", "labels": {PART_OF: "shop"}},
            "spec": {
                "selector": {"matchLabels": {"icc-test/app": "agent"}},
                "template": {
                    "metadata": {"labels": {"icc-test/app": "agent"}},
                    "spec": {"containers": [{"name": "agent", "image": "agent:0.9"}]},
                },
            },
        },
    )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for kind, name, event_type, reason in (
        ("Deployment", "web", "Warning", "DiskPressure"),
        ("Deployment", "web", "Normal", "Calm"),
    ):
        core.create_namespaced_event(
            namespace,
            {
                "metadata": {"name": f"{name}.{uuid.uuid4().hex[:10]}"},
                "involvedObject": {"kind": kind, "name": name, "namespace": namespace, "apiVersion": "apps/v1"},
                "reason": reason,
                "message": f"{reason} observed by the test",
                "type": event_type,
                "count": 1,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "source": {"component": "icc-test"},
            },
        )

    def everything_runs() -> bool:
        sts = apps_api.read_namespaced_stateful_set_status("db", namespace).status
        ds = apps_api.read_namespaced_daemon_set_status("agent", namespace).status
        return (
            deployment_settled(apps_api, namespace, "web")
            and deployment_settled(apps_api, namespace, "api")
            and (sts.ready_replicas or 0) == 1
            and ds.desired_number_scheduled >= 1
            and ds.number_ready == ds.desired_number_scheduled
            and ds.number_available == ds.desired_number_scheduled
        )

    wait_for("the workloads' pods to run (controller-manager, scheduler, node)", everything_runs, timeout=90)
    cluster = register(kube_apiserver)

    started = time.monotonic()
    result = sync.full_sync(cluster.pk)
    print(f"\nfull sync: {result.objects} objects in {time.monotonic() - started:.2f}s")
    assert not result.skipped
    cluster.refresh_from_db()
    assert cluster.status == ClusterStatus.CONNECTED, cluster.last_error
    assert cluster.last_full_sync_at is not None and cluster.last_sync_duration_ms is not None
    assert cluster.server_version == "v1.20.2"

    ns_row = Namespace.objects.get(cluster=cluster, name=namespace)
    assert ns_row.phase == "Active" and ns_row.labels == {"icc-test": "yes"}
    node = Node.objects.get(cluster=cluster, name=kube_apiserver.node.name)
    assert node.ready and not node.cordoned and node.kubelet_version == "v1.20.2"

    workloads = {w.name: w for w in Workload.objects.filter(cluster=cluster, namespace=namespace)}
    assert {(w.kind, w.name) for w in workloads.values()} == {
        ("Deployment", "web"),
        ("Deployment", "api"),
        ("StatefulSet", "db"),
        ("DaemonSet", "agent"),
    }
    web, api_w, db, agent = workloads["web"], workloads["api"], workloads["db"], workloads["agent"]
    assert (web.desired_replicas, web.ready_replicas, web.available_replicas, web.updated_replicas) == (2, 2, 2, 2)
    assert web.images == [{"container": "web", "image": "nginx:1.19"}]
    assert web.rollout_state == "complete" and web.revision == "1"
    assert web.selector == {"icc-test/app": "web"}
    assert (api_w.desired_replicas, api_w.ready_replicas) == (1, 1)
    assert (db.desired_replicas, db.ready_replicas) == (1, 1)
    assert db.images == [{"container": "postgres", "image": "postgres:13"}]
    ds_status = apps_api.read_namespaced_daemon_set_status("agent", namespace).status
    assert agent.desired_replicas == agent.ready_replicas == ds_status.desired_number_scheduled

    # Applications: part-of, else name, else the workload's own name.
    assert web.application.name == agent.application.name == "shop"
    assert web.application.label_source == PART_OF
    assert api_w.application.name == "api-svc" and api_w.application.label_source == APP_NAME
    assert db.application.name == "db" and db.application.label_source == "workload"
    assert set(Application.objects.filter(cluster=cluster, namespace=namespace).values_list("name", flat=True)) == {
        "shop",
        "api-svc",
        "db",
    }

    # Every pod of the namespace, linked to its workload and application, with its observed state.
    listed = namespace_pods(core, namespace)
    pods = {p.name: p for p in Pod.objects.filter(cluster=cluster, namespace=namespace)}
    assert set(pods) == set(listed)
    expected_owner = {"web": web, "api": api_w, "db": db, "agent": agent}
    for name, pod in pods.items():
        owner = expected_owner[listed[name].metadata.labels["icc-test/app"]]
        assert pod.workload_id == owner.pk, name
        assert pod.application_id == owner.application_id, name
        assert pod.phase == "Running" and pod.ready, name
        assert pod.node_name == kube_apiserver.node.name
        assert pod.uid == listed[name].metadata.uid
    assert sum(1 for p in pods.values() if p.workload_id == web.pk) == 2

    # Warning events only, linked to the application of the object they are about.
    warnings = list(WarningEvent.objects.filter(cluster=cluster, namespace=namespace))
    assert [(w.reason, w.object_kind, w.object_name) for w in warnings] == [("DiskPressure", "Deployment", "web")]
    assert warnings[0].application_id == web.application_id

    # A first version per workload.
    versions = ApplicationVersion.objects.filter(application=web.application, workload_name="web")
    assert [(v.revision, v.images, v.changes) for v in versions] == [("1", web.images, [])]

    # Idempotent: nothing in the namespace changes on a second sync (retried if the cluster itself moved on).
    for _ in range(5):
        before_rvs = {n: p.metadata.resource_version for n, p in namespace_pods(core, namespace).items()}
        before = rows_of(namespace, cluster)
        second = sync.full_sync(cluster.pk)
        after_rvs = {n: p.metadata.resource_version for n, p in namespace_pods(core, namespace).items()}
        if before_rvs == after_rvs:
            break
    assert not second.skipped
    assert rows_of(namespace, cluster) == before
    assert second.changes["deployments"]["created"] == 0 and second.changes["pods"]["created"] == 0


def test_full_sync_is_single_flight_per_cluster(kube_apiserver):
    cluster = register(kube_apiserver)
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:  # another process' sync: a different database session holds the lock
        try:
            with advisory_lock(f"clusters.sync:{cluster.pk}") as got:
                assert got
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    other = threading.Thread(target=hold_the_lock)
    other.start()
    try:
        assert holding.wait(10)
        result = sync.full_sync(cluster.pk)
        assert result.skipped == "a sync of this cluster is already running"
        assert result.objects == 0
        assert not Workload.objects.filter(cluster=cluster).exists()
    finally:
        release.set()
        other.join(10)
    assert not sync.full_sync(cluster.pk).skipped, "runs once the other sync is over"


def test_a_deleted_object_disappears_and_an_image_change_is_a_new_version(kube_apiserver, api, namespace):
    apps_api, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps_api.create_namespaced_deployment(namespace, deployment("web", "nginx:1.19", labels={PART_OF: "shop"}))
    apps_api.create_namespaced_deployment(namespace, deployment("cron", "busybox:1.32"))
    wait_for(
        "both deployments to run", lambda: all(deployment_settled(apps_api, namespace, n) for n in ("web", "cron"))
    )
    cluster = register(kube_apiserver)
    sync.full_sync(cluster.pk)
    cron = Workload.objects.get(cluster=cluster, namespace=namespace, name="cron")
    cron_pods = set(Pod.objects.filter(workload=cron).values_list("name", flat=True))
    assert len(cron_pods) == 1

    apps_api.delete_namespaced_deployment("cron", namespace, propagation_policy="Foreground")

    def cron_gone() -> bool:
        deployments = {d.metadata.name for d in apps_api.list_namespaced_deployment(namespace).items}
        return "cron" not in deployments and not set(namespace_pods(core, namespace)) & cron_pods

    wait_for("the cron deployment and its pods to be gone", cron_gone)
    apps_api.patch_namespaced_deployment(
        "web", namespace, {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.21"}]}}}}
    )
    wait_for("the new web rollout", lambda: deployment_settled(apps_api, namespace, "web"))

    result = sync.full_sync(cluster.pk)
    assert result.changes["deployments"]["deleted"] >= 1
    assert not Workload.objects.filter(cluster=cluster, namespace=namespace, name="cron").exists()
    assert not Pod.objects.filter(cluster=cluster, namespace=namespace, name__in=cron_pods).exists()
    assert Application.objects.get(cluster=cluster, namespace=namespace, name="cron").active is False
    web = Workload.objects.get(cluster=cluster, namespace=namespace, name="web")
    assert web.images == [{"container": "web", "image": "nginx:1.21"}] and web.revision == "2"
    history = list(ApplicationVersion.objects.filter(application=web.application).order_by("observed_at", "id"))
    assert [(v.revision, v.changes) for v in history] == [
        ("1", []),
        ("2", [{"container": "web", "from": "nginx:1.19", "to": "nginx:1.21"}]),
    ]
    pods = Pod.objects.filter(cluster=cluster, namespace=namespace)
    assert {p.containers[0]["image"] for p in pods} == {"nginx:1.21"}, "old pods are gone, new ones are linked"
    assert all(p.workload_id == web.pk for p in pods)


def test_full_sync_does_not_put_back_what_a_watch_event_changed_meanwhile(kube_apiserver, api, namespace):
    """The sync's diff is read without locks; a watch event committed between that read and the sync's write
    must win (the sync re-checks each row's resourceVersion under a row lock before writing)."""
    apps_api = client.AppsV1Api(api)
    apps_api.create_namespaced_deployment(namespace, deployment("web", "nginx:1.19", replicas=1))
    wait_for("web to run", lambda: deployment_settled(apps_api, namespace, "web"))
    cluster = register(kube_apiserver)
    sync.full_sync(cluster.pk)
    web = Workload.objects.get(cluster=cluster, namespace=namespace, name="web")
    # Pretend the row is old, so the next sync wants to update it ...
    Workload.objects.filter(pk=web.pk).update(resource_version="1")
    committed_at: list[float] = []
    locked = threading.Event()

    def watch_event_in_flight() -> None:
        # ... while a watch event from the future is being applied: the row is locked and changed, not committed.
        try:
            with transaction.atomic():
                Workload.objects.select_for_update().filter(pk=web.pk).update(
                    resource_version="999999999", desired_replicas=7
                )
                locked.set()
                time.sleep(2.0)
            committed_at.append(time.monotonic())
        finally:
            connection.close()

    writer = threading.Thread(target=watch_event_in_flight)
    writer.start()
    assert locked.wait(10)
    sync.full_sync(cluster.pk)
    finished = time.monotonic()
    writer.join(10)
    assert committed_at and finished >= committed_at[0], "the sync waited for the row lock"
    web.refresh_from_db()
    assert (web.resource_version, web.desired_replicas) == ("999999999", 7), "the newer watch write stands"


# --- single events --------------------------------------------------------------------------------------------


def test_events_apply_in_resource_version_order_only(kube_apiserver, api, namespace):
    """An event older than the row is ignored; a DELETED of an old incarnation leaves the recreated object."""
    apps_api = client.AppsV1Api(api)
    cluster = register(kube_apiserver)
    gateway = gateways.for_cluster(cluster)
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    apps_api.create_namespaced_deployment(namespace, deployment("web", "nginx:1.19", replicas=1))
    first = wait_for("revision 1", lambda: rolled_out_to(gateway, f"{path}/web", "1"))
    apps_api.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 3}})
    second = gateway.get(f"{path}/web")

    assert sync.apply_event(cluster, "deployments", "ADDED", first)
    assert sync.apply_event(cluster, "deployments", "MODIFIED", second)
    assert not sync.apply_event(cluster, "deployments", "MODIFIED", second), "the same version twice"
    assert not sync.apply_event(cluster, "deployments", "MODIFIED", first), "an older version"
    web = Workload.objects.get(cluster=cluster, namespace=namespace, name="web")
    assert web.desired_replicas == 3 and web.resource_version == second["metadata"]["resourceVersion"]
    assert ApplicationVersion.objects.filter(application=web.application).count() == 1

    apps_api.delete_namespaced_deployment("web", namespace)
    wait_for("web to be gone", lambda: not apps_api.list_namespaced_deployment(namespace).items)
    apps_api.create_namespaced_deployment(namespace, deployment("web", "nginx:1.21", replicas=2))
    recreated = wait_for("revision 1", lambda: rolled_out_to(gateway, f"{path}/web", "1"))
    assert sync.apply_event(cluster, "deployments", "ADDED", recreated)
    old_deletion = {**second, "metadata": {**second["metadata"]}}  # the first incarnation's DELETED, late
    assert not sync.apply_event(cluster, "deployments", "DELETED", old_deletion)
    web.refresh_from_db()
    assert web.uid == recreated["metadata"]["uid"] and web.desired_replicas == 2
    assert [c["to"] for v in web.application.versions.all() for c in v.changes] == ["nginx:1.21"]

    assert sync.apply_event(cluster, "deployments", "DELETED", recreated)
    assert not Workload.objects.filter(pk=web.pk).exists()
    assert Application.objects.get(pk=web.application_id).active is False


def test_an_image_edit_becomes_one_version_when_the_controller_rolls_it_out(kube_apiserver, api, namespace):
    """The watch sees the edited template first (new image, old revision), then the controller's new revision:
    one version entry, naming the image change, not two."""
    apps_api = client.AppsV1Api(api)
    cluster = register(kube_apiserver)
    gateway = gateways.for_cluster(cluster)
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    apps_api.create_namespaced_deployment(namespace, deployment("web", "nginx:1.19"))
    created = wait_for("revision 1", lambda: rolled_out_to(gateway, path, "1"))
    assert sync.apply_event(cluster, "deployments", "ADDED", created)
    edited = gateway.patch(
        path, {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.21"}]}}}}
    )
    assert edited["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1", (
        "as written, before the controller"
    )
    assert sync.apply_event(cluster, "deployments", "MODIFIED", edited)
    web = Workload.objects.get(cluster=cluster, namespace=namespace, name="web")
    assert web.images == [{"container": "web", "image": "nginx:1.21"}]
    assert [v.revision for v in web.application.versions.all()] == ["1"], "no rollout yet"
    assert sync.apply_event(
        cluster, "deployments", "MODIFIED", wait_for("revision 2", lambda: rolled_out_to(gateway, path, "2"))
    )
    history = list(web.application.versions.order_by("observed_at", "id").values_list("revision", "changes"))
    assert history == [("1", []), ("2", [{"container": "web", "from": "nginx:1.19", "to": "nginx:1.21"}])]
    # A rollout restart changes no image: the entry names the revisions.
    services.workload_restart(web, reason="test")
    restarted = wait_for("revision 3", lambda: rolled_out_to(gateway, path, "3"))
    assert sync.apply_event(cluster, "deployments", "MODIFIED", restarted)
    assert web.application.versions.order_by("-observed_at", "-id").first().changes == [
        {"container": "", "from": "revision 2", "to": "revision 3"}
    ]


def test_a_relist_links_pods_seen_before_their_workload(kube_apiserver, api, namespace):
    apps_api, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps_api.create_namespaced_deployment(namespace, deployment("web", "nginx:1.19", replicas=2, labels={PART_OF: "a"}))
    wait_for("web to run", lambda: deployment_settled(apps_api, namespace, "web"))
    cluster = register(kube_apiserver)
    gateway = gateways.for_cluster(cluster)
    # The pods stream relists before the deployments stream: the pods have no workload yet ...
    rows, list_rv = sync.list_kind(gateway, "pods")
    sync.relist_apply(cluster, "pods", rows, list_rv)
    pods = Pod.objects.filter(cluster=cluster, namespace=namespace)
    assert pods.count() == 2 and not pods.filter(workload__isnull=False).exists()
    # ... and get it when the deployments arrive.
    rows, list_rv = sync.list_kind(gateway, "deployments")
    result = sync.relist_apply(cluster, "deployments", rows, list_rv)
    assert result.changes["deployments"]["created"] >= 1
    web = Workload.objects.get(cluster=cluster, namespace=namespace, name="web")
    assert set(pods.values_list("workload_id", "application_id")) == {(web.pk, web.application_id)}
    assert set(pods.values_list("name", flat=True)) == set(namespace_pods(core, namespace))

    # A label change moves the workload, and its pods, to another application.
    apps_api.patch_namespaced_deployment("web", namespace, {"metadata": {"labels": {PART_OF: "b"}}})
    moved = gateway.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
    assert sync.apply_event(cluster, "deployments", "MODIFIED", moved)
    web.refresh_from_db()
    assert web.application.name == "b"
    assert set(pods.values_list("application_id", flat=True)) == {web.application_id}
    assert Application.objects.get(cluster=cluster, namespace=namespace, name="a").active is False
