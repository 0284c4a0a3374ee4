"""The scaler against a real Prometheus and a real kube-apiserver (controller-manager, scheduler, fake node).

A step in a metric scraped by Prometheus scales the real Deployment; ownership (an HPA, a GitOps field manager)
stops an active policy with a visible conflict; recommend mode, the kill switch and the global pause never write;
a Prometheus that is down leaves replicas untouched and marks the policy degraded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from kubernetes import client as k8s

from apps.audit.models import AuditEvent
from apps.clusters import gateway as gateways
from apps.clusters import sync
from apps.clusters.models import Workload
from apps.scaler import evaluation, services
from apps.scaler.models import Decision, ScalingPolicy
from apps.users.models import RoleBinding
from tests.support.clusters import make_deployment, ready_pods, register, synced
from tests.support.components import free_port, wait_for
from tests.support.kube import KubeCluster
from tests.support.prometheus import PrometheusServer
from tests.support.server import start_celery_worker, stop_process

pytestmark = [pytest.mark.timeout(45 * 60), pytest.mark.django_db]

LOAD = {"name": "load", "source": "custom", "kind": "per_pod", "query": "test_load{$selector}", "target": 10}


@pytest.fixture
def prom(prometheus_server: PrometheusServer, settings: Any) -> PrometheusServer:
    settings.PROMETHEUS_URL = prometheus_server.url
    return prometheus_server


@pytest.fixture
def web(kube: KubeCluster, k8s_api: k8s.ApiClient, new_namespace: Callable[[], str], prom: PrometheusServer):
    """Deployment ``web`` (application ``shop``, 1 ready pod) in a fresh namespace of a synced cluster."""
    namespace = new_namespace()
    make_deployment(k8s_api, namespace, "web", replicas=1, part_of="shop")
    ready_pods(k8s_api, namespace, "web", 1)
    cluster = synced(register(kube))
    workload = Workload.objects.select_related("application").get(cluster=cluster, namespace=namespace, name="web")
    pods = list(workload.pods.values_list("name", flat=True))
    yield {
        "cluster": cluster,
        "namespace": namespace,
        "workload": workload,
        "application": workload.application,
        "pods": pods,
    }
    prom.exporter.clear(namespace)


def spec_replicas(api: k8s.ApiClient, namespace: str) -> int:
    return int(k8s.AppsV1Api(api).read_namespaced_deployment("web", namespace).spec.replicas)


def resource_version(api: k8s.ApiClient, namespace: str) -> str:
    return str(k8s.AppsV1Api(api).read_namespaced_deployment("web", namespace).metadata.resource_version)


def load(prom: PrometheusServer, web: dict[str, Any], value: float) -> None:
    """Every pod reports ``value``; wait until Prometheus has scraped it."""
    for pod in web["pods"]:
        prom.exporter.set("test_load", web["namespace"], pod, value)
    wait_for(
        f"Prometheus to scrape test_load={value}",
        lambda: prom.value(f'test_load{{namespace="{web["namespace"]}"}}') == [value] * len(web["pods"]),
        timeout=20,
    )


def policy(web: dict[str, Any], **values: Any) -> ScalingPolicy:
    defaults: dict[str, Any] = {
        "mode": "active",
        "min_replicas": 1,
        "max_replicas": 6,
        "metrics": [LOAD],
        "behavior": {"max_step_up_pods": 4},
    }
    created = services.policy_create(application=web["application"], **{**defaults, **values})
    Decision.objects.filter(policy=created).delete()  # the evaluation policy_create requested is not run here
    return created


def evaluate(p: ScalingPolicy) -> Decision:
    decision = evaluation.evaluate(p.pk, "manual")
    assert decision is not None
    return decision


# --- the Prometheus path -----------------------------------------------------------------------------------------


def test_a_metric_step_scales_the_real_deployment_and_the_scaler_sees_the_new_pods(k8s_api, prom, web):
    p = policy(web)
    load(prom, web, 10)
    steady = evaluate(p)
    assert (steady.outcome, steady.current_replicas, steady.desired_replicas) == ("unchanged", 1, 1)
    assert steady.inputs["metrics"]["load"]["source"] == "prometheus"

    started = time.monotonic()
    load(prom, web, 30)  # 3x the target per pod
    decision = evaluate(p)
    reaction = time.monotonic() - started
    assert (decision.outcome, decision.current_replicas, decision.desired_replicas) == ("applied", 1, 3), (
        decision.reason,
        decision.reasons,
    )
    assert any("ceil(1 x 30 / 10) = 3" in r for r in decision.reasons)
    assert decision.policy_version == p.version and decision.inputs["metrics"]["load"]["values"]
    assert spec_replicas(k8s_api, web["namespace"]) == 3
    print(f"\nPrometheus path: exporter step -> scale PUT in {reaction:.2f}s (1 s scrape interval)")

    ready_pods(k8s_api, web["namespace"], "web", 3)  # controller-manager made them, the node made them Ready

    def seen() -> bool:
        sync.full_sync(web["cluster"].pk)
        workload = Workload.objects.get(pk=web["workload"].pk)
        ready = workload.pods.filter(ready=True, deleting=False).count()
        return (workload.desired_replicas, workload.ready_replicas, ready) == (3, 3, 3)

    wait_for("ICC to observe 3 ready replicas", seen, timeout=30, interval=0.5)
    workload = Workload.objects.get(pk=web["workload"].pk)
    event = AuditEvent.objects.get(action="scaler.scale", target_id=str(workload.pk))
    assert event.changes == {"replicas": [1, 3]} and event.actor_kind == "system"
    assert event.metadata["decision"] == decision.pk

    p.refresh_from_db()
    assert p.status == "ok" and p.last_evaluated_at is not None


def test_the_client_that_created_the_deployment_is_not_a_conflict(k8s_api, prom, web):
    """The creator (an Update manager owning spec.replicas, like ``kubectl create``) does not come back: ICC scales.
    (Scale writes carry fieldManager=icc; v1.20 does not yet record managers of the scale subresource.)"""
    fields = k8s.AppsV1Api(k8s_api).read_namespaced_deployment("web", web["namespace"]).metadata.managed_fields
    creators = [
        m.manager for m in fields if m.operation == "Update" and "f:replicas" in (m.fields_v1 or {}).get("f:spec", {})
    ]
    assert creators == ["OpenAPI-Generator"]
    p = policy(web)
    load(prom, web, 30)
    assert evaluate(p).outcome == "applied"
    load(prom, web, 10)
    again = evaluate(p)
    assert again.outcome == "unchanged", again.reason  # 30/10 over 3 pods is on target; ICC's own write is no conflict


def test_recommend_mode_decides_and_never_writes(k8s_api, prom, web):
    p = policy(web, mode="recommend")
    load(prom, web, 50)
    before = resource_version(k8s_api, web["namespace"])
    decision = evaluate(p)
    assert (decision.outcome, decision.desired_replicas) == ("recommended", 5)
    assert spec_replicas(k8s_api, web["namespace"]) == 1
    assert resource_version(k8s_api, web["namespace"]) == before
    assert not AuditEvent.objects.filter(action="scaler.scale").exists()


def test_a_schedule_floor_raises_replicas_while_its_window_is_open(k8s_api, prom, web):
    always = {
        "name": "all day",
        "rrule": "FREQ=DAILY;BYHOUR=0",
        "duration_minutes": 1440,
        "timezone": "Europe/Berlin",
        "min_replicas": 2,
    }
    p = policy(web, schedules=[always])
    load(prom, web, 10)
    decision = evaluate(p)
    assert (decision.outcome, decision.desired_replicas) == ("applied", 2)
    assert decision.inputs["limits"]["schedule"]["window"] == "all day"
    assert spec_replicas(k8s_api, web["namespace"]) == 2


# --- stops: kill switch, global pause, Prometheus down -----------------------------------------------------------


def test_the_kill_switch_and_the_global_pause_stop_writes_at_once(k8s_api, prom, web, admin_persona):
    p = policy(web)
    root = admin_persona.user
    load(prom, web, 30)
    services.kill_switch_set(application=web["application"], on=True, reason="incident 42", by=root)
    killed = evaluate(p)
    assert (killed.outcome, killed.desired_replicas) == ("killed", 3)
    assert spec_replicas(k8s_api, web["namespace"]) == 1
    services.kill_switch_set(application=web["application"], on=False, reason="over", by=root)

    services.global_pause_set(on=True, reason="freeze", by=root)
    try:
        paused = evaluate(p)
        assert paused.outcome == "paused"
        assert spec_replicas(k8s_api, web["namespace"]) == 1
        p.refresh_from_db()
        assert p.status == "paused" and "paused globally" in p.status_message
    finally:
        services.global_pause_set(on=False, reason="thaw", by=root)
    assert evaluate(p).outcome == "applied"
    assert spec_replicas(k8s_api, web["namespace"]) == 3
    events = AuditEvent.objects.filter(action__startswith="scaler.").order_by("seq")
    actions = list(events.values_list("action", "message"))
    assert ("scaler.kill_switch.on", "incident 42") in actions and ("scaler.global_pause.on", "freeze") in actions


def test_a_prometheus_that_is_down_leaves_replicas_untouched_and_degrades_the_policy(k8s_api, prom, web):
    p = policy(web)
    load(prom, web, 30)
    prom.stop()
    try:
        decision = evaluate(p)
    finally:
        prom.start()
    assert decision.outcome == "degraded"
    assert decision.desired_replicas == decision.current_replicas == 1
    assert "unreachable" in decision.reason
    assert spec_replicas(k8s_api, web["namespace"]) == 1
    p.refresh_from_db()
    assert p.status == "degraded" and "Prometheus" in p.status_message


# --- ownership -----------------------------------------------------------------------------------------------------


def make_hpa(api: k8s.ApiClient, namespace: str, *, min_replicas: int = 1, max_replicas: int = 5) -> None:
    k8s.AutoscalingV1Api(api).create_namespaced_horizontal_pod_autoscaler(
        namespace,
        k8s.V1HorizontalPodAutoscaler(
            metadata=k8s.V1ObjectMeta(name="web-hpa"),
            spec=k8s.V1HorizontalPodAutoscalerSpec(
                scale_target_ref=k8s.V1CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name="web"
                ),
                min_replicas=min_replicas,
                max_replicas=max_replicas,
            ),
        ),
    )


def test_an_hpa_targeting_the_workload_stops_an_active_policy_with_a_visible_conflict(k8s_api, prom, web):
    make_hpa(k8s_api, web["namespace"])
    p = policy(web)
    load(prom, web, 30)
    decision = evaluate(p)
    assert decision.outcome == "conflict"
    assert "HorizontalPodAutoscaler web-hpa" in decision.reason
    p.refresh_from_db()
    assert p.status == "conflict" and "web-hpa" in p.status_message
    assert spec_replicas(k8s_api, web["namespace"]) == 1
    assert not AuditEvent.objects.filter(action="scaler.scale").exists()


def test_drive_hpa_mode_moves_the_hpa_floor_instead_of_the_replicas(k8s_api, prom, web):
    make_hpa(k8s_api, web["namespace"], max_replicas=4)
    p = policy(web, conflict_mode="drive_hpa")
    load(prom, web, 30)
    decision = evaluate(p)
    assert decision.outcome == "applied" and "drove HPA web-hpa" in decision.reason
    hpa = k8s.AutoscalingV1Api(k8s_api).read_namespaced_horizontal_pod_autoscaler("web-hpa", web["namespace"])
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (3, 6)
    assert AuditEvent.objects.filter(action="scaler.hpa.drive").exists()


def test_a_replica_count_owned_by_a_gitops_manager_stops_an_active_policy(k8s_api, prom, web):
    gateway = gateways.for_cluster(web["cluster"])
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": web["namespace"]},
        "spec": {"replicas": 1},
    }
    gateway.raw(
        "PATCH",
        f"/apis/apps/v1/namespaces/{web['namespace']}/deployments/web",
        query={"fieldManager": "argocd", "force": "true"},
        body=body,
        content_type="application/apply-patch+yaml",
    )
    p = policy(web)
    load(prom, web, 30)
    decision = evaluate(p)
    assert decision.outcome == "conflict", decision.reason
    assert "field manager 'argocd' owns spec.replicas" in decision.reason
    p.refresh_from_db()
    assert p.status == "conflict" and "argocd" in p.status_message
    assert spec_replicas(k8s_api, web["namespace"]) == 1


# --- pushed signals through a real worker -------------------------------------------------------------------------


@pytest.fixture
def decisions_worker(tmp_path):
    """A real Celery worker process consuming the ``decisions`` queue (same database and Redis as the test)."""
    log_path = tmp_path / "worker.log"
    process = start_celery_worker(
        log_path, queue="decisions", hostname=f"scaler-{free_port()}", WORKER_METRICS_PORT="0"
    )
    try:
        yield log_path
    finally:
        stop_process(process)


@pytest.mark.django_db(transaction=True)
def test_a_pushed_signal_triggers_a_decision_without_waiting_for_the_periodic_one(
    k8s_api, web, make_user, decisions_worker
):
    p = services.policy_create(
        application=web["application"],
        mode="active",
        min_replicas=1,
        max_replicas=6,
        metrics=[{"name": "rps", "target": 10}],
    )
    # policy_create asks for one evaluation: its decision shows the worker is up (no signal yet: holding).
    wait_for(
        "the worker's first evaluation",
        lambda: Decision.objects.filter(policy=p, trigger="manual").exists(),
        timeout=60,
        interval=0.1,
    )
    operator = make_user("sig-operator")
    RoleBinding.objects.create(
        user=operator.user,
        role="operator",
        scope_kind="application",
        scope_cluster=str(web["cluster"].pk),
        scope_application="shop",
    )
    c = Client()
    c.force_login(operator.user)
    started = time.monotonic()
    response = c.post(
        "/api/v1/scaler/signals/",
        json.dumps(
            {
                "application": web["application"].pk,
                "metric": "rps",
                "values": [{"pod": pod, "value": 30} for pod in web["pods"]],
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    wait_for(
        "the real Deployment at 3 replicas",
        lambda: spec_replicas(k8s_api, web["namespace"]) == 3,
        timeout=30,
        interval=0.02,
    )
    reaction = time.monotonic() - started
    decision = wait_for(
        "the signal's decision row to record the outcome",
        lambda: Decision.objects.filter(policy=p, trigger="signal", outcome="applied").first(),
        timeout=10,
    )
    assert decision.inputs["metrics"]["rps"]["source"] == "signal"
    print(
        f"\npushed signal -> scale seen by the apiserver in {reaction:.3f}s (bound of this test: 30 s; "
        "includes the 0.2 s debounce)"
    )
