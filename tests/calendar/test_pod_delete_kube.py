"""Deleting a pod (a real kube-apiserver, real PostgreSQL): during a change freeze it is refused without an override
and done with one, audited with the override's reason; a viewer may not; the portal asks for confirmation first."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client as k8s

from apps.audit.models import AuditEvent
from apps.calendar import services as calendar_services
from apps.clusters.models import Pod, Workload
from tests.support.clients import error_fields, html
from tests.support.clients import forced_login as client_for
from tests.support.clients import post_json as post
from tests.support.clusters import make_deployment, ready_pods, register, synced
from tests.support.kube import KubeCluster

API = "/api/v1"
pytestmark = [
    pytest.mark.timeout(30 * 60),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("calendar_clean"),
]


@pytest.fixture
def web(kube: KubeCluster, k8s_api: k8s.ApiClient, new_namespace: Callable[[], str]) -> dict[str, Any]:
    """Deployment ``web`` (application ``shop``, 2 ready pods) in a fresh namespace of a synced cluster."""
    namespace = new_namespace()
    make_deployment(k8s_api, namespace, "web", replicas=2, part_of="shop")
    ready_pods(k8s_api, namespace, "web", 2)
    cluster = synced(register(kube))
    workload = Workload.objects.select_related("application").get(cluster=cluster, namespace=namespace, name="web")
    return {"cluster": cluster, "namespace": namespace, "workload": workload, "pods": list(workload.pods.all())}


def freeze(web: dict[str, Any]) -> Any:
    start = (datetime.now(UTC) - timedelta(minutes=5)).replace(second=0, microsecond=0)
    return calendar_services.entry_create(
        kind="freeze",
        title="shop freeze",
        start_date=start.date(),
        start_time=start.time(),
        timezone="UTC",
        duration_minutes=120,
        reason="year-end close",
        owner="shop-team",
        scope_kind="application",
        scope_cluster=str(web["cluster"].pk),
        scope_application="shop",
    )


def live_pod(api: k8s.ApiClient, namespace: str, name: str) -> bool:
    """Whether the pod still exists and is not being deleted."""
    try:
        pod = k8s.CoreV1Api(api).read_namespaced_pod(name, namespace)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return pod.metadata.deletion_timestamp is None


def gone(api: k8s.ApiClient, namespace: str, name: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not live_pod(api, namespace, name):
            return True
        time.sleep(0.2)
    return False


def test_a_pod_delete_is_refused_in_a_freeze_without_override_and_done_with_it_audited(k8s_api, make_user, web):
    operator = make_user("pod-op", role="operator")
    client = client_for(operator.user)
    entry = freeze(web)
    victim, other = web["pods"]
    path = f"{API}/pods/{victim.pk}/delete/"

    refused = post(client, path, {"reason": "stuck pod"})
    assert refused.status_code == 409, refused.content
    assert "override" in error_fields(refused) and "year-end close" in refused.content.decode()
    assert live_pod(k8s_api, web["namespace"], victim.name)
    assert not AuditEvent.objects.filter(action="clusters.pod.delete").exists()

    no_reason = post(client, path, {"reason": " ", "override": True})
    assert no_reason.status_code == 400 and "reason" in error_fields(no_reason)

    viewer = make_user("pod-viewer", role="viewer")
    denied = post(client_for(viewer.user), path, {"reason": "x", "override": True})
    assert denied.status_code == 403, "a viewer can neither delete a pod nor override a freeze"
    assert live_pod(k8s_api, web["namespace"], victim.name)

    accepted = post(client, path, {"reason": "incident 9: pod wedged", "override": True})
    assert accepted.status_code == 200, accepted.content
    assert accepted.json() == {"pod": victim.pk, "name": victim.name, "deleting": True}
    assert gone(k8s_api, web["namespace"], victim.name), "the pod is deleted in the cluster"
    assert live_pod(k8s_api, web["namespace"], other.name), "only that pod"
    assert Pod.objects.get(pk=victim.pk).deleting
    event = AuditEvent.objects.get(action="clusters.pod.delete")
    assert event.actor_name == "pod-op" and event.outcome == "success" and event.message == "incident 9: pod wedged"
    assert event.metadata["uid"] == victim.uid and event.metadata["workload"] == str(web["workload"])
    assert event.metadata["override"]["reason"] == "incident 9: pod wedged"
    assert event.metadata["override"]["freeze_entry"] == entry.pk
    ready_pods(k8s_api, web["namespace"], "web", 2)  # the ReplicaSet replaced it

    again = post(client, path, {"reason": "once more", "override": True})
    assert again.status_code in (404, 409), again.content  # gone, or a newer pod under the name: never deleted twice


def test_outside_a_freeze_an_operator_deletes_a_pod_without_override(k8s_api, make_user, web):
    client = client_for(make_user("calm-pod-op", role="operator").user)
    victim = web["pods"][0]
    response = post(client, f"{API}/pods/{victim.pk}/delete/", {"reason": "recycle"})
    assert response.status_code == 200, response.content
    assert gone(k8s_api, web["namespace"], victim.name)
    assert "override" not in AuditEvent.objects.get(action="clusters.pod.delete").metadata


def test_the_portal_confirms_before_deleting_a_pod_and_asks_for_the_override_in_a_freeze(k8s_api, make_user, web):
    operator = client_for(make_user("portal-pod-op", role="operator").user)
    app = web["workload"].application
    victim = web["pods"][0]
    page_path = f"/clusters/applications/{app.pk}/pods/{victim.pk}/delete/"
    assert f'href="{page_path}"' in html(operator.get(f"/clusters/applications/{app.pk}/pods/{victim.pk}/logs/"))
    freeze(web)

    confirm = operator.get(page_path)
    assert confirm.status_code == 200
    text = html(confirm)
    assert f"Delete pod {victim.name}?" in text and 'id="freeze-notice"' in text and "year-end close" in text
    assert live_pod(k8s_api, web["namespace"], victim.name), "asking is not deleting"

    refused = operator.post(page_path, {"reason": "wedged"})
    assert refused.status_code == 409 and 'data-error-for="override"' in html(refused)
    assert live_pod(k8s_api, web["namespace"], victim.name)

    done = operator.post(page_path, {"reason": "wedged", "override": "on"})
    assert done.status_code == 302 and done["Location"] == f"/clusters/applications/{app.pk}/"
    assert gone(k8s_api, web["namespace"], victim.name)
    assert AuditEvent.objects.get(action="clusters.pod.delete").metadata["override"]["reason"] == "wedged"

    viewer = client_for(make_user("portal-pod-viewer", role="viewer").user)
    other = web["pods"][1]
    assert viewer.get(f"/clusters/applications/{app.pk}/pods/{other.pk}/delete/").status_code == 403
    assert viewer.post(f"/clusters/applications/{app.pk}/pods/{other.pk}/delete/", {"reason": "x"}).status_code == 403
    assert live_pod(k8s_api, web["namespace"], other.name)
