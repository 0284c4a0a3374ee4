"""The emitters through their apps' own code paths: a cron run that fails becomes ``cron.run_failed``, routed to a
real receiver."""

from __future__ import annotations

import orjson
import pytest

from apps.cron import execution
from apps.cron.services.jobs import job_create
from apps.cron.services.runs import job_run_now
from apps.notifications import delivery
from apps.notifications.models import Delivery, Event
from apps.notifications.services.channels import channel_create
from apps.notifications.services.rules import rule_save
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def test_a_failed_cron_run_is_a_cron_run_failed_event(receiver):
    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/hook")
    rule_save(name="cron", kinds=["cron.run_failed"], min_severity="error", channels=[hook.pk], group_window_seconds=0)
    with Receiver(status=500) as target:
        job, _ = job_create(name="nightly", schedule="0 3 * * *", http_url=f"{target.url}/job")
        run = job_run_now(job=job)
        assert execution.execute(run.pk) == "failed"
    event = Event.objects.get(kind="cron.run_failed")
    assert event.severity == "error" and event.subject == "cron job nightly"
    assert event.dedup_key == f"cron.run_failed:{job.pk}" and event.link == f"/cron/{job.pk}/"
    assert event.scope_kind == "global"  # an HTTP job without an application is global
    delivery.attempt(Delivery.objects.get().pk)
    body = orjson.loads(receiver.wait_for(1)[0].body)
    assert body["message"]["kind"] == "cron.run_failed" and "unexpected status 500" in body["message"]["text"]


def test_the_kill_switch_and_the_global_pause_are_conditions_resolved_when_lifted(receiver, admin_persona):
    from apps.clusters.models import Application
    from apps.notifications.models import Message
    from apps.scaler.models import ScalingPolicy
    from apps.scaler.services.switches import global_pause_set, kill_switch_set
    from tests.support.rows import cluster_row

    hook = channel_create(name="hook", kind="webhook", target=f"{receiver.url}/hook")
    rule_save(
        name="scaler",
        kinds=["scaler.kill_switch", "scaler.global_pause"],
        min_severity="warning",
        channels=[hook.pk],
        group_window_seconds=0,
    )
    app = Application.objects.create(cluster=cluster_row("c1"), namespace="ns", name="shop")
    ScalingPolicy.objects.create(application=app)
    kill_switch_set(application=app, on=True, reason="incident 42", by=admin_persona.user)
    global_pause_set(on=True, reason="migration", by=admin_persona.user)
    kill_switch_set(application=app, on=False, by=admin_persona.user)
    global_pause_set(on=False, by=admin_persona.user)
    for pk in Delivery.objects.order_by("pk").values_list("pk", flat=True):
        delivery.attempt(pk)
    bodies = [orjson.loads(r.body) for r in receiver.wait_for(4)]
    assert sorted((b["message"]["kind"], b["delivery"]) for b in bodies) == [
        ("scaler.global_pause", "first"),
        ("scaler.global_pause", "resolved"),
        ("scaler.kill_switch", "first"),
        ("scaler.kill_switch", "resolved"),
    ]
    kill = next(b for b in bodies if b["message"]["kind"] == "scaler.kill_switch")["message"]
    assert kill["scope"] == {
        "kind": "application",
        "cluster": str(app.cluster_id),
        "namespace": "",
        "application": "shop",
    }
    assert "incident 42" in kill["text"]
    assert set(Message.objects.values_list("state", flat=True)) == {"resolved"}
