"""A compliance binding may hold ``enforce`` to ``warn`` during a maintenance window (admission answered in
process, real PostgreSQL and Redis); other bindings keep enforcing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.calendar import services as calendar_services
from apps.compliance import admission, cache
from apps.compliance.models import Binding, Policy
from apps.compliance.services import policies, webhooks
from tests.support.rows import cluster_row

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("calendar_clean")]


def privileged(namespace: str) -> dict[str, Any]:
    container = {"name": "app", "image": "nginx:1.27", "securityContext": {"privileged": True}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace, "labels": {"app.kubernetes.io/name": "web"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container]}},
        },
    }


def answer(webhook: Any, obj: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "operation": "CREATE",
            "namespace": obj["metadata"]["namespace"],
            "name": "web",
            "object": obj,
            "userInfo": {"username": "ci"},
        },
    }
    return admission.review(webhook.cluster_id, webhook.token(), json.dumps(body).encode())["response"]


def maintenance(cluster: Any, namespace: str) -> Any:
    start = (datetime.now(UTC) - timedelta(minutes=10)).replace(second=0, microsecond=0)
    return calendar_services.entry_create(
        kind="maintenance",
        title="node upgrades",
        start_date=start.date(),
        start_time=start.time(),
        timezone="UTC",
        duration_minutes=60,
        reason="kernel patches",
        owner="platform",
        scope_kind="namespace",
        scope_cluster=str(cluster.pk),
        scope_namespace=namespace,
    )


def test_enforce_is_held_to_warn_in_maintenance_only_where_the_binding_says_so():
    cluster = cluster_row("prod")
    webhook = webhooks.webhook_configure(cluster=cluster)
    policy = Policy.objects.get(key="pss-baseline")
    policies.binding_create(
        policy=policy,
        mode="enforce",
        warn_in_maintenance=True,
        scope_kind="namespace",
        scope_cluster=str(cluster.pk),
        scope_namespace="shop",
    )
    policies.binding_create(
        policy=policy, mode="enforce", scope_kind="namespace", scope_cluster=str(cluster.pk), scope_namespace="blog"
    )
    assert Binding.objects.get(scope_namespace="shop").warn_in_maintenance is True
    cache.rebuild()
    assert answer(webhook, privileged("shop"))["allowed"] is False, "outside maintenance: enforced"

    maintenance(cluster, "shop")
    maintenance(cluster, "blog")
    held = answer(webhook, privileged("shop"))
    assert held["allowed"] is True
    assert any("enforce held to warn: maintenance until" in w for w in held["warnings"]), held
    assert answer(webhook, privileged("blog"))["allowed"] is False, "a binding without the flag keeps enforcing"
