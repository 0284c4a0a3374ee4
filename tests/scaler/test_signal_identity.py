"""Signals pushed by a workload with its own ServiceAccount token (TokenReview on the real kube-apiserver):
accepted for its own application, refused for another application's pods, never moving replicas then."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from kubernetes import client as k8s

from apps.clusters.models import Application, Pod
from apps.scaler import services
from apps.scaler.models import Signal
from tests.support.clusters import make_deployment, ready_pods, register, sa_token, service_account, synced
from tests.support.kube import KubeCluster

pytestmark = [pytest.mark.timeout(45 * 60), pytest.mark.django_db]
SIGNALS = "/api/v1/scaler/signals/"


@pytest.fixture
def two_apps(kube: KubeCluster, k8s_api: k8s.ApiClient, new_namespace: Callable[[], str]) -> dict[str, Any]:
    """Applications ``shop`` (ServiceAccount shop-sa) and ``blog`` (blog-sa) in one namespace, each with a policy
    on the pushed metric ``rps``."""
    namespace = new_namespace()
    for name in ("shop", "blog"):
        service_account(k8s_api, namespace, f"{name}-sa")
        make_deployment(k8s_api, namespace, f"{name}-web", part_of=name, service_account=f"{name}-sa")
        ready_pods(k8s_api, namespace, f"{name}-web", 1)
    cluster = synced(register(kube))
    apps = {a.name: a for a in Application.objects.filter(cluster=cluster, namespace=namespace)}
    for app in apps.values():
        services.policy_create(
            application=app, mode="recommend", min_replicas=1, max_replicas=4, metrics=[{"name": "rps", "target": 10}]
        )
    return {"cluster": cluster, "namespace": namespace, "apps": apps}


def push(token: str, cluster: str, body: dict[str, Any]) -> Any:
    return Client().post(
        SIGNALS,
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_X_ICC_CLUSTER=cluster,
    )


def test_a_workload_pushes_signals_for_its_own_application_only(k8s_api, two_apps):
    cluster, namespace, apps = two_apps["cluster"], two_apps["namespace"], two_apps["apps"]
    shop_pod = Pod.objects.get(cluster=cluster, namespace=namespace, application=apps["shop"]).name
    blog_pod = Pod.objects.get(cluster=cluster, namespace=namespace, application=apps["blog"]).name
    token = sa_token(k8s_api, namespace, "shop-sa")

    accepted = push(token, cluster.name, {"metric": "rps", "values": [{"pod": shop_pod, "value": 25}]})
    assert accepted.status_code == 202, accepted.content
    assert Signal.objects.filter(application=apps["shop"], pod=shop_pod, value=25).exists()

    # The shop's identity naming the blog (by application or by its pod) is refused and stores nothing.
    other = push(
        token,
        cluster.name,
        {"application": apps["blog"].pk, "metric": "rps", "values": [{"pod": blog_pod, "value": 99}]},
    )
    assert other.status_code in (400, 403), other.content
    assert "application" in json.dumps(other.json()["error"])
    foreign_pod = push(token, cluster.name, {"metric": "rps", "values": [{"pod": blog_pod, "value": 99}]})
    assert foreign_pod.status_code == 400, foreign_pod.content
    assert not Signal.objects.filter(application=apps["blog"]).exists()
    assert not Signal.objects.filter(value=99).exists()
