"""Actions through the API on a real kube-apiserver: manual scale (with a resourceVersion precondition),
rollout restart and pod logs (last lines over HTTP, live follow over the websocket). Each needs the operator
role in scope (a viewer who can see the object gets 403, someone who cannot gets 404) and is audited.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from kubernetes import client as k8s

from apps.audit.models import AuditEvent
from apps.clusters.models import Cluster, Pod, Workload
from iccapp.asgi import application
from tests.support.clients import bind, error_fields
from tests.support.clients import forced_login as client_for
from tests.support.clients import post_json as post
from tests.support.clusters import make_deployment, ready_pods, register, synced
from tests.support.components import wait_for
from tests.support.kube import KubeCluster

API = "/api/v1"
pytestmark = [pytest.mark.timeout(45 * 60), pytest.mark.django_db]


@pytest.fixture
def web(kube: KubeCluster, k8s_api: k8s.ApiClient, new_namespace: Callable[[], str]) -> dict[str, Any]:
    """Deployment ``web`` (1 replica, containers app + sidecar) in a fresh namespace of a synced cluster."""
    namespace = new_namespace()
    make_deployment(k8s_api, namespace, "web", replicas=1, part_of="shop", containers=("app", "sidecar"))
    ready_pods(k8s_api, namespace, "web", 1)
    cluster = synced(register(kube))
    workload = Workload.objects.get(cluster=cluster, namespace=namespace, name="web")
    pod = Pod.objects.get(cluster=cluster, namespace=namespace)
    return {"cluster": cluster, "namespace": namespace, "workload": workload, "pod": pod}


def deployment(api: k8s.ApiClient, namespace: str, name: str = "web") -> k8s.V1Deployment:
    return k8s.AppsV1Api(api).read_namespaced_deployment(name, namespace)


# --- manual scale --------------------------------------------------------------------------------------------


def test_an_operator_scales_the_real_deployment_and_it_is_audited(k8s_api, make_user, web):
    operator = make_user("opal", role="operator")
    response = post(
        client_for(operator.user),
        f"{API}/workloads/{web['workload'].pk}/scale/",
        {"replicas": 3, "reason": "black friday"},
    )
    assert response.status_code == 200, response.content
    assert response.json()["replicas"] == 3 and response.json()["previous"] == 1
    assert deployment(k8s_api, web["namespace"]).spec.replicas == 3
    scale = k8s.AppsV1Api(k8s_api).read_namespaced_deployment_scale("web", web["namespace"])
    assert scale.spec.replicas == 3
    assert int(scale.metadata.resource_version) >= int(response.json()["resource_version"])
    ready_pods(k8s_api, web["namespace"], "web", 3)

    event = AuditEvent.objects.get(action="clusters.workload.scale", target_id=str(web["workload"].pk))
    assert (event.actor_name, event.message, event.outcome) == ("opal", "black friday", "success")
    assert event.changes == {"replicas": [1, 3]}
    assert (event.scope_cluster, event.scope_namespace, event.scope_application) == (
        str(web["cluster"].pk),
        web["namespace"],
        "shop",
    )


def test_a_stale_resource_version_is_a_409_naming_it(k8s_api, make_user, web):
    apps = k8s.AppsV1Api(k8s_api)
    seen = apps.read_namespaced_deployment_scale("web", web["namespace"]).metadata.resource_version
    apps.patch_namespaced_deployment_scale("web", web["namespace"], {"spec": {"replicas": 2}})  # someone else
    operator = client_for(make_user("opal", role="operator").user)
    response = post(
        operator,
        f"{API}/workloads/{web['workload'].pk}/scale/",
        {"replicas": 5, "reason": "from a stale page", "resource_version": seen},
    )
    assert response.status_code == 409, response.content
    assert "resource_version" in error_fields(response)
    assert deployment(k8s_api, web["namespace"]).spec.replicas == 2, "the concurrent change is not overwritten"
    event = AuditEvent.objects.get(action="clusters.workload.scale", target_id=str(web["workload"].pk))
    assert event.outcome == "failure" and event.metadata["resource_version"] == seen


def test_scale_input_errors_name_the_field(k8s_api, kube, new_namespace, make_user, web):
    operator = client_for(make_user("opal", role="operator").user)
    path = f"{API}/workloads/{web['workload'].pk}/scale/"
    cases = [
        ({"replicas": -1, "reason": "r"}, "replicas"),
        ({"replicas": "abc", "reason": "r"}, "replicas"),
        ({"replicas": 1.5, "reason": "r"}, "replicas"),
        ({"replicas": 10001, "reason": "r"}, "replicas"),
        ({"replicas": True, "reason": "r"}, "replicas"),
        ({"reason": "r"}, "replicas"),
        ({"replicas": 2, "reason": ""}, "reason"),
        ({"replicas": 2, "reason": "   "}, "reason"),
        ({"replicas": 2}, "reason"),
        ({"replicas": 2, "reason": "x" * 501}, "reason"),
        ({"replicas": 2, "reason": "r", "force": True}, "force"),
        ({"replicas": 2, "reason": "r", "resource_version": "r" * 40}, "resource_version"),
    ]
    for body, field in cases:
        response = post(operator, path, body)
        assert response.status_code == 400, (body, response.status_code, response.content)
        assert field in error_fields(response), (body, response.json())
    response = operator.post(path, "replicas=2", content_type="text/plain")
    assert response.status_code == 415
    assert deployment(k8s_api, web["namespace"]).spec.replicas == 1
    assert not AuditEvent.objects.filter(action="clusters.workload.scale").exists()

    # A DaemonSet runs one pod per node: scaling it is refused, naming replicas.
    namespace = web["namespace"]
    k8s.AppsV1Api(k8s_api).create_namespaced_daemon_set(
        namespace,
        k8s.V1DaemonSet(
            metadata=k8s.V1ObjectMeta(name="agent"),
            spec=k8s.V1DaemonSetSpec(
                selector=k8s.V1LabelSelector(match_labels={"app": "agent"}),
                template=k8s.V1PodTemplateSpec(
                    metadata=k8s.V1ObjectMeta(labels={"app": "agent"}),
                    spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="a", image="a:1")]),
                ),
            ),
        ),
    )
    synced(web["cluster"])
    agent = Workload.objects.get(cluster=web["cluster"], namespace=namespace, name="agent")
    response = post(operator, f"{API}/workloads/{agent.pk}/scale/", {"replicas": 2, "reason": "more"})
    assert response.status_code == 400 and "replicas" in error_fields(response)
    assert "DaemonSet" in error_fields(response)["replicas"][0]


# --- rollout restart -----------------------------------------------------------------------------------------


def test_a_rollout_restart_replaces_the_pods_and_is_audited(k8s_api, make_user, web):
    before = {p.metadata.name for p in ready_pods(k8s_api, web["namespace"], "web", 1)}
    operator = client_for(make_user("opal", role="operator").user)
    path = f"{API}/workloads/{web['workload'].pk}/restart/"
    assert post(operator, path, {"reason": ""}).status_code == 400
    response = post(operator, path, {"reason": "pick up the new config map"})
    assert response.status_code == 200, response.content
    stamp = response.json()["restarted_at"]
    annotations = deployment(k8s_api, web["namespace"]).spec.template.metadata.annotations or {}
    assert annotations.get("kubectl.kubernetes.io/restartedAt") == stamp
    # The controller-manager rolls a new ReplicaSet out: a different, ready pod replaces the old one.
    wait_for(
        "a new ready pod after the restart",
        lambda: {p.metadata.name for p in ready_pods(k8s_api, web["namespace"], "web", 1)}.isdisjoint(before),
        timeout=90,
    )
    event = AuditEvent.objects.get(action="clusters.workload.restart", target_id=str(web["workload"].pk))
    assert event.message == "pick up the new config map" and event.actor_name == "opal"
    assert event.changes == {"restartedAt": [None, stamp]}


# --- who may act ---------------------------------------------------------------------------------------------


def test_viewers_are_refused_403_and_outsiders_404(k8s_api, make_user, web):
    workload, pod = web["workload"], web["pod"]
    scale = f"{API}/workloads/{workload.pk}/scale/"
    restart = f"{API}/workloads/{workload.pk}/restart/"
    logs = f"{API}/pods/{pod.pk}/logs/"
    other_ns_operator = make_user("elsewhere")
    bind(other_ns_operator.user, "operator", web["cluster"], namespace="not-" + web["namespace"])
    ns_viewer = make_user("ns-viewer")
    bind(ns_viewer.user, "viewer", web["cluster"], namespace=web["namespace"])
    for person, expected in (
        (make_user("vic", role="viewer"), 403),
        (ns_viewer, 403),
        (other_ns_operator, 404),
        (make_user("olga"), 404),
    ):
        c = client_for(person.user)
        assert post(c, scale, {"replicas": 4, "reason": "try"}).status_code == expected, person.username
        assert post(c, restart, {"reason": "try"}).status_code == expected, person.username
        assert c.get(logs).status_code == expected, person.username
    anonymous = Client()
    assert post(anonymous, scale, {"replicas": 4, "reason": "try"}).status_code == 401
    assert deployment(k8s_api, web["namespace"]).spec.replicas == 1
    assert not (deployment(k8s_api, web["namespace"]).spec.template.metadata.annotations or {})
    denied = AuditEvent.objects.filter(outcome="denied", action__startswith="api.workload.")
    assert denied.count() >= 6, "refusals are audited as denied"
    assert not AuditEvent.objects.filter(action__in=["clusters.workload.scale", "clusters.workload.restart"]).exists()

    # An operator bound to the namespace may act there.
    ns_operator = make_user("ns-operator")
    bind(ns_operator.user, "operator", web["cluster"], namespace=web["namespace"])
    assert post(client_for(ns_operator.user), scale, {"replicas": 2, "reason": "ok"}).status_code == 200
    assert deployment(k8s_api, web["namespace"]).spec.replicas == 2


# --- pod logs ------------------------------------------------------------------------------------------------


def test_pod_logs_return_the_last_lines_and_are_audited(kube, make_user, web):
    pod = web["pod"]
    assert kube.node is not None
    kube.node.set_logs(web["namespace"], pod.name, "sidecar", [f"line {i}" for i in range(1, 8)])
    kube.node.set_logs(web["namespace"], pod.name, "app", ["app says hi"])
    operator = client_for(make_user("opal", role="operator").user)
    path = f"{API}/pods/{pod.pk}/logs/"
    response = operator.get(path, {"container": "sidecar", "tail_lines": 3})
    assert response.status_code == 200, response.content
    assert response.json() == {"pod": pod.pk, "container": "sidecar", "lines": ["line 5", "line 6", "line 7"]}
    assert operator.get(path).json()["lines"] == ["app says hi"], "the first container by default"
    events = AuditEvent.objects.filter(action="clusters.pod.logs", target_id=str(pod.pk)).order_by("seq")
    assert [e.metadata["container"] for e in events] == ["sidecar", "app"]
    assert events[0].metadata["tail_lines"] == 3 and events[0].actor_name == "opal"
    for params, field in (
        ({"container": "db"}, "container"),
        ({"tail_lines": 0}, "tail_lines"),
        ({"tail_lines": "many"}, "tail_lines"),
        ({"tail_lines": 10001}, "tail_lines"),
    ):
        response = operator.get(path, params)
        assert response.status_code == 400 and field in error_fields(response), (params, response.content)


ORIGIN = (b"origin", b"http://127.0.0.1")


def session_cookie(user: Any) -> tuple[bytes, bytes]:
    c = Client()
    c.force_login(user)
    return (b"cookie", f"sessionid={c.cookies['sessionid'].value}".encode())


async def _connect(path: str, cookie: tuple[bytes, bytes] | None) -> tuple[WebsocketCommunicator, bool, Any]:
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN, *([cookie] if cookie else [])])
    connected, code = await communicator.connect(timeout=10)
    return communicator, connected, code


def _follow_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "pod-log-follow" and t.is_alive())


@pytest.mark.django_db(transaction=True)
def test_pod_logs_follow_live_over_the_websocket(kube, make_user, web):
    """The last lines, then new lines as the container writes them (the fake kubelet: a tick every 0.2 s);
    three ticks arrive within 15 s. Closing the socket stops the stream; the follow is audited once."""
    pod = web["pod"]
    assert kube.node is not None
    kube.node.set_logs(web["namespace"], pod.name, "sidecar", ["one", "two", "three"])
    cookie = session_cookie(make_user("opal", role="operator").user)
    path = f"/ws/pods/{pod.pk}/logs/?container=sidecar&tail_lines=2"

    async def follow() -> list[str]:
        communicator, connected, code = await _connect(path, cookie)
        assert connected, code
        lines: list[str] = []
        deadline = time.monotonic() + 15
        while not any(line.endswith("tick 3") for line in lines):
            assert time.monotonic() < deadline, f"no third tick within 15 s: {lines}"
            message = json.loads(await communicator.receive_from(timeout=10))
            assert message["type"] == "lines", message
            lines.extend(message["lines"])
        await communicator.disconnect()
        return lines

    lines = asyncio.run(follow())
    assert lines[:2] == ["two", "three"]
    assert lines[2:5] == [f"{pod.name}/sidecar tick {n}" for n in (1, 2, 3)]
    wait_for("the log-reading thread to stop after the socket closed", lambda: _follow_threads() == 0, timeout=10)
    events = AuditEvent.objects.filter(action="clusters.pod.logs.follow", target_id=str(pod.pk))
    assert events.count() == 1
    event = events.get()
    assert event.actor_name == "opal" and event.metadata == {"container": "sidecar", "tail_lines": 2}
    assert event.scope_namespace == web["namespace"]


@pytest.mark.django_db(transaction=True)
def test_pod_log_follow_refusals(make_user, web):
    """4401 signed out, 4403 may see but not act, 4404 hidden or missing, 4400 bad container or tail_lines."""
    pod = web["pod"]
    elsewhere = make_user("elsewhere")
    bind(elsewhere.user, "operator", web["cluster"], namespace="not-" + web["namespace"])
    operator = session_cookie(make_user("opal", role="operator").user)
    cases = [
        (f"/ws/pods/{pod.pk}/logs/", None, 4401),
        (f"/ws/pods/{pod.pk}/logs/", session_cookie(make_user("vic", role="viewer").user), 4403),
        (f"/ws/pods/{pod.pk}/logs/", session_cookie(elsewhere.user), 4404),
        (f"/ws/pods/{pod.pk + 100000}/logs/", operator, 4404),
        (f"/ws/pods/{pod.pk}/logs/?container=db", operator, 4400),
        (f"/ws/pods/{pod.pk}/logs/?tail_lines=lots", operator, 4400),
        (f"/ws/pods/{pod.pk}/logs/?tail_lines=-1", operator, 4400),
    ]

    async def attempt(path: str, cookie: tuple[bytes, bytes] | None) -> Any:
        communicator, connected, code = await _connect(path, cookie)
        await communicator.disconnect()
        return None if connected else code

    for path, cookie, expected in cases:
        assert asyncio.run(attempt(path, cookie)) == expected, path
    assert not AuditEvent.objects.filter(action="clusters.pod.logs.follow").exists()
    assert Cluster.objects.filter(pk=web["cluster"].pk).exists()
