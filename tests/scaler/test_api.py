"""The scaler API and services with the database and a real Prometheus: policy validation naming the field (incl.
PromQL the real Prometheus rejects, with its message), versions and audit, access rights, and pushed signals
refused with 400 (counted in /metrics, never stored, never evaluated)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.audit.models import AuditEvent
from apps.scaler.models import Decision, ScalerSettings, ScalingPolicy, Signal
from tests.support.clients import bind
from tests.support.clients import forced_login as client_for
from tests.support.clients import post_json as post
from tests.support.prometheus import PrometheusServer
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db
API = "/api/v1/scaler"


@pytest.fixture
def prom(prometheus_server: PrometheusServer, settings: Any) -> PrometheusServer:
    settings.PROMETHEUS_URL = prometheus_server.url
    return prometheus_server


@pytest.fixture
def shop() -> dict[str, Any]:
    """Observed state as reconciliation leaves it: application ``shop`` (2 pods) and ``bank`` in one cluster."""
    cluster = cluster_row("c1")
    out: dict[str, Any] = {"cluster": cluster}
    for name, pods in (("shop", ["web-1", "web-2"]), ("bank", ["api-1"])):
        out[name] = application_row(cluster, "prod", name, pods)
    return out


def fields(response: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = response.json()["error"]["fields"]
    return found


GOOD = {"mode": "active", "min_replicas": 1, "max_replicas": 5, "metrics": [{"name": "rps", "target": 50}]}


# --- policies -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"min_replicas": 6, "max_replicas": 2}, "max_replicas", "below min_replicas"),
        ({"metrics": [{"name": "bogus", "target": 1}]}, "metrics", "unknown metric 'bogus'"),
        (
            {"metrics": [{"name": "q", "source": "custom", "kind": "weird", "query": "up", "target": 1}]},
            "metrics",
            "unknown kind",
        ),
        ({"metrics": [{"name": "cpu", "target": -1}]}, "metrics", "target must be a number > 0"),
        ({"metrics": []}, "metrics", "1 to 10"),
        ({"behavior": {"cooldown_sideways_s": 3}}, "behavior", "unknown settings"),
        ({"behavior": {"tolerance": 2}}, "behavior", "tolerance"),
        (
            {"schedules": [{"name": "x", "rrule": "FREQ=NEVER", "duration_minutes": 5, "min_replicas": 2}]},
            "schedules",
            "not a valid RRULE",
        ),
        (
            {
                "schedules": [
                    {
                        "name": "x",
                        "rrule": "FREQ=DAILY",
                        "timezone": "Europe/Atlantis",
                        "duration_minutes": 5,
                        "min_replicas": 2,
                    }
                ]
            },
            "schedules",
            "unknown time zone",
        ),
        ({"mode": "yolo"}, "mode", ""),
    ],
)
def test_bad_policies_are_refused_naming_the_field(admin_persona, shop, prom, changes, field, message):
    response = post(
        client_for(admin_persona.user), f"{API}/policies/", {"application": shop["shop"].pk, **GOOD, **changes}
    )
    assert response.status_code == 400, response.content
    assert field in fields(response), response.json()
    assert message in " ".join(fields(response)[field])
    assert not ScalingPolicy.objects.exists()


def test_promql_the_real_prometheus_rejects_is_refused_with_its_message(admin_persona, shop, prom):
    bad = {"name": "q", "source": "custom", "kind": "value", "query": "sum(rate(http_requests_total[1m]", "target": 5}
    response = post(
        client_for(admin_persona.user), f"{API}/policies/", {"application": shop["shop"].pk, **GOOD, "metrics": [bad]}
    )
    assert response.status_code == 400
    text = " ".join(fields(response)["metrics"])
    assert "Prometheus rejected the query" in text and "parse error at line 1, column 33" in text  # ICC's words

    good = {**bad, "query": "sum(rate(http_requests_total{$selector}[1m]))"}
    response = post(
        client_for(admin_persona.user), f"{API}/policies/", {"application": shop["shop"].pk, **GOOD, "metrics": [good]}
    )
    assert response.status_code == 201, response.content


def test_a_policy_change_bumps_its_version_and_is_audited(admin_persona, shop, prom):
    c = client_for(admin_persona.user)
    created = post(c, f"{API}/policies/", {"application": shop["shop"].pk, **GOOD})
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["version"], body["mode"], body["metrics"][0]["source"]) == (1, "active", "rps")
    window = {
        "name": "biz",
        "rrule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8",
        "duration_minutes": 600,
        "timezone": "Europe/Berlin",
        "min_replicas": 3,
    }
    changed = c.patch(
        f"{API}/policies/{body['id']}/",
        json.dumps({"max_replicas": 8, "schedules": [window]}),
        content_type="application/json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["version"] == 2 and changed.json()["schedules"][0]["name"] == "biz"
    update = AuditEvent.objects.get(action="scaler.policy.update")
    assert update.changes["max_replicas"] == [5, 8] and update.actor_name == admin_persona.username
    assert (update.scope_cluster, update.scope_application) == (str(shop["cluster"].pk), "shop")
    assert AuditEvent.objects.filter(action="scaler.policy.create").count() == 1


def test_who_may_configure_act_and_pause(make_user, shop, prom):
    viewer, operator, app_admin = make_user("vera", role="viewer"), make_user("otto"), make_user("ada")
    bind(operator.user, "operator", shop["cluster"], application="shop")
    bind(app_admin.user, "admin", shop["cluster"], application="shop")
    payload = {"application": shop["shop"].pk, **GOOD}
    assert post(client_for(viewer.user), f"{API}/policies/", payload).status_code == 403
    assert post(client_for(operator.user), f"{API}/policies/", payload).status_code == 403
    assert (
        post(client_for(app_admin.user), f"{API}/policies/", {**payload, "application": shop["bank"].pk}).status_code
        == 400
    )  # bank is invisible to an admin of shop: "no application"
    assert post(client_for(app_admin.user), f"{API}/policies/", payload).status_code == 201

    kill = f"{API}/applications/{shop['shop'].pk}/kill-switch/"
    assert post(client_for(viewer.user), kill, {"on": True}).status_code == 403
    assert (
        post(client_for(operator.user), f"{API}/applications/{shop['bank'].pk}/kill-switch/", {"on": True}).status_code
        == 404
    )
    response = post(client_for(operator.user), kill, {"on": True, "reason": "incident"})
    assert response.status_code == 200 and response.json()[0]["kill_switch"] is True
    assert AuditEvent.objects.filter(action="scaler.kill_switch.on", message="incident").exists()

    assert post(client_for(app_admin.user), f"{API}/pause/", {"on": True}).status_code == 403  # not global
    global_admin = make_user("gale", role="admin")
    response = post(client_for(global_admin.user), f"{API}/pause/", {"on": True, "reason": "freeze"})
    assert response.status_code == 200 and response.json()["paused"] is True
    assert ScalerSettings.objects.get(pk=1).paused
    assert client_for(viewer.user).get(f"{API}/pause/").json()["paused"] is True


def test_decisions_are_listed_within_the_readers_scope_with_filters(make_user, shop):
    policies = {}
    for name in ("shop", "bank"):
        policies[name] = ScalingPolicy.objects.create(application=shop[name], metrics=GOOD["metrics"])
        for outcome in ("applied", "conflict"):
            Decision.objects.create(
                policy=policies[name],
                application=shop[name],
                at=timezone.now(),
                trigger="periodic",
                current_replicas=1,
                desired_replicas=2,
                outcome=outcome,
                policy_version=1,
            )
    reader = make_user("rita")
    bind(reader.user, "viewer", shop["cluster"], application="shop")
    c = client_for(reader.user)
    rows = c.get(f"{API}/decisions/").json()["results"]
    assert {r["application"] for r in rows} == {shop["shop"].pk} and len(rows) == 2
    rows = c.get(f"{API}/decisions/", {"outcome": "conflict"}).json()["results"]
    assert [r["outcome"] for r in rows] == ["conflict"]
    assert c.get(f"{API}/decisions/", {"since": "not-a-time"}).status_code == 400
    assert c.get(f"{API}/policies/{policies['bank'].pk}/").status_code == 404


# --- pushed signals ---------------------------------------------------------------------------------------------


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("icc_scaler_signals_rejected_total", {"reason": reason}) or 0.0


@pytest.mark.parametrize(
    ("values", "field", "reason"),
    [
        ([{"pod": "shop-web-9", "value": 1}], "values[0].pod", "unknown_pod"),
        ([{"pod": "bank-api-1", "value": 1}], "values[0].pod", "unknown_pod"),  # another application's pod
        ([{"pod": "shop-web-1", "value": 1}, {"pod": "shop-web-2", "value": -3}], "values[1].value", "negative"),
        ([{"pod": "shop-web-1", "value": "lots"}], "values[0].value", "not_numeric"),
        ([{"pod": "shop-web-1", "value": True}], "values[0].value", "not_numeric"),
        ([{"pod": "shop-web-1", "value": 1, "timestamp": "2999-01-01T00:00:00Z"}], "values[0].timestamp", "future"),
        ([{"pod": "shop-web-1", "value": 1, "timestamp": "2020-01-01T00:00:00+00:00"}], "values[0].timestamp", "stale"),
        ([{"pod": "shop-web-1", "value": 1, "timestamp": "yesterday"}], "values[0].timestamp", "bad_timestamp"),
        ([], "values", "bad_values"),
    ],
)
def test_bad_signals_are_refused_counted_and_never_stored(make_user, shop, values, field, reason):
    ScalingPolicy.objects.create(
        application=shop["shop"],
        mode="active",
        metrics=[{"name": "rps", "source": "rps", "kind": "per_pod", "target": 50}],
    )
    operator = make_user("olaf")
    bind(operator.user, "operator", shop["cluster"], application="shop")
    before = rejected(reason)
    response = post(
        client_for(operator.user),
        f"{API}/signals/",
        {"application": shop["shop"].pk, "metric": "rps", "values": values},
    )
    assert response.status_code == 400, response.content
    assert field in fields(response)
    assert rejected(reason) == before + 1
    assert not Signal.objects.exists() and not Decision.objects.exists()
    metrics_text = Client().get("/metrics").content.decode()
    assert f'icc_scaler_signals_rejected_total{{reason="{reason}"}}' in metrics_text


def test_signals_for_an_unknown_metric_or_without_the_act_right_are_refused(make_user, shop):
    ScalingPolicy.objects.create(
        application=shop["shop"], metrics=[{"name": "rps", "source": "rps", "kind": "per_pod", "target": 50}]
    )
    viewer, operator = make_user("vic", role="viewer"), make_user("oli")
    bind(operator.user, "operator", shop["cluster"], application="shop")
    batch = {"application": shop["shop"].pk, "metric": "rps", "values": [{"pod": "shop-web-1", "value": 3}]}
    assert post(client_for(viewer.user), f"{API}/signals/", batch).status_code == 403
    response = post(client_for(operator.user), f"{API}/signals/", {**batch, "metric": "queue_depth"})
    assert response.status_code == 400 and "metric" in fields(response)
    response = post(client_for(operator.user), f"{API}/signals/", batch)
    assert response.status_code == 202 and response.json() == {"accepted": 1}
    assert Signal.objects.get().value == 3


def test_alertmanager_alerts_naming_an_application_ask_for_an_evaluation(make_user, shop):
    ScalingPolicy.objects.create(
        application=shop["shop"], metrics=[{"name": "rps", "source": "rps", "kind": "per_pod", "target": 50}]
    )
    operator = make_user("al")
    bind(operator.user, "operator", shop["cluster"], application="shop")
    body = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "HighLoad", "cluster": "c1", "namespace": "prod", "app": "shop"},
            },
            {"status": "firing", "labels": {"alertname": "HighLoad", "namespace": "prod", "app": "shop"}},
            {"status": "firing", "labels": {"alertname": "HighLoad", "namespace": "prod", "app": "bank"}},  # not theirs
            {"status": "resolved", "labels": {"alertname": "HighLoad", "namespace": "prod", "app": "shop"}},
        ],
    }
    response = post(client_for(operator.user), f"{API}/alerts/", body)
    assert response.status_code == 200, response.content
    assert response.json() == {"matched": 2, "evaluations": 1, "unmatched": 1}  # debounced: one evaluation
    response = post(client_for(operator.user), f"{API}/alerts/", {"alerts": "nope"})
    assert response.status_code == 400 and "alerts" in fields(response)
