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
