"""The scaling pages through the Django test client, against a real kube-apiserver.

A real cluster is registered and fully synced; application ``shop`` (Deployment ``web``, 2 ready replicas) and
``billing`` (Deployment ``api``) exist. Policies are created and decisions written through the services and the
real evaluation (pushed signals as inputs, the live replica count read from the apiserver). The pages must show
that data, scoped to each persona; the policy editor must refuse bad input naming the field and keep what was
typed; the replay must compare the three policies with numbers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from apps.audit.models import AuditEvent
from apps.clusters.models import Application, Pod
from apps.scaler import evaluation, services
from apps.scaler import topics as scaler_topics
from apps.scaler.models import Decision, Outcome, ScalerSettings, ScalingPolicy
from tests.support.clients import html, with_binding
from tests.support.clients import logged_in as client_for
from tests.support.clusters import Deployed, deployed
from tests.support.components import free_port
from tests.support.kube import KubeCluster

pytestmark = [pytest.mark.timeout(45 * 60), pytest.mark.django_db(transaction=True)]


class World:
    def __init__(self, deployed: Deployed) -> None:
        self.cluster, self.shop_ns = deployed.cluster, deployed.namespaces["shop"]
        self.shop, self.billing = deployed.application("shop"), deployed.application("billing")


@pytest.fixture
def world(kube_apiserver: KubeCluster) -> Iterator[World]:
    suffix = uuid.uuid4().hex[:8]
    apps = {"shop": (f"t-scale-{suffix}", "web", 2), "billing": (f"t-bill-{suffix}", "api", 1)}
    with deployed(kube_apiserver, f"s-{suffix}", **apps) as cluster:
        yield World(cluster)


def make_policy(app: Application, **extra: Any) -> ScalingPolicy:
    values: dict[str, Any] = {"mode": "recommend", "min_replicas": 1, "max_replicas": 8}
    values.update(extra)
    return services.policy_create(application=app, metrics=[{"name": "cpu", "target": 0.7}], **values)


def decide_with(app: Application, policy: ScalingPolicy, value: float) -> Decision:
    """Push ``value`` as every pod's cpu utilisation, then evaluate now (the real evaluation path)."""
    pods = list(Pod.objects.filter(application=app, deleting=False).values_list("name", flat=True))
    assert pods
    services.record_signals(application=app, metric="cpu", values=[{"pod": p, "value": value} for p in pods])
    decision = evaluation.evaluate(policy.pk, "manual")
    assert decision is not None
    return decision


@pytest.fixture
def shop_viewer(make_user: Any, world: World) -> Any:
    return with_binding(make_user("nina-namespace"), "viewer", world.cluster, namespace=world.shop_ns)


# --- pages with real data ---------------------------------------------------------------------------------------


