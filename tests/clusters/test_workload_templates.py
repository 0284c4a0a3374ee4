"""A workload's pod template as ICC stores it (``Workload.pod_template``, what compliance checks read) and
``workload_observed``, the announcement of every Workload row written: by the full sync, and by the watcher when a
Deployment is changed out of band or deleted, against the real control plane.

The rules that need no cluster (what of the template is kept, an oversized one is not) come first, without a
database.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from apps.clusters import gateway as gateways
from apps.clusters import sync
from apps.clusters.kinds import POD_TEMPLATE_MAX_BYTES, workload_row
from apps.clusters.models import Cluster, Workload
from apps.clusters.signals import workload_observed
from tests.support.clusters import deployment_settled, make_deployment, recording, register, synced
from tests.support.components import wait_for


def deployment(template: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": "web", "namespace": "shop", "uid": "u", "resourceVersion": "7", "generation": 1}
    return {"metadata": meta, "spec": {"replicas": 2, "template": template}, "status": {"replicas": 2}}


# --- rules without a cluster ------------------------------------------------------------------------------------


def test_the_template_keeps_labels_annotations_and_the_pod_spec_only():
    spec = {
        "containers": [{"name": "app", "image": "shop:1.0", "securityContext": {"runAsNonRoot": True}}],
        "hostNetwork": True,
    }
    template = {
        "metadata": {
            "labels": {"app": "web"},
            "annotations": {"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"},
            "creationTimestamp": None,
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": spec,
    }
    row = workload_row("Deployment", deployment(template))
    assert row["pod_template"] == {
        "metadata": {
            "labels": {"app": "web"},
            "annotations": {"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"},
        },
        "spec": spec,
    }
    assert row["pod_template_oversized"] is False
    assert row["desired_replicas"] == 2


def test_a_template_without_metadata_is_stored_with_empty_labels_and_annotations():
    row = workload_row("DaemonSet", deployment({"spec": {"containers": []}}))
    assert row["pod_template"] == {"metadata": {"labels": {}, "annotations": {}}, "spec": {"containers": []}}


def test_an_oversized_template_is_not_stored_whole_and_says_so(caplog):
    env = [{"name": f"VAR_{i}", "value": "x" * 1024} for i in range(POD_TEMPLATE_MAX_BYTES // 1024 + 1)]
    template = {"spec": {"containers": [{"name": "app", "image": "shop:1.0", "env": env}]}}
    with caplog.at_level(logging.WARNING, logger="apps.clusters.kinds"):
        row = workload_row("Deployment", deployment(template))
    assert row["pod_template"] == {} and row["pod_template_oversized"] is True
    assert row["images"] == [{"container": "app", "image": "shop:1.0"}], "the rest of the row is still stored"
    assert any("shop/web" in r.getMessage() and "not stored" in r.getMessage() for r in caplog.records)


# --- against the real control plane -----------------------------------------------------------------------------


def real_cluster(test: Callable[..., None]) -> Callable[..., None]:
    """A test against the real control plane (which may need building first) and a committed database, so that
    ``transaction.on_commit`` (and with it ``workload_observed``) runs."""
    return pytest.mark.timeout(45 * 60)(pytest.mark.django_db(transaction=True)(test))


@pytest.fixture
def announced() -> Iterator[list[dict[str, Any]]]:
    """The keyword arguments of every ``workload_observed`` sent during the test (from any thread)."""
    with recording(workload_observed) as seen:
        yield seen


def stored(cluster: Cluster, namespace: str, name: str) -> Workload | None:
    return Workload.objects.filter(cluster=cluster, kind="Deployment", namespace=namespace, name=name).first()


def signalled(seen: list[dict[str, Any]], cluster: Cluster, namespace: str, name: str, **expect: Any) -> bool:
    wanted = {"cluster_id": cluster.pk, "namespace": namespace, "kind": "Deployment", "name": name, **expect}
    return any(all(s.get(k) == v for k, v in wanted.items()) for s in list(seen))


def container_security(row: Workload | None) -> dict[str, Any] | None:
    if row is None or not row.pod_template:
        return None
    security: dict[str, Any] | None = row.pod_template["spec"]["containers"][0].get("securityContext")
    return security


@real_cluster
def test_the_full_sync_and_a_relist_store_the_pod_template_and_announce_the_workload(
    kube_apiserver, api, namespace, announced
):
    cluster = register(kube_apiserver)
    name = f"web-{uuid.uuid4().hex[:6]}"
    make_deployment(api, namespace, name, image="registry.example/shop:2.1", replicas=2)
    apps = client.AppsV1Api(api)
    wait_for("the deployment to settle", lambda: deployment_settled(apps, namespace, name), timeout=60)

    synced(cluster)

    row = stored(cluster, namespace, name)
    assert row is not None and row.desired_replicas == 2 and not row.pod_template_oversized
    assert row.pod_template["metadata"] == {"labels": {"app": name}, "annotations": {}}
    containers = row.pod_template["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("app", "registry.example/shop:2.1")]
    assert row.pod_template["spec"]["restartPolicy"] == "Always", "the API server's defaults are kept"
    assert signalled(announced, cluster, namespace, name, deleted=False)

    announced.clear()
    synced(cluster)
    assert not signalled(announced, cluster, namespace, name), "a settled workload is not announced again"

    # The watcher's relist (after 410 Gone or a broken stream) applies a changed template the same way.
    patch = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "app", "securityContext": {"readOnlyRootFilesystem": True}}]}}
        }
    }
    apps.patch_namespaced_deployment(name, namespace, patch)
    rows, list_rv = sync.list_kind(gateways.for_cluster(cluster), "deployments")
    sync.relist_apply(cluster, "deployments", rows, list_rv)
    assert container_security(stored(cluster, namespace, name)) == {"readOnlyRootFilesystem": True}
    assert signalled(announced, cluster, namespace, name, deleted=False)


@real_cluster
def test_a_template_changed_out_of_band_reaches_the_row_and_is_announced_and_so_is_a_deletion(
    kube_apiserver, api, namespace, announced, watching
):
    apps = client.AppsV1Api(api)
    cluster = register(kube_apiserver)
    watching(cluster)
    name = f"web-{uuid.uuid4().hex[:6]}"
    make_deployment(api, namespace, name)
    wait_for("the workload's row", lambda: stored(cluster, namespace, name), timeout=30)
    wait_for("its announcement", lambda: signalled(announced, cluster, namespace, name, deleted=False), timeout=10)
    assert container_security(stored(cluster, namespace, name)) is None

    announced.clear()
    security = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "securityContext": security}]}}}}
    apps.patch_namespaced_deployment(name, namespace, patch)

    wait_for(
        "the new securityContext in the row",
        lambda: container_security(stored(cluster, namespace, name)) == security,
        timeout=10,
    )
    wait_for(
        "workload_observed for the change",
        lambda: signalled(announced, cluster, namespace, name, deleted=False),
        timeout=10,
    )

    announced.clear()
    apps.delete_namespaced_deployment(name, namespace)
    wait_for("the row to go", lambda: stored(cluster, namespace, name) is None, timeout=30)
    wait_for(
        "workload_observed for the deletion",
        lambda: signalled(announced, cluster, namespace, name, deleted=True),
        timeout=10,
    )
