"""The simulated kubelet (tests.support.kube_node.FakeNode) against the real control plane of tests/support/kube.py.

Deployments go through kube-controller-manager and kube-scheduler to pods the fake node runs; pod logs go
through kube-apiserver's proxy to the fake kubelet's HTTPS server.
"""

from __future__ import annotations

import datetime as dt
import functools
import time

import pytest
import requests
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.utils import parse_quantity

from tests.support.clusters import deployment_manifest, is_ready
from tests.support.components import wait_for as poll
from tests.support.kube import KubeCluster
from tests.support.kube_node import FakeNode

pytestmark = pytest.mark.timeout(45 * 60)


wait_for = functools.partial(poll, timeout=30, interval=0.05)  # the fake node answers fast: poll often


@pytest.fixture
def node(kube_apiserver: KubeCluster) -> FakeNode:
    assert kube_apiserver.node is not None
    return kube_apiserver.node


def deployment(name: str, replicas: int, containers: tuple[str, ...] = ("web",)) -> client.V1Deployment:
    return deployment_manifest(name, replicas=replicas, containers=containers, image="nginx:1.25", grace_seconds=30)


def running_pods(core: client.CoreV1Api, namespace: str, app: str) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [pod for pod in pods if is_ready(pod) and not pod.metadata.deletion_timestamp]


def start_app(api: client.ApiClient, namespace: str, name: str, replicas: int = 1) -> list[client.V1Pod]:
    client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment(name, replicas))
    core = client.CoreV1Api(api)
    return wait_for(
        f"{replicas} running pods of {namespace}/{name}",
        lambda: (pods := running_pods(core, namespace, name)) and len(pods) == replicas and pods,
    )


def test_node_is_registered_ready_and_leased(api: client.ApiClient, node: FakeNode) -> None:
    core = client.CoreV1Api(api)
    read = core.read_node(node.name)
    conditions = {c.type: c.status for c in read.status.conditions}
    assert conditions == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False"}
    assert read.status.capacity["cpu"] == "64"
    assert parse_quantity(read.status.allocatable["pods"]) == 2000  # the API server stores "2k"
    assert parse_quantity(read.status.allocatable["memory"]) == 256 * 2**30
    assert read.status.node_info.kubelet_version == "v1.20.2"
    assert read.status.daemon_endpoints.kubelet_endpoint.port == node.kubelet_port
    assert {"type": "InternalIP", "address": "127.0.0.1"} in [a.to_dict() for a in read.status.addresses]
    assert read.metadata.labels["kubernetes.io/hostname"] == node.name
    assert not [t for t in read.spec.taints or [] if t.key.startswith("node.kubernetes.io/")]
    leases = client.CoordinationV1Api(api)
    lease = leases.read_namespaced_lease(node.name, "kube-node-lease")
    assert lease.spec.holder_identity == node.name
    assert lease.spec.renew_time is not None
    wait_for(
        "the node lease to be renewed (heartbeat)",
        lambda: leases.read_namespaced_lease(node.name, "kube-node-lease").spec.renew_time > lease.spec.renew_time,
        timeout=node.heartbeat_seconds * 2.5,
        interval=0.5,
    )
    heartbeat = {c.type: c.last_heartbeat_time for c in core.read_node(node.name).status.conditions}["Ready"]
    assert heartbeat > read.status.conditions[0].last_heartbeat_time - dt.timedelta(seconds=1)


def test_deployment_runs_scales_down_and_pods_are_removed(api: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    started = time.monotonic()
    pods = start_app(api, namespace, "web", replicas=3)
    ready = wait_for(
        "deployment web readyReplicas == 3",
        lambda: (apps.read_namespaced_deployment_status("web", namespace).status.ready_replicas or 0) == 3,
    )
    assert ready
    print(f"3 replicas ready in {time.monotonic() - started:.2f}s")

    for pod in pods:
        assert pod.spec.node_name == "icc-node-1"
        assert pod.status.host_ip == "127.0.0.1"
        assert pod.status.pod_ip.startswith("10.244.")
        assert pod.status.start_time is not None
        (status,) = pod.status.container_statuses
        assert (status.name, status.ready, status.started, status.restart_count) == ("web", True, True, 0)
        assert status.state.running.started_at is not None
        assert status.container_id.startswith("containerd://")
        assert status.image == "nginx:1.25"
        assert status.image_id.startswith("docker.io/library/nginx@sha256:")
        assert {c.type for c in pod.status.conditions} >= {"Initialized", "Ready", "ContainersReady", "PodScheduled"}
    assert len({pod.status.pod_ip for pod in pods}) == 3

    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 1}})
    wait_for(
        "deployment web scaled to exactly one pod (terminating pods gone)",
        lambda: len(core.list_namespaced_pod(namespace, label_selector="app=web").items) == 1,
    )
    status = apps.read_namespaced_deployment_status("web", namespace).status
    assert (status.replicas, status.ready_replicas) == (1, 1)


