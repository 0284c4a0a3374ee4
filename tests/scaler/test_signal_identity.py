"""Signals pushed by a workload with its own ServiceAccount token (TokenReview on the real kube-apiserver):
accepted for its own application, refused for another application's pods, never moving replicas then."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from apps.clusters.models import Pod
from apps.scaler import services
from apps.scaler.models import Signal
from tests.support.clusters import sa_token

pytestmark = [pytest.mark.timeout(45 * 60), pytest.mark.django_db]
SIGNALS = "/api/v1/scaler/signals/"


@pytest.fixture
def two_apps(shop_and_blog: dict[str, Any]) -> dict[str, Any]:
    """``shop_and_blog``, each application with a policy on the pushed metric ``rps``."""
    for app in shop_and_blog["apps"].values():
        services.policy_create(
            application=app, mode="recommend", min_replicas=1, max_replicas=4, metrics=[{"name": "rps", "target": 10}]
        )
    return shop_and_blog


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
