"""What a change freeze does to a real cluster (a real kube-apiserver, real PostgreSQL): the scaler holds its
scale-downs (scale-ups still happen) until the freeze ends, and a manual scale or restart needs an explicit
override with a reason, which the audit trail records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from kubernetes import client as k8s

from apps.audit.models import AuditEvent
from apps.calendar import services as calendar_services
from apps.clusters.models import Workload
from apps.scaler import evaluation
from apps.scaler import services as scaler_services
from apps.scaler.models import Decision, Signal
from tests.support.clients import error_fields
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
    """Deployment ``web`` (application ``shop``, 3 ready pods) in a fresh namespace of a synced cluster."""
    namespace = new_namespace()
    make_deployment(k8s_api, namespace, "web", replicas=3, part_of="shop")
    ready_pods(k8s_api, namespace, "web", 3)
    cluster = synced(register(kube))
    workload = Workload.objects.select_related("application").get(cluster=cluster, namespace=namespace, name="web")
    return {
        "cluster": cluster,
        "namespace": namespace,
        "workload": workload,
        "application": workload.application,
        "pods": list(workload.pods.values_list("name", flat=True)),
    }


def freeze(web: dict[str, Any], reason: str = "black friday") -> Any:
    start = (datetime.now(UTC) - timedelta(minutes=5)).replace(second=0, microsecond=0)
    return calendar_services.entry_create(
        kind="freeze",
        title="shop freeze",
        start_date=start.date(),
        start_time=start.time(),
        timezone="UTC",
        duration_minutes=120,
        reason=reason,
        owner="shop-team",
        scope_kind="application",
        scope_cluster=str(web["cluster"].pk),
        scope_application="shop",
    )


def replicas(api: k8s.ApiClient, namespace: str) -> int:
    return int(k8s.AppsV1Api(api).read_namespaced_deployment("web", namespace).spec.replicas)


def signal(web: dict[str, Any], value: float) -> None:
    now = timezone.now()
    Signal.objects.bulk_create(
        Signal(application=web["application"], metric="rps", pod=pod, value=value, at=now) for pod in web["pods"]
    )


def test_a_scale_down_is_held_during_a_freeze_scale_ups_still_happen_and_it_is_released_after(k8s_api, web):
    policy = scaler_services.policy_create(
        application=web["application"],
        mode="active",
        min_replicas=1,
        max_replicas=6,
        metrics=[{"name": "rps", "target": 10}],
        behavior={"scale_down_stabilization_s": 0, "cooldown_down_s": 0, "max_step_down_percent": 100},
    )
    Decision.objects.filter(policy=policy).delete()
    entry = freeze(web)

    signal(web, 2)  # 3 pods at 2 rps for a target of 10: one pod would do
    held = evaluation.evaluate(policy.pk, "manual")
    assert held is not None and held.outcome == "unchanged", held.reason if held else None
    assert "held: change freeze until" in held.reason and "black friday" in held.reason
    assert (held.current_replicas, held.desired_replicas) == (3, 3)
    assert held.inputs["freeze"]["wanted"] == 1 and held.inputs["freeze"]["entry"] == entry.pk
    assert replicas(k8s_api, web["namespace"]) == 3

    signal(web, 40)  # scale-ups are never held
    up = evaluation.evaluate(policy.pk, "manual")
    assert up is not None and up.outcome == "applied" and up.desired_replicas > 3, up.reason if up else None
    assert replicas(k8s_api, web["namespace"]) == up.desired_replicas

    calendar_services.entry_delete(entry)  # the freeze ends: every process's calendar follows after commit
    signal(web, 1)
    down = evaluation.evaluate(policy.pk, "manual")
    assert down is not None and down.outcome == "applied", down.reason if down else None
    assert down.desired_replicas < up.desired_replicas and "held" not in down.reason
    assert replicas(k8s_api, web["namespace"]) == down.desired_replicas


def test_a_manual_scale_is_refused_during_a_freeze_without_override_and_accepted_with_it_audited(
    k8s_api, make_user, web
):
    operator = make_user("freeze-op", role="operator")
    client = client_for(operator.user)
    entry = freeze(web, reason="payments migration")
    path = f"{API}/workloads/{web['workload'].pk}/scale/"

    refused = post(client, path, {"replicas": 5, "reason": "more capacity"})
    assert refused.status_code == 409, refused.content
    assert "override" in error_fields(refused) and "payments migration" in refused.content.decode()
    assert replicas(k8s_api, web["namespace"]) == 3
    assert not AuditEvent.objects.filter(action="clusters.workload.scale").exists()

    restart = post(client, f"{API}/workloads/{web['workload'].pk}/restart/", {"reason": "stuck"})
    assert restart.status_code == 409 and "override" in error_fields(restart)

    no_reason = post(client, path, {"replicas": 5, "reason": " ", "override": True})
    assert no_reason.status_code == 400 and "reason" in error_fields(no_reason)

    accepted = post(client, path, {"replicas": 5, "reason": "incident 7: more capacity", "override": True})
    assert accepted.status_code == 200, accepted.content
    assert replicas(k8s_api, web["namespace"]) == 5
    event = AuditEvent.objects.get(action="clusters.workload.scale")
    assert event.actor_name == "freeze-op" and event.changes == {"replicas": [3, 5]}
    assert event.metadata["override"]["reason"] == "incident 7: more capacity"
    assert event.metadata["override"]["freeze_entry"] == entry.pk

    viewer = make_user("freeze-viewer", role="viewer")
    attempt = post(client_for(viewer.user), path, {"replicas": 1, "reason": "x", "override": True})
    assert attempt.status_code == 403, "a viewer cannot override a freeze"
    assert replicas(k8s_api, web["namespace"]) == 5


def test_outside_a_freeze_the_override_is_not_needed_and_not_recorded(k8s_api, make_user, web):
    client = client_for(make_user("calm-op", role="operator").user)
    response = post(client, f"{API}/workloads/{web['workload'].pk}/scale/", {"replicas": 2, "reason": "calm day"})
    assert response.status_code == 200, response.content
    assert "override" not in AuditEvent.objects.get(action="clusters.workload.scale").metadata
