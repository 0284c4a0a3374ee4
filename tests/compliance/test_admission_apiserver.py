"""Admission through the real kube-apiserver: ICC serves its webhook over TLS (a test CA) from a real web process,
applies the generated ValidatingWebhookConfiguration to the cluster itself, and the API server calls it for every
Deployment create. An ``enforce`` binding denies with ICC's message, a ``warn`` binding admits with a warning, a
compliant Deployment passes, an approved exception lets a violating one in (the web process's snapshot follows the
approval through Redis), and with ICC unreachable creates fail open or closed as configured."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from apps.compliance import webhook_config
from apps.compliance.models import AdmissionWebhook, Binding, Policy
from apps.compliance.services import exceptions, webhooks
from tests.support.clusters import register
from tests.support.components import free_port, wait_for
from tests.support.kube import KubeCluster
from tests.support.server import RunningServer, running_icc
from tests.support.tls import issue_server_certificate

pytestmark = pytest.mark.django_db(transaction=True)

# Not privileged: the test API server refuses privileged containers itself (--allow-privileged=false), before
# any webhook is asked. An added capability outside baseline's list is ICC's to judge.
CHECK = "pss.baseline.capabilities"


def body(name: str, *, risky: bool = False, image: str = "registry.example/shop:1.0") -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image}
    if risky:
        container["securityContext"] = {"capabilities": {"add": ["SYS_ADMIN"]}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def create(kube: KubeCluster, namespace: str, manifest: dict[str, Any]) -> requests.Response:
    """A create as kubectl sends it (raw, so the answer's Warning headers can be read)."""
    return requests.post(
        f"{kube.url}/apis/apps/v1/namespaces/{namespace}/deployments",
        json=manifest,
        headers={"Authorization": f"Bearer {kube.token}"},
        verify=str(kube.ca_path),
        timeout=30,
    )


@pytest.fixture
def tls(tmp_path) -> tuple:
    return issue_server_certificate(tmp_path / "tls")


@pytest.fixture
def https_icc(transactional_db, tmp_path, collected_static, tls) -> Iterator[RunningServer]:
    with running_icc(tmp_path, collected_static, free_port(), tls=tls) as server:
        yield server


@pytest.fixture
def webhook(kube: KubeCluster) -> Iterator[AdmissionWebhook]:
    """The cluster registered with ICC and its webhook settings; the configuration is removed from the shared API
    server at the end whatever happens (a fail-closed webhook left behind would block every other test)."""
    cluster = register(kube)
    try:
        yield webhooks.webhook_configure(cluster=cluster)
    finally:
        requests.delete(
            f"{kube.url}{webhook_config.PATH}/{webhook_config.NAME}",
            headers={"Authorization": f"Bearer {kube.token}"},
            verify=str(kube.ca_path),
            timeout=30,
        )


def bind(webhook: AdmissionWebhook, namespace: str, policy: str, mode: str, check_id: str = "") -> None:
    Binding.objects.create(
        policy=Policy.objects.get(key=policy),
        check_id=check_id,
        mode=mode,
        scope_kind="namespace",
        scope_cluster=str(webhook.cluster_id),
        scope_namespace=namespace,
    )


def test_enforce_warn_and_exceptions_through_the_api_server(
    kube, namespace, https_icc, tls, webhook, admin_persona, operator_persona
):
    bind(webhook, namespace, "pss-baseline", "enforce")
    bind(webhook, namespace, "best-practice", "warn", check_id="bp.image-tag")
    webhook = webhooks.webhook_configure(cluster=webhook.cluster, failure_policy="Fail", by=admin_persona.user)
    webhooks.webhook_apply(webhook=webhook, base_url=https_icc.url, ca_pem=tls[2].read_bytes(), by=admin_persona.user)

    compliant = create(kube, namespace, body("web"))
    assert compliant.status_code == 201, compliant.text
    assert "ICC compliance" not in compliant.headers.get("Warning", "")

    denied = create(kube, namespace, body("root-shell", risky=True))
    assert denied.status_code == 403, denied.text
    message = denied.json()["message"]
    assert webhook_config.WEBHOOK_NAME in message and "ICC compliance denied Deployment" in message
    assert CHECK in message and "Fix:" in message

    warned = create(kube, namespace, body("floating", image="nginx:latest"))
    assert warned.status_code == 201, warned.text
    assert "bp.image-tag" in warned.headers.get("Warning", "")

    exception = exceptions.exception_request(
        policy=Policy.objects.get(key="pss-baseline"),
        check_id=CHECK,
        scope_kind="namespace",
        scope_cluster=str(webhook.cluster_id),
        scope_namespace=namespace,
        match_names=["legacy-*"],
        reason="the legacy agent needs it until the rewrite",
        owner="platform",
        expires_at=datetime.now(UTC) + timedelta(days=7),
        by=operator_persona.user,
    )
    # Pending (not approved by a second person): still denied.
    assert create(kube, namespace, body("legacy-agent", risky=True)).status_code == 403
    exceptions.exception_approve(exception=exception, by=admin_persona.user)
    # The approval reaches the web process's snapshot through Redis within moments, no restart.
    admitted = wait_for(
        "the approved exception to admit legacy-agent",
        lambda: (r := create(kube, namespace, body("legacy-agent", risky=True))).status_code == 201 and r,
        timeout=10,
        interval=0.2,
    )
    assert admitted.status_code == 201
    assert create(kube, namespace, body("other-agent", risky=True)).status_code == 403  # names do not match


def test_icc_unreachable_fails_open_or_closed_as_configured(kube, namespace, webhook, tls, admin_persona):
    bind(webhook, namespace, "pss-baseline", "enforce")
    nowhere = f"https://127.0.0.1:{free_port()}"  # nothing listens there: ICC is down
    webhook = webhooks.webhook_configure(
        cluster=webhook.cluster, failure_policy="Ignore", timeout_seconds=2, by=admin_persona.user
    )
    webhooks.webhook_apply(webhook=webhook, base_url=nowhere, ca_pem=tls[2].read_bytes(), by=admin_persona.user)
    opened = create(kube, namespace, body(f"open-{uuid.uuid4().hex[:6]}", risky=True))
    assert opened.status_code == 201, opened.text  # fail open: admitted although it violates an enforced check

    webhook = webhooks.webhook_configure(cluster=webhook.cluster, failure_policy="Fail", by=admin_persona.user)
    webhooks.webhook_apply(webhook=webhook, base_url=nowhere, ca_pem=tls[2].read_bytes(), by=admin_persona.user)
    closed = create(kube, namespace, body(f"closed-{uuid.uuid4().hex[:6]}"))
    assert closed.status_code == 500, closed.text  # InternalError: the API server could not ask ICC
    assert "failed calling webhook" in closed.json()["message"]  # fail closed: refused, even a compliant one