def test_crash_loop_and_oom_hooks_show_in_pod_status(api: client.ApiClient, node: FakeNode, namespace: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    (pod,) = start_app(api, namespace, "crashy")
    name = pod.metadata.name

    node.set_container_state(namespace, name, "web", "waiting", "CrashLoopBackOff", restart_count=5)
    read = wait_for(
        "the CrashLoopBackOff status on the pod",
        lambda: (
            (p := core.read_namespaced_pod_status(name, namespace)).status.container_statuses[0].state.waiting and p
        ),
    )
    (status,) = read.status.container_statuses
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert "back-off" in status.state.waiting.message
    assert (status.ready, status.started, status.restart_count) == (False, False, 5)
    assert status.last_state.terminated.reason == "Error"
    assert read.status.phase == "Running"
    assert {c.type: c.status for c in read.status.conditions}["Ready"] == "False"
    wait_for(
        "deployment crashy to count no ready replica",
        lambda: not apps.read_namespaced_deployment_status("crashy", namespace).status.ready_replicas,
    )

    node.set_container_state(namespace, name, "web", "waiting", "CrashLoopBackOff", 6, last_reason="OOMKilled")
    last = core.read_namespaced_pod_status(name, namespace).status.container_statuses[0].last_state.terminated
    assert (last.reason, last.exit_code) == ("OOMKilled", 137)

    node.set_container_state(namespace, name, "web", "terminated", "OOMKilled", restart_count=0)
    terminated = core.read_namespaced_pod_status(name, namespace).status.container_statuses[0].state.terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)

    node.set_container_state(namespace, name, "web", "running", restart_count=7)
    read = core.read_namespaced_pod_status(name, namespace)
    assert is_ready(read)
    assert read.status.container_statuses[0].restart_count == 7
    wait_for(
        "deployment crashy ready again",
        lambda: apps.read_namespaced_deployment_status("crashy", namespace).status.ready_replicas == 1,
    )

    with pytest.raises(LookupError):
        node.set_container_state(namespace, name, "no-such-container")


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_pod_logs_tail_timestamps_follow_and_unknown_container(
    api: client.ApiClient, node: FakeNode, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    (pod,) = start_app(api, namespace, "chatty")
    name = pod.metadata.name
    lines = [f"line {number}" for number in range(1, 11)]
    node.set_logs(namespace, name, "web", lines)

    assert core.read_namespaced_pod_log(name, namespace, container="web") == "\n".join(lines) + "\n"
    assert core.read_namespaced_pod_log(name, namespace, container="web", tail_lines=3).splitlines() == lines[-3:]
    stamped = core.read_namespaced_pod_log(name, namespace, container="web", tail_lines=1, timestamps=True)
    stamp, text = stamped.rstrip("\n").split(" ", 1)
    assert text == "line 10"
    assert stamp.endswith("Z")
    assert stamp[:4].isdigit()
    assert "T" in stamp

    stream = core.read_namespaced_pod_log(
        name, namespace, container="web", tail_lines=2, follow=True, _preload_content=False
    )
    received: list[str] = []
    started = time.monotonic()
    try:
        buffer = b""
        for chunk in stream.stream(64):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            received += [line.decode() for line in complete]
            if sum("tick" in line for line in received) >= 3:
                break
            assert time.monotonic() - started < 20, f"follow stream too slow: {received}"
    finally:
        stream.close()
        stream.release_conn()
    assert received[:2] == lines[-2:]
    assert received[2:5] == [f"{name}/web tick {n}" for n in (1, 2, 3)]

    # The kubelet answers 404 for containers it does not run; kube-apiserver itself rejects names not in the spec.
    kubelet = f"https://127.0.0.1:{node.kubelet_port}/containerLogs/{namespace}/{name}"
    assert requests.get(f"{kubelet}/web?tailLines=1", verify=False, timeout=5).text == "line 10\n"
    missing = requests.get(f"{kubelet}/sidecar", verify=False, timeout=5)
    assert missing.status_code == 404
    assert requests.get(f"{kubelet.rsplit('/', 1)[0]}/nope/web", verify=False, timeout=5).status_code == 404
    with pytest.raises(ApiException) as excinfo:
        core.read_namespaced_pod_log(name, namespace, container="sidecar")
    print("apiserver, unknown container:", excinfo.value.status, excinfo.value.body)
    assert excinfo.value.status in (400, 404)


def test_many_pods_run_quickly_and_namespace_deletion_completes(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    count = 60
    started = time.monotonic()
    for number in range(count):
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name=f"p{number}", labels={"app": "many"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
        )
        core.create_namespaced_pod(namespace, pod)
    created = time.monotonic() - started
    wait_for(
        f"{count} bare pods scheduled and running",
        lambda: len(running_pods(core, namespace, "many")) == count,
        timeout=60,
        interval=0.1,
    )
    print(f"{count} pods created in {created:.2f}s, all running after {time.monotonic() - started:.2f}s")

    core.delete_namespace(namespace)
    wait_for(
        f"namespace {namespace} deleted (its pods' deletion finished by the node)",
        lambda: not [ns for ns in core.list_namespace().items if ns.metadata.name == namespace],
        timeout=60,
        interval=0.2,
    )
