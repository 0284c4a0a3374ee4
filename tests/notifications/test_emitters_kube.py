"""The emitters of clusters and the scaler against the real kube-apiserver (controller-manager, scheduler, fake
node), recorded by the real sink (the notifications ``Event`` rows): a cluster whose credentials lack permissions
(asked with SelfSubjectAccessReview at registration and at every full sync) until a ClusterRole grants them, and a
scaling policy degraded by missing metrics or in conflict with an HPA until that clears."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s

from apps.notifications.models import Event
from tests.support.clusters import READ_RULES, make_deployment, ready_pods, register, service_account_token, synced
from tests.support.components import free_port, wait_for
from tests.support.kube import KubeCluster

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(15 * 60)]


def events(kind_prefix: str) -> list[Event]:
    return list(Event.objects.filter(kind__startswith=kind_prefix).order_by("pk"))


def scope_of(event: Event) -> tuple[str, str, str, str]:
    return (event.scope_kind, event.scope_cluster, event.scope_namespace, event.scope_application)


# --- clusters: missing RBAC permissions --------------------------------------------------------------------------


def test_missing_permissions_are_one_condition_per_cluster_resolved_when_a_role_grants_them(kube, k8s_api):
    from apps.clusters import sync
    from apps.clusters.models import Cluster

    name = f"reader-{uuid.uuid4().hex[:6]}"
    token = service_account_token(kube, rules=READ_RULES, name=name)
    cluster = register(kube, token=token)
    [missing] = events("clusters.permissions")
    assert (missing.kind, missing.severity, missing.resolves) == ("clusters.permissions_missing", "warning", False)
    assert missing.dedup_key == f"clusters.permissions_missing:{cluster.pk}"
    assert scope_of(missing) == ("cluster", str(cluster.pk), "", "") and missing.link == f"/clusters/{cluster.pk}/"
    assert "get, update apps/deployments/scale" in missing.text and "get pods/log" in missing.text
    assert token not in missing.text

    sync.full_sync(cluster.pk)  # the sync asks again and finds the same gaps: the same condition, nothing new
    assert len(events("clusters.permissions")) == 1

    rbac = k8s.RbacAuthorizationV1Api(k8s_api)
    grant = f"{name}-admin"
    rbac.create_cluster_role_binding(
        k8s.V1ClusterRoleBinding(
            metadata=k8s.V1ObjectMeta(name=grant),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=name, namespace="default")],
        )
    )
    try:

        def granted() -> bool:
            sync.full_sync(cluster.pk)
            return Cluster.objects.get(pk=cluster.pk).missing_permissions == []

        wait_for("a full sync to see the granted permissions", granted, timeout=30, interval=0.5)
        resolved = events("clusters.permissions")[-1]
        assert (resolved.kind, resolved.severity, resolved.resolves) == ("clusters.permissions_granted", "info", True)
        assert resolved.dedup_key == missing.dedup_key
        sync.full_sync(cluster.pk)
        assert len(events("clusters.permissions")) == 2, "all present again and still: nothing new"
    finally:
        rbac.delete_cluster_role_binding(grant)

    def lost() -> bool:
        sync.full_sync(cluster.pk)
        return bool(Cluster.objects.get(pk=cluster.pk).missing_permissions)

    wait_for("a full sync to see the permissions taken away", lost, timeout=30, interval=0.5)
    again = events("clusters.permissions")[-1]
    assert (again.kind, again.dedup_key, again.resolves) == ("clusters.permissions_missing", missing.dedup_key, False)
    assert len(events("clusters.permissions")) == 3


# --- scaler: degraded and in conflict ------------------------------------------------------------------------------

LOAD = {"name": "load", "source": "cpu", "target": 0.5}  # a template: no PromQL to check at creation


@pytest.fixture
def web(kube: KubeCluster, k8s_api: k8s.ApiClient, new_namespace: Callable[[], str], settings: Any) -> dict[str, Any]:
    """Deployment ``web`` (application ``shop``, 1 ready pod) in a fresh namespace of a synced cluster, with a
    Prometheus address where nothing listens (metrics come from pushed signals or not at all)."""
    from apps.clusters.models import Workload

    settings.PROMETHEUS_URL = f"http://127.0.0.1:{free_port()}"
    namespace = new_namespace()
    make_deployment(k8s_api, namespace, "web", replicas=1, part_of="shop")
    ready_pods(k8s_api, namespace, "web", 1)
    cluster = synced(register(kube))
    workload = Workload.objects.select_related("application").get(cluster=cluster, namespace=namespace, name="web")
    return {
        "namespace": namespace,
        "application": workload.application,
        "pods": list(workload.pods.values_list("name", flat=True)),
    }


def _evaluate(policy: Any) -> Any:
    from apps.scaler import evaluation

    decision = evaluation.evaluate(policy.pk, "manual")
    assert decision is not None
    return decision


def _push(web: dict[str, Any], value: float) -> None:
    from apps.scaler.services.signals import record_signals

    record_signals(
        application=web["application"], metric="load", values=[{"pod": p, "value": value} for p in web["pods"]]
    )


def test_a_degraded_policy_is_announced_once_and_recovers_when_signals_arrive(web):
    from apps.scaler import services
    from apps.scaler.models import Decision

    policy = services.policy_create(application=web["application"], mode="active", metrics=[LOAD], max_replicas=4)
    Decision.objects.filter(policy=policy).delete()
    app = web["application"]
    for _ in range(2):  # no signal and Prometheus down: degraded, twice, one condition
        assert _evaluate(policy).outcome == "degraded"
    [degraded] = events("scaler.")
    assert (degraded.kind, degraded.severity, degraded.resolves) == ("scaler.degraded", "error", False)
    assert degraded.dedup_key == f"scaler.degraded:{policy.pk}"
    assert scope_of(degraded) == ("application", str(app.cluster_id), "", "shop")
    assert degraded.link == f"/scaler/applications/{app.pk}/" and "unreachable" in degraded.text.lower()

    _push(web, 0.5)  # on target: the next evaluation decides again
    assert _evaluate(policy).outcome == "unchanged"
    recovered = events("scaler.")[-1]
    assert (recovered.kind, recovered.severity, recovered.resolves) == ("scaler.recovered", "info", True)
    assert recovered.dedup_key == degraded.dedup_key
    _push(web, 0.5)
    _evaluate(policy)
    assert len(events("scaler.")) == 2, "healthy and still healthy: nothing new"


def test_an_hpa_fighting_over_the_replicas_is_a_conflict_until_it_is_gone(web, k8s_api):
    from apps.scaler import services
    from apps.scaler.models import Decision

    autoscaling = k8s.AutoscalingV1Api(k8s_api)
    autoscaling.create_namespaced_horizontal_pod_autoscaler(
        web["namespace"],
        k8s.V1HorizontalPodAutoscaler(
            metadata=k8s.V1ObjectMeta(name="web-hpa"),
            spec=k8s.V1HorizontalPodAutoscalerSpec(
                scale_target_ref=k8s.V1CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name="web"
                ),
                min_replicas=1,
                max_replicas=5,
            ),
        ),
    )
    policy = services.policy_create(application=web["application"], mode="active", metrics=[LOAD], max_replicas=4)
    Decision.objects.filter(policy=policy).delete()
    for _ in range(2):
        _push(web, 1.5)
        assert _evaluate(policy).outcome == "conflict"
    [conflict] = events("scaler.")
    assert (conflict.kind, conflict.severity, conflict.resolves) == ("scaler.conflict", "warning", False)
    assert conflict.dedup_key == f"scaler.conflict:{policy.pk}" and "web-hpa" in conflict.text
    assert scope_of(conflict) == ("application", str(web["application"].cluster_id), "", "shop")

    autoscaling.delete_namespaced_horizontal_pod_autoscaler("web-hpa", web["namespace"])
    _push(web, 1.5)

    def decided() -> bool:
        _push(web, 1.5)
        return _evaluate(policy).outcome != "conflict"

    wait_for("ICC to see the HPA gone", decided, timeout=30, interval=0.5)
    resolved = events("scaler.")[-1]
    assert (resolved.kind, resolved.resolves, resolved.dedup_key) == (
        "scaler.conflict_resolved",
        True,
        conflict.dedup_key,
    )
    assert len(events("scaler.")) == 2