def test_fleet_and_application_pages_show_policies_and_decisions(
    world: World, admin_persona: Any, settings: Any
) -> None:
    policy = make_policy(world.shop)
    decision = decide_with(world.shop, policy, 1.4)  # 2 pods at twice the target: 4 wanted
    assert (decision.current_replicas, decision.desired_replicas, decision.outcome) == (2, 4, Outcome.RECOMMENDED)
    c = client_for(admin_persona)

    fleet = html(c.get("/scaler/"))
    row = re.search(rf'<tr id="policy-row-{policy.pk}".*?</tr>', fleet, re.S)
    assert row, fleet[:3000]
    assert 'data-mode="recommend"' in row.group(0)
    assert 'data-status="ok"' in row.group(0)
    assert "2 → 4" in row.group(0)
    assert 'data-outcome="recommended"' in row.group(0)
    assert 'ws-connect="/ws/?topics=scaler"' in fleet
    assert 'id="global-pause"' in fleet  # a superuser may pause
    assert f'id="policy-row-{policy.pk}"' in html(c.get("/scaler/?mode=recommend"))
    assert f'id="policy-row-{policy.pk}"' not in html(c.get("/scaler/?mode=active"))
    assert f'id="policy-row-{policy.pk}"' not in html(c.get("/scaler/?status=degraded"))
    assert f'id="policy-row-{policy.pk}"' in html(c.get(f"/scaler/?cluster={world.cluster.pk}&q=sho"))
    assert f'id="policy-row-{policy.pk}"' not in html(c.get("/scaler/?q=no-such-app"))
    assert f'id="policy-row-{policy.pk}"' in html(c.get("/scaler/table/?status=ok"))

    page = html(c.get(f"/scaler/applications/{world.shop.pk}/"))
    summary = re.search(r'<section id="scaling-summary".*?</section>', page, re.S)
    assert summary
    assert "<td data-current>2</td>" in summary.group(0)
    assert "<td data-desired>4</td>" in summary.group(0)
    assert 'data-kill-switch="off"' in summary.group(0)
    assert f'id="decision-{decision.pk}"' in page
    assert "2 → 4" in page
    assert decision.reason in page
    assert 'id="policy-form"' in page and 'id="kill-switch"' in page
    assert f"scaler.{world.shop.pk}%2Caudit.history.scaler-scalingpolicy.{policy.pk}" in page
    assert "scaler.policy.create" in page  # the policy's audit history panel
    assert 'value="0.7"' in page  # the editor shows the policy's metric target

    # Metrics chart: PROMETHEUS_URL unset says so instead of a chart; the replicas chart comes from decisions.
    settings.PROMETHEUS_URL = ""
    charts = html(c.get(f"/scaler/applications/{world.shop.pk}/metrics/?policy={policy.pk}"))
    assert 'id="metrics-unavailable"' in charts and "PROMETHEUS_URL is not set" in charts
    assert 'data-chart="replicas"' in charts and '"series": ["current", "desired"]' in charts
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    down = html(c.get(f"/scaler/applications/{world.shop.pk}/metrics/?policy={policy.pk}"))
    assert "Prometheus is unavailable" in down and "unreachable" in down
    assert 'data-chart="metric-cpu"' not in down

    # The timeline is paginated, newest first.
    for value in (0.7, 0.35, 0.7) * 7:
        decide_with(world.shop, policy, value)
    first = html(c.get(f"/scaler/applications/{world.shop.pk}/decisions/"))
    newest = Decision.objects.filter(application=world.shop).order_by("-at", "-id").first()
    assert newest is not None and f'id="decision-{newest.pk}"' in first
    assert f'id="decision-{decision.pk}"' not in first
    assert "Page 1 of 2 (22)" in first
    assert f'id="decision-{decision.pk}"' in html(c.get(f"/scaler/applications/{world.shop.pk}/decisions/?page=2"))


def test_the_policy_form_names_the_bad_field_and_keeps_the_input(world: World, admin_persona: Any) -> None:
    c = client_for(admin_persona)
    url = f"/scaler/applications/{world.shop.pk}/"
    good = {
        "policy": "new",
        "name": "default",
        "mode": "recommend",
        "enabled": "on",
        "min_replicas": "2",
        "max_replicas": "6",
        "conflict_mode": "refuse",
        "metric_rows": "2",
        "schedule_rows": "1",
        "metric_0_source": "cpu",
        "metric_0_target": "0.6",
        "behavior_scale_down_stabilization_s": "60",
    }

    response = c.post(url, {**good, "min_replicas": "5", "max_replicas": "2"})
    assert response.status_code == 400
    page = html(response)
    assert re.search(r'data-error-for="max_replicas">max_replicas \(2\) is below min_replicas \(5\)', page), page
    assert re.search(r'name="min_replicas" value="5"', page)
    assert 'name="behavior_scale_down_stabilization_s" value="60"' in page

    response = c.post(url, {**good, "metric_0_source": "gpu"})
    assert response.status_code == 400
    page = html(response)
    assert re.search(r"data-error-for=\"metrics\">metrics\[0\]: unknown metric &#x27;gpu&#x27;", page), page
    assert '<option value="gpu" selected>gpu</option>' in page

    bad_rule = {
        "schedule_0_name": "business",
        "schedule_0_rrule": "FREQ=SOMETIMES",
        "schedule_0_timezone": "Europe/Berlin",
        "schedule_0_duration_minutes": "600",
        "schedule_0_min_replicas": "4",
    }
    response = c.post(url, {**good, **bad_rule})
    assert response.status_code == 400
    page = html(response)
    assert 'data-error-for="schedules">not a valid RRULE' in page
    assert 'value="FREQ=SOMETIMES"' in page and 'value="Europe/Berlin"' in page
    assert not ScalingPolicy.objects.filter(application=world.shop).exists()

    more = html(c.post(url, {**good, "add_metric": "1"}))  # one more row, nothing saved
    assert 'data-metric-row="2"' in more and 'name="metric_rows" value="3"' in more
    assert not ScalingPolicy.objects.filter(application=world.shop).exists()

    ok_rule = {**bad_rule, "schedule_0_rrule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8;BYMINUTE=0"}
    response = c.post(url, {**good, **ok_rule})
    assert response.status_code == 302, html(response)[:3000]
    policy = ScalingPolicy.objects.get(application=world.shop)
    assert (policy.min_replicas, policy.max_replicas, policy.mode) == (2, 6, "recommend")
    assert policy.metrics[0]["source"] == "cpu" and policy.metrics[0]["target"] == 0.6
    assert policy.behavior == {"scale_down_stabilization_s": 60.0}
    window = policy.schedules.get()
    assert (window.timezone, window.min_replicas, window.duration_minutes) == ("Europe/Berlin", 4, 600)
    assert AuditEvent.objects.filter(action="scaler.policy.create", target_id=str(policy.pk)).exists()

    update = {**good, **ok_rule, "policy": str(policy.pk), "max_replicas": "9", "mode": "active"}
    assert c.post(url, update).status_code == 302
    policy.refresh_from_db()
    assert (policy.max_replicas, policy.mode, policy.version) == (9, "active", 2)
    event = AuditEvent.objects.filter(action="scaler.policy.update", target_id=str(policy.pk)).latest("seq")
    assert event.changes["max_replicas"] == [6, 9]


