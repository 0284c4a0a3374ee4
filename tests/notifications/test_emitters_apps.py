"""The emitters of audit, users and compliance through the code that detects each condition (real PostgreSQL and
Redis), recorded by the real sink (the notifications ``Event`` rows): kind, severity, scope, link and deduplication
key; an unchanged condition is not announced again; a condition that clears is resolved under the same key."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.notifications.models import Event

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def events(kind_prefix: str) -> list[Event]:
    return list(Event.objects.filter(kind__startswith=kind_prefix).order_by("pk"))


def scope_of(event: Event) -> tuple[str, str, str, str]:
    return (event.scope_kind, event.scope_cluster, event.scope_namespace, event.scope_application)


# --- audit: the signed checkpoint ----------------------------------------------------------------------------------


def test_a_failing_checkpoint_is_announced_once_and_resolved_by_the_next_one_written(tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the checkpoint directory should be")
    for _ in range(2):  # the nightly task fails twice: one condition
        with pytest.raises(OSError):
            call_command("audit_checkpoint", dir=blocked / "checkpoints")
    [failed] = events("audit.checkpoint")
    assert (failed.kind, failed.severity, failed.resolves) == ("audit.checkpoint_failed", "error", False)
    assert failed.dedup_key == "audit.checkpoint_failed" and failed.link == "/audit/"
    assert scope_of(failed) == ("global", "", "", "")
    assert "checkpoints" in failed.text

    call_command("audit_checkpoint", dir=tmp_path / "good")
    assert list((tmp_path / "good").glob("checkpoint-*.json"))
    written = events("audit.checkpoint")[-1]
    assert (written.kind, written.severity, written.resolves) == ("audit.checkpoint_written", "info", True)
    assert written.dedup_key == failed.dedup_key

    call_command("audit_checkpoint", dir=tmp_path / "good")  # healthy again: nothing to say
    assert len(events("audit.checkpoint")) == 2


# --- users: API tokens and login throttling -------------------------------------------------------------------


def test_a_created_token_is_an_info_event_naming_its_owner_and_maker(admin_persona, operator_persona):
    from apps.users.tokens import token_create

    token, secret = token_create(owner=operator_persona.user, name="ci deploy", by=admin_persona.user)
    [event] = events("users.token_created")
    assert event.severity == "info" and event.dedup_key == f"users.token_created:{token.pk}"
    assert scope_of(event) == ("global", "", "", "") and event.link == "/users/tokens/"
    assert operator_persona.user.username in event.subject and token.prefix in event.subject
    assert admin_persona.user.username in event.text and "ci deploy" in event.text
    assert secret not in event.text and secret not in event.subject


def test_a_token_used_from_a_new_address_warns_and_a_known_address_costs_no_write(admin_persona):
    from apps.users.models import ApiToken
    from apps.users.tokens import token_create

    token, secret = token_create(owner=admin_persona.user, name="laptop", by=admin_persona.user)

    def call(address: str) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            response = Client(HTTP_AUTHORIZATION=f"Bearer {secret}", REMOTE_ADDR=address).get("/api/v1/clusters/")
        assert response.status_code == 200, response.content
        return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE") and "apitoken" in q["sql"]]

    call("10.1.0.1")  # its first address: remembered, not news
    assert events("users.token_new_address") == []
    assert ApiToken.objects.get(pk=token.pk).seen_ips == ["10.1.0.1"]
    assert call("10.1.0.1") == [], "a request from a known address writes nothing to the token's row"

    call("198.51.100.7")
    [event] = events("users.token_new_address")
    assert event.severity == "warning" and event.dedup_key == f"users.token_new_address:{token.pk}"
    assert "198.51.100.7" in event.text and "10.1.0.1" in event.text
    assert scope_of(event) == ("global", "", "", "")
    assert event.link == f"/audit/history/users.apitoken/{token.pk}/"
    assert secret not in event.text

    call("10.1.0.1")
    call("198.51.100.7")  # both known now
    assert len(events("users.token_new_address")) == 1
    assert ApiToken.objects.get(pk=token.pk).seen_ips == ["10.1.0.1", "198.51.100.7"]


def test_login_throttling_is_announced_once_per_lock_and_resolved_by_the_next_login(make_user, monkeypatch):
    import time as time_module

    from apps.users import throttle

    now = [3_000_000.0]
    monkeypatch.setattr(time_module, "time", lambda: now[0])
    owner = make_user("mallory-target", role="viewer")
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for i in range(throttle.MAX_FAILURES + 2):  # five failures lock; the next attempts are refused or doubled
        attacker.post("/accounts/login/", {"username": "mallory-target", "password": f"wrong-{i}"})
        now[0] += 1
    locked = events("users.login_throttled")
    assert sorted(e.dedup_key.split(":")[1] for e in locked) == ["account", "address"], "one per lock, not per try"
    account = next(e for e in locked if ":account:" in e.dedup_key)
    address = next(e for e in locked if ":address:" in e.dedup_key)
    assert account.severity == address.severity == "warning"
    assert "'mallory-target'" in account.subject and "203.0.113.9" in address.subject
    assert scope_of(account) == ("global", "", "", "")
    assert "wrong-" not in account.text + address.text, "no password in an event"

    now[0] += throttle.MAX_DELAY_S + 1  # the lock ran out; the owner logs in from elsewhere
    response = Client(REMOTE_ADDR="192.0.2.10").post(
        "/accounts/login/", {"username": "mallory-target", "password": owner.password}
    )
    assert response.status_code == 302, response.content
    resolved = events("users.login_unthrottled")
    assert [(e.dedup_key, e.resolves, e.severity) for e in resolved] == [(account.dedup_key, True, "info")]


# --- compliance: critical violations, expiring exceptions, admission denials -----------------------------------

PRIVILEGED = {
    "metadata": {"labels": {"app": "shop"}},
    "spec": {
        "containers": [{"name": "app", "image": "registry.local/shop:1.0", "securityContext": {"privileged": True}}]
    },
}
HARDENED = {
    "metadata": {"labels": {"app": "shop"}},
    "spec": {"containers": [{"name": "app", "image": "registry.local/shop:1.0"}]},
}
CHECK = "pss.baseline.privileged"


@pytest.fixture
def shop() -> Any:
    from apps.clusters.models import Workload
    from tests.support.rows import application_row, cluster_row

    cluster = cluster_row("prod")
    app = application_row(cluster, "shop", "shop", [])
    Workload.objects.filter(application=app).update(pod_template=PRIVILEGED, desired_replicas=1)
    return Workload.objects.select_related("application").get(application=app)


def test_a_new_critical_failure_is_one_condition_per_workload_and_check_until_it_passes(shop):
    from apps.clusters.models import Workload
    from apps.compliance import evaluation
    from apps.compliance.models import Binding, Policy

    binding = Binding.objects.create(policy=Policy.objects.get(key="pss-baseline"))
    evaluation.scan()
    [violation] = events("compliance.")
    assert (violation.kind, violation.severity) == ("compliance.critical_violation", "critical")
    assert violation.dedup_key == f"compliance.critical_violation:{shop.pk}:{CHECK}"
    assert scope_of(violation) == ("application", str(shop.cluster_id), "", "shop")
    assert violation.link.startswith(f"/compliance/?cluster={shop.cluster_id}&namespace=shop")
    assert CHECK in violation.link and CHECK in violation.text

    evaluation.scan()  # still failing: the same condition, nothing new
    evaluation.evaluate_workload(Workload.objects.select_related("application").get(pk=shop.pk))
    assert len(events("compliance.")) == 1

    Workload.objects.filter(pk=shop.pk).update(pod_template=HARDENED)
    evaluation.scan()
    cleared = events("compliance.")[-1]
    assert (cleared.kind, cleared.resolves, cleared.severity) == ("compliance.violation_cleared", True, "info")
    assert cleared.dedup_key == violation.dedup_key

    # The watcher's path (one workload re-evaluated after a change) announces a relapse the same way.
    Workload.objects.filter(pk=shop.pk).update(pod_template=PRIVILEGED)
    evaluation.evaluate_workload(Workload.objects.select_related("application").get(pk=shop.pk))
    relapse = events("compliance.")[-1]
    assert (relapse.kind, relapse.dedup_key, relapse.resolves) == (
        "compliance.critical_violation",
        violation.dedup_key,
        False,
    )
    assert len(events("compliance.")) == 3

    binding.delete()  # no longer checked at all: the scan deletes the result, and the condition ends
    evaluation.scan()
    unbound = events("compliance.")[-1]
    assert (unbound.kind, unbound.dedup_key, unbound.resolves) == (
        "compliance.violation_cleared",
        violation.dedup_key,
        True,
    )
    assert "no longer checked" in unbound.text
    evaluation.scan()
    assert len(events("compliance.")) == 4


def test_an_exception_about_to_expire_is_announced_once(admin_persona, make_user):
    from apps.compliance import tasks
    from apps.compliance.models import Policy
    from apps.compliance.services.exceptions import exception_approve, exception_request

    second = make_user("second-admin", superuser=True)
    policy = Policy.objects.get(key="pss-baseline")
    soon, later = (
        exception_request(
            policy=policy,
            reason="legacy agent needs it",
            owner="team-shop",
            expires_at=datetime.now(UTC) + delta,
            check_id=CHECK,
            by=admin_persona.user,
        )
        for delta in (timedelta(days=2), timedelta(days=20))
    )
    pending = exception_request(
        policy=policy,
        reason="not approved",
        owner="x",
        expires_at=datetime.now(UTC) + timedelta(days=1),
        by=admin_persona.user,
    )
    for exception in (soon, later):
        exception_approve(exception=exception, by=second.user)

    assert tasks.exceptions_expiring() == 1  # the periodic task; the pending and the distant ones are not due
    assert tasks.exceptions_expiring() == 0, "once per exception"
    [event] = events("compliance.exception_expiring")
    assert event.severity == "warning" and event.dedup_key == f"compliance.exception_expiring:{soon.pk}"
    assert event.link == f"/compliance/exceptions/{soon.pk}/" and scope_of(event) == ("global", "", "", "")
    assert "team-shop" in event.text and CHECK in event.text
    assert not Event.objects.filter(dedup_key=f"compliance.exception_expiring:{pending.pk}").exists()


def _review(obj: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "operation": "CREATE",
                "namespace": obj["metadata"]["namespace"],
                "name": obj["metadata"]["name"],
                "object": obj,
                "userInfo": {"username": "ci-bot"},
            },
        }
    ).encode()


def _deployment(name: str, namespace: str, *, privileged: bool) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "nginx:1.27"}
    if privileged:
        container["securityContext"] = {"privileged": True}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "shop"}},
        "spec": {"template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}},
    }


def test_an_admission_denial_is_handed_off_after_the_answer_and_announced_per_workload(eager):
    from apps.compliance import admission, cache
    from apps.compliance.models import Binding, Policy
    from apps.compliance.services import webhooks
    from tests.support.rows import cluster_row

    cluster = cluster_row("edge")
    webhook = webhooks.webhook_configure(cluster=cluster)
    Binding.objects.create(
        policy=Policy.objects.get(key="pss-baseline"),
        mode="enforce",
        scope_kind="cluster",
        scope_cluster=str(cluster.pk),
    )
    cache.rebuild()
    name = f"web-{uuid.uuid4().hex[:6]}"
    denied = _deployment(name, "payments", privileged=True)

    admission.review(cluster.pk, webhook.token(), _review(denied))  # warm the snapshot
    denials: list[Any] = []
    with CaptureQueriesContext(connection) as queries:
        answer = admission.review(cluster.pk, webhook.token(), _review(denied), denials)
    assert answer["response"]["allowed"] is False
    assert queries.captured_queries == [], "the webhook answers from memory and writes nothing"
    assert [d.key() for d in denials] == [f"compliance.admission_denied:{cluster.pk}:payments:Deployment/{name}"]
    assert events("compliance.admission_denied") == [], "deciding announces nothing by itself"

    url = f"/compliance/admission/{cluster.pk}/{webhook.token()}"
    client = Client()
    for _ in range(3):  # a controller retrying the denied workload
        response = client.post(url, _review(denied), content_type="application/json")
        assert response.status_code == 200 and response.json()["response"]["allowed"] is False
    allowed = client.post(
        url, _review(_deployment("api", "payments", privileged=False)), content_type="application/json"
    )
    assert allowed.json()["response"]["allowed"] is True

    [event] = events("compliance.admission_denied")
    assert event.severity == "warning" and event.dedup_key == denials[0].key()
    assert scope_of(event) == ("application", str(cluster.pk), "", "shop")
    assert event.link == f"/compliance/webhooks/{cluster.pk}/"
    assert CHECK in event.text and "ci-bot" in event.text and name in event.subject and "edge" in event.subject
