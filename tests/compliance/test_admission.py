"""The admission webhook answered in process (real PostgreSQL and Redis): the path token, malformed reviews,
enforce/warn/audit bindings, scopes, exceptions that start and stop applying, CEL policies, the snapshot following
policy changes without a database read per answer, and the generated ValidatingWebhookConfiguration. The same
webhook called by the real kube-apiserver over TLS is in test_admission_apiserver.py."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import ANY

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.compliance import admission, cache, webhook_config
from apps.compliance.models import AdmissionWebhook, Binding, Policy, PolicyException
from apps.compliance.services import webhooks
from apps.core.errors import DomainError, ForbiddenError
from tests.support.rows import cluster_row

pytestmark = pytest.mark.django_db(transaction=True)

PRIVILEGED = "pss.baseline.privileged"


def deployment(name: str, namespace: str = "shop", *, privileged: bool = False, image: str = "nginx:1.27") -> dict:
    container: dict[str, Any] = {"name": "app", "image": image}
    if privileged:
        container["securityContext"] = {"privileged": True}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def review_body(obj: dict, *, operation: str = "CREATE", kind: str = "Deployment", group: str = "apps") -> bytes:
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": {"group": group, "version": "v1", "kind": kind},
                "operation": operation,
                "namespace": obj["metadata"].get("namespace", ""),
                "name": obj["metadata"].get("name", ""),
                "object": obj,
                "userInfo": {"username": "ci"},
            },
        }
    ).encode()


@pytest.fixture
def cluster():
    return cluster_row("prod")


@pytest.fixture
def webhook(cluster):
    webhook = webhooks.webhook_configure(cluster=cluster)
    cache.rebuild()
    return webhook


def bind(cluster, policy: str, mode: str, *, check_id: str = "", namespace: str = "") -> Binding:
    scope = {"scope_kind": "namespace", "scope_cluster": str(cluster.pk), "scope_namespace": namespace}
    if not namespace:
        scope = {"scope_kind": "cluster", "scope_cluster": str(cluster.pk)}
    binding = Binding.objects.create(policy=Policy.objects.get(key=policy), mode=mode, check_id=check_id, **scope)
    cache.rebuild()
    return binding


def answer(webhook: AdmissionWebhook, obj: dict, **kwargs: Any) -> dict:
    result = admission.review(webhook.cluster_id, webhook.token(), review_body(obj, **kwargs))
    return result["response"]


def test_wrong_token_or_cluster_is_refused(client, webhook, cluster):
    body = review_body(deployment("web"))
    url = f"/compliance/admission/{cluster.pk}/{'0' * 40}"
    assert client.post(url, body, content_type="application/json").status_code == 403
    other = cluster_row("other")  # a cluster without a webhook: no token is right
    url = f"/compliance/admission/{other.pk}/{webhook.token()}"
    assert client.post(url, body, content_type="application/json").status_code == 403
    url = f"/compliance/admission/{cluster.pk}/{webhook.token()}"
    response = client.post(url, body, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["response"]["allowed"] is True
    assert client.get(url).status_code == 405


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"not json", "not JSON"),
        (json.dumps({"kind": "Nope"}).encode(), "kind"),
        (json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1"}).encode(), "apiVersion"),
        (json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}).encode(), "uid"),
    ],
)
def test_a_malformed_review_is_a_400_naming_what_is_wrong(client, webhook, body, named):
    url = f"/compliance/admission/{webhook.cluster_id}/{webhook.token()}"
    response = client.post(url, body, content_type="application/json")
    assert response.status_code == 400
    assert named in response.json()["error"]


def test_an_oversized_review_is_refused_before_it_is_read(client, webhook):
    url = f"/compliance/admission/{webhook.cluster_id}/{webhook.token()}"
    body = b"{" + b" " * (admission.MAX_BODY_BYTES + 10) + b"}"
    assert client.post(url, body, content_type="application/json").status_code == 413


def test_enforce_denies_naming_each_check_and_its_remediation(webhook, cluster):
    bind(cluster, "pss-baseline", "enforce")
    response = answer(webhook, deployment("web", privileged=True))
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    message = response["status"]["message"]
    assert PRIVILEGED in message
    assert "Fix:" in message and "privileged" in message.lower()
    assert answer(webhook, deployment("web"))["allowed"] is True


def test_warn_admits_with_a_warning_and_audit_only_records(webhook, cluster):
    bind(cluster, "best-practice", "warn", check_id="bp.image-tag")
    response = answer(webhook, deployment("web", image="nginx:latest"))
    assert response["allowed"] is True
    assert any("bp.image-tag" in w for w in response["warnings"])
    assert all(len(w) <= admission.MAX_WARNING_LENGTH for w in response["warnings"])
    bind(cluster, "pss-baseline", "audit")  # audit bindings never affect admission
    response = answer(webhook, deployment("web", privileged=True))
    assert response["allowed"] is True
    assert not any(PRIVILEGED in w for w in response.get("warnings", []))


def test_the_strictest_mode_wins_and_scopes_are_compared_whole(webhook, cluster):
    bind(cluster, "pss-baseline", "warn")
    bind(cluster, "pss-baseline", "enforce", check_id=PRIVILEGED, namespace="payments")
    assert answer(webhook, deployment("web", "payments", privileged=True))["allowed"] is False
    shop = answer(webhook, deployment("web", "shop", privileged=True))  # the enforce binding is another namespace's
    assert shop["allowed"] is True and any(PRIVILEGED in w for w in shop["warnings"])
    other = cluster_row("other")
    other_webhook = webhooks.webhook_configure(cluster=other)
    cache.rebuild()
    # The same namespace name on another cluster is another scope.
    assert answer(other_webhook, deployment("web", "payments", privileged=True)) == {"uid": ANY, "allowed": True}


def test_only_workload_creates_and_updates_are_judged(webhook, cluster):
    bind(cluster, "pss-baseline", "enforce")
    bad = deployment("web", privileged=True)
    assert answer(webhook, bad, operation="UPDATE")["allowed"] is False
    assert answer(webhook, bad, operation="DELETE")["allowed"] is True
    assert answer(webhook, bad, kind="ConfigMap", group="")["allowed"] is True


def test_an_approved_exception_admits_until_it_expires(webhook, cluster, admin_persona, operator_persona):
    bind(cluster, "pss-baseline", "enforce")
    exception = PolicyException.objects.create(
        policy=Policy.objects.get(key="pss-baseline"),
        check_id=PRIVILEGED,
        scope_kind="cluster",
        scope_cluster=str(cluster.pk),
        match_names=["legacy-*"],
        reason="legacy",
        owner="shop",
        expires_at=datetime.now(UTC) + timedelta(days=1),
        requested_by=operator_persona.user,
    )
    cache.rebuild()
    assert answer(webhook, deployment("legacy-1", privileged=True))["allowed"] is False  # pending: no effect
    PolicyException.objects.filter(pk=exception.pk).update(
        approved_at=datetime.now(UTC), approved_by=admin_persona.user
    )
    cache.rebuild()
    assert answer(webhook, deployment("legacy-1", privileged=True))["allowed"] is True
    assert answer(webhook, deployment("modern-1", privileged=True))["allowed"] is False  # names do not match
    # Expiry needs no rebuild: it is checked at each answer.
    PolicyException.objects.filter(pk=exception.pk).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    snapshot = cache.current()
    assert snapshot.exceptions[0].expires_at > datetime.now(UTC)  # the snapshot still holds the old expiry ...
    snapshot.exceptions[0].expires_at = datetime.now(UTC) - timedelta(seconds=1)
    assert answer(webhook, deployment("legacy-1", privileged=True))["allowed"] is False  # ... yet it stops applying


def test_cel_policies_enforce_and_a_runtime_error_does_not_crash(webhook, cluster):
    policy = Policy.objects.create(
        key="team-label",
        name="Team label",
        kind="cel",
        severity="high",
        validations=[
            {"expression": "has(object.metadata.labels) && 'team' in object.metadata.labels", "message": "needs team"},
            {"expression": "object.spec.replicas / 0 > 1", "message": "divides by zero"},
        ],
        match={"kinds": ["Deployment"]},
    )
    Binding.objects.create(policy=policy, mode="enforce", scope_kind="cluster", scope_cluster=str(cluster.pk))
    cache.rebuild()
    response = answer(webhook, deployment("web"))
    assert response["allowed"] is False
    assert "needs team" in response["status"]["message"]
    assert "divides by zero" not in response["status"]["message"]  # an error is not a failure


def test_policy_changes_reach_the_snapshot_at_commit_and_answers_read_no_database(webhook, cluster):
    assert answer(webhook, deployment("web", privileged=True))["allowed"] is True
    before = cache.current().generation
    Binding.objects.create(
        policy=Policy.objects.get(key="pss-baseline"),
        mode="enforce",
        scope_kind="cluster",
        scope_cluster=str(cluster.pk),
    )
    from django.db import transaction

    with transaction.atomic():
        cache.policies_changed()  # what every policy/binding/exception service calls
    assert cache.current().generation > before
    with CaptureQueriesContext(connection) as queries:
        assert answer(webhook, deployment("web", privileged=True))["allowed"] is False
    assert len(queries) == 0


def test_the_generated_configuration(webhook, settings):
    settings.ICC_NAMESPACE = "icc-system"
    manifest = webhook_config.configuration(
        webhook, base_url="https://icc.example.com/", ca_pem=b"-----BEGIN CERTIFICATE-----\nx\n"
    )
    hook = manifest["webhooks"][0]
    assert manifest["kind"] == "ValidatingWebhookConfiguration"
    assert (
        hook["clientConfig"]["url"]
        == f"https://icc.example.com/compliance/admission/{webhook.cluster_id}/{webhook.token()}"
    )
    assert base64.b64decode(hook["clientConfig"]["caBundle"]).startswith(b"-----BEGIN CERTIFICATE-----")
    assert hook["failurePolicy"] == "Ignore" and hook["timeoutSeconds"] == 5
    assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["icc-system", "kube-system"]
    assert set(hook["rules"][0]["resources"]) == {"deployments", "statefulsets", "daemonsets"}
    masked = webhook_config.configuration(webhook, base_url="https://icc.example.com", masked=True)
    assert webhook.token() not in json.dumps(masked)
    service = webhook_config.configuration(webhook, base_url="", service="icc-system/icc-web:8443")
    assert service["webhooks"][0]["clientConfig"]["service"] == {
        "namespace": "icc-system",
        "name": "icc-web",
        "port": 8443,
        "path": f"/compliance/admission/{webhook.cluster_id}/{webhook.token()}",
    }
    with pytest.raises(DomainError) as plain:
        webhook_config.configuration(webhook, base_url="http://icc.example.com")
    assert plain.value.field == "url"
    with pytest.raises(DomainError) as nowhere:
        webhook_config.configuration(webhook, base_url="", service="")
    assert nowhere.value.field == "COMPLIANCE_WEBHOOK_URL"


def test_webhook_writes_need_configure_rights_and_never_audit_the_token(
    webhook, cluster, viewer_persona, operator_persona, admin_persona
):
    for persona in (viewer_persona, operator_persona):
        with pytest.raises(ForbiddenError):
            webhooks.webhook_configure(cluster=cluster, failure_policy="Fail", by=persona.user)
        with pytest.raises(ForbiddenError):
            webhooks.webhook_download(webhook=webhook, base_url="https://icc.example.com", by=persona.user)
    with pytest.raises(DomainError) as bad:
        webhooks.webhook_configure(cluster=cluster, timeout_seconds=99, by=admin_persona.user)
    assert bad.value.field == "timeout_seconds"
    old = webhook.token()
    rotated = webhooks.webhook_rotate_token(webhook=webhook, by=admin_persona.user)
    assert rotated.token() != old
    assert cache.current().tokens[cluster.pk] == rotated.token()  # the old URL stops working at once
    with pytest.raises(admission.BadToken):
        admission.review(cluster.pk, old, review_body(deployment("web")))
    webhooks.webhook_download(webhook=rotated, base_url="https://icc.example.com", by=admin_persona.user)
    events = AuditEvent.objects.filter(action__startswith="compliance.webhook.")
    assert {e.action for e in events} >= {
        "compliance.webhook.configure",
        "compliance.webhook.rotate",
        "compliance.webhook.download",
    }
    dump = json.dumps([[e.message, e.metadata, e.changes] for e in events], default=str)
    assert old not in dump and rotated.token() not in dump