# --- scoping and rights -------------------------------------------------------------------------------------------


def test_a_namespace_viewer_sees_only_its_namespace_and_cannot_change_anything(world: World, shop_viewer: Any) -> None:
    shop_policy, billing_policy = make_policy(world.shop), make_policy(world.billing)
    decide_with(world.shop, shop_policy, 0.7)
    c = client_for(shop_viewer)

    fleet = html(c.get("/scaler/"))
    assert f'id="policy-row-{shop_policy.pk}"' in fleet
    assert f'id="policy-row-{billing_policy.pk}"' not in fleet
    assert "billing" not in fleet
    assert 'id="global-pause"' not in fleet

    assert c.get(f"/scaler/applications/{world.billing.pk}/").status_code == 404
    assert c.get(f"/scaler/applications/{world.billing.pk}/decisions/").status_code == 404
    assert c.post(f"/scaler/applications/{world.billing.pk}/replay/", {"trace": "spike"}).status_code == 404

    page = html(c.get(f"/scaler/applications/{world.shop.pk}/"))
    assert "<td data-current>2</td>" in page
    assert 'id="policy-form"' not in page and 'id="policy-view"' in page  # read-only view instead of the editor
    assert 'id="kill-switch"' not in page
    response = c.post(f"/scaler/applications/{world.shop.pk}/", {"policy": str(shop_policy.pk), "max_replicas": 3})
    assert response.status_code == 403
    ks = c.post(f"/scaler/applications/{world.shop.pk}/kill-switch/", {"on": "on", "reason": "x"})
    assert ks.status_code == 403
    assert c.post("/scaler/pause/", {"on": "on", "reason": "x", "confirm": "on"}).status_code == 403
    shop_policy.refresh_from_db()
    assert (shop_policy.max_replicas, shop_policy.kill_switch) == (8, False)
    assert not ScalerSettings.objects.filter(paused=True).exists()

    # Live topics: the shop page may be followed, the hidden application's may not (and renders nothing).
    assert scaler_topics.authorize(shop_viewer.user, f"scaler.{world.shop.pk}")
    assert not scaler_topics.authorize(shop_viewer.user, f"scaler.{world.billing.pk}")
    assert scaler_topics.render(shop_viewer.user, f"scaler.{world.billing.pk}", {}) == ""
    push = scaler_topics.render(shop_viewer.user, f"scaler.{world.shop.pk}", {"kind": "decision"})
    assert '<section id="scaling-summary" hx-swap-oob="true">' in push and 'id="scaling-decisions-refresh"' in push
    assert 'id="scaling-fleet-refresh"' in scaler_topics.render(shop_viewer.user, "scaler", {})


