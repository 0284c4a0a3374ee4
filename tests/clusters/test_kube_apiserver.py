"""Smoke tests against a real kube-apiserver v1.20.2 with the official kubernetes Python client.

The first test may wait ~7 minutes while scripts/kube-binaries.sh builds and caches the binaries (only once per
machine), hence the longer timeout than the suite's default of 300 s.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
import requests
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.support.clusters import deployment_manifest
from tests.support.kube import KubeCluster

pytestmark = pytest.mark.timeout(45 * 60)


@pytest.fixture
def api(kube_apiserver: KubeCluster) -> Iterator[client.ApiClient]:
    """An admin ApiClient built from the fixture's kubeconfig file (which is therefore exercised too)."""
    api_client = config.new_client_from_config(config_file=str(kube_apiserver.kubeconfig_path))
    yield api_client
    api_client.close()


def deployment(name: str, replicas: int) -> client.V1Deployment:
    return deployment_manifest(name, replicas=replicas, containers=("web",), image="nginx:1.25")


def test_version_and_readyz(kube_apiserver: KubeCluster, api: client.ApiClient) -> None:
    version = client.VersionApi(api).get_code()
    assert (version.major, version.minor.rstrip("+")) == ("1", "20")
    assert kube_apiserver.startup_seconds > 0
    response = requests.get(
        f"{kube_apiserver.url}/readyz?verbose",
        headers={"Authorization": f"Bearer {kube_apiserver.token}"},
        verify=str(kube_apiserver.ca_path),
        timeout=10,
    )
    assert response.status_code == 200
    assert "readyz check passed" in response.text


def test_deployment_crud_scale_paging_watch(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("web", 2))

    read = apps.read_namespaced_deployment("web", namespace)
    assert read.spec.replicas == 2
    assert read.metadata.uid

    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 3}})
    scale = apps.read_namespaced_deployment_scale("web", namespace)
    assert scale.spec.replicas == 3
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 3

    apps.create_namespaced_deployment(namespace, deployment("api", 1))
    page = apps.list_namespaced_deployment(namespace, limit=1)
    assert len(page.items) == 1
    assert page.metadata._continue
    rest = apps.list_namespaced_deployment(namespace, limit=1, _continue=page.metadata._continue)
    assert {page.items[0].metadata.name, rest.items[0].metadata.name} == {"web", "api"}

    events = []
    started = time.monotonic()
    for event in watch.Watch().stream(apps.list_namespaced_deployment, namespace, timeout_seconds=2):
        events.append((event["type"], event["object"].metadata.name))
        if len(events) >= 2:
            break
    assert time.monotonic() - started < 10
    assert ("ADDED", "web") in events
    assert ("ADDED", "api") in events


def test_namespace_deletion_completes(api: client.ApiClient) -> None:
    """kube-controller-manager's namespace controller finishes deletion (its contents go first)."""
    core = client.CoreV1Api(api)
    name = f"icc-test-{secrets.token_hex(4)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    client.AppsV1Api(api).create_namespaced_deployment(name, deployment("web", 1))
    core.delete_namespace(name)
    deadline = time.monotonic() + 60
    while name in {ns.metadata.name for ns in core.list_namespace().items}:
        assert time.monotonic() < deadline, f"namespace {name} still exists 60 s after deletion"
        time.sleep(0.5)
    with pytest.raises(ApiException) as excinfo:
        core.read_namespace(name)
    assert excinfo.value.status == 404


def test_wrong_token_is_unauthorized(kube_apiserver: KubeCluster) -> None:
    with kube_apiserver.api_client(token="not-a-valid-token") as api_client, pytest.raises(ApiException) as excinfo:
        client.CoreV1Api(api_client).list_namespace()
    assert excinfo.value.status == 401