def test_the_kill_switch_needs_act_and_the_global_pause_configure_at_global_scope(
    world: World, make_user: Any, admin_persona: Any
) -> None:
    policy = make_policy(world.shop)
    operator = make_user("otto-operator", role="operator")
    c = client_for(operator)
    page = html(c.get(f"/scaler/applications/{world.shop.pk}/"))
    assert 'id="kill-switch"' in page and 'id="policy-form"' not in page
    assert c.post(f"/scaler/applications/{world.shop.pk}/kill-switch/", {"on": "on"}).status_code == 302
    policy.refresh_from_db()
    assert policy.kill_switch is False  # no reason, no change
    c.post(f"/scaler/applications/{world.shop.pk}/kill-switch/", {"on": "on", "reason": "incident 42"})
    policy.refresh_from_db()
    assert policy.kill_switch is True
    event = AuditEvent.objects.filter(action="scaler.kill_switch.on").latest("seq")
    assert event.message == "incident 42"
    assert 'data-kill-switch="on"' in html(c.get(f"/scaler/applications/{world.shop.pk}/"))
    assert 'data-kill-switch="on"' in html(c.get("/scaler/"))
    assert c.post("/scaler/pause/", {"on": "on", "reason": "x", "confirm": "on"}).status_code == 403

    a = client_for(admin_persona)
    a.post("/scaler/pause/", {"on": "on", "reason": "freeze"})  # not confirmed
    assert not ScalerSettings.objects.filter(paused=True).exists()
    a.post("/scaler/pause/", {"on": "on", "reason": "release freeze", "confirm": "on"})
    assert ScalerSettings.objects.get(pk=1).paused
    fleet = html(a.get("/scaler/"))
    assert 'data-paused="yes"' in fleet and "release freeze" in fleet
    assert AuditEvent.objects.filter(action="scaler.global_pause.on", message="release freeze").exists()
    a.post("/scaler/pause/", {"on": "off", "reason": "done", "confirm": "on"})
    assert not ScalerSettings.objects.get(pk=1).paused
    assert 'data-paused="yes"' not in html(a.get("/scaler/"))


# --- replay ---------------------------------------------------------------------------------------------------------


def _replay_rows(page: str) -> dict[str, dict[str, float]]:
    rows = {}
    for name in ("icc", "hpa", "reactive"):
        row = re.search(rf'<tr data-policy="{name}">(.*?)</tr>', page, re.S)
        assert row, f"no replay row for {name}: {page[:2000]}"
        cells = dict(re.findall(r"<td data-([a-z-]+)>([0-9.,-]+)</td>", row.group(1)))
        rows[name] = {k: float(v.replace(",", "")) for k, v in cells.items()}
        assert set(rows[name]) == {"overloaded", "pod-seconds", "actions", "reversals"}, row.group(1)
    return rows


def test_the_replay_compares_the_three_policies_with_numbers(world: World, admin_persona: Any) -> None:
    policy = make_policy(world.shop, max_replicas=20)
    c = client_for(admin_persona)
    url = f"/scaler/applications/{world.shop.pk}/replay/"

    page = html(c.post(url, {"trace": "spike", "policy": policy.pk}, HTTP_HX_REQUEST="true"))
    assert page.startswith('<div id="replay-result">')
    rows = _replay_rows(page)
    assert all(r["pod-seconds"] > 0 for r in rows.values())
    assert rows["icc"]["actions"] >= 1 and rows["hpa"]["actions"] >= 1
    assert 'id="replay-chart" data-uplot' in page
    assert "ICC (this policy)" in page and "HPA default" in page and "Reactive baseline" in page

    full = c.post(url, {"trace": "daily", "policy": policy.pk})  # without htmx: the whole page
    assert full.status_code == 200 and 'id="policy-form"' in html(full)
    _replay_rows(html(full))

    none = c.post(url, {"trace": "recorded_24h", "policy": policy.pk}, HTTP_HX_REQUEST="true")
    assert none.status_code == 400 and "nothing to replay" in html(none)
    for value in (0.5, 1.2, 2.0, 1.0, 0.4):
        decide_with(world.shop, policy, value)
    recorded = html(c.post(url, {"trace": "recorded_24h", "policy": policy.pk}, HTTP_HX_REQUEST="true"))
    assert "5 decisions" in recorded
    _replay_rows(recorded)
    assert c.post(url, {"trace": "tomorrow"}).status_code == 400
