"""The cron pages through the Django test client, on real PostgreSQL and Redis and against a real HTTP receiver.

The pages show the data the services wrote, scoped to each persona; the editor refuses bad input naming the field
and stores nothing; secret header values never appear; delete needs the typed name; the preview marks a DST
shift; declared jobs are read-only; the application page gets a Cron tab; ICC's own periodic work is listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.core import topics
from apps.cron import execution
from apps.cron.models import Job, Run, RunState
from apps.cron.services.jobs import job_create
from tests.support.clients import forced_login, html
from tests.support.receiver import Receiver
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_VALUE = "Bearer portal-secret-91c2"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(body=b"pong from the receiver", headers={"X-Receiver": "portal"}) as r:
        yield r


@pytest.fixture
def shop() -> Any:
    return application_row(cluster_row("cron-portal"), "shop-ns", "shop", ["a"])


def make_job(receiver: Receiver, **values: Any) -> Job:
    values.setdefault("name", "nightly")
    values.setdefault("schedule", "30 2 * * *")
    values.setdefault("timezone", "Europe/Berlin")
    values.setdefault("http_url", f"{receiver.url}/hook")
    values.setdefault("http_secret_headers", {"Authorization": SECRET_VALUE})
    job, _ = job_create(**values)
    return job


def form_data(receiver: Receiver, **extra: str) -> dict[str, str]:
    data = {
        "name": "from-portal",
        "schedule": "*/10 * * * *",
        "timezone": "UTC",
        "concurrency": "forbid",
        "catch_up": "latest",
        "catch_up_limit": "10",
        "timeout_seconds": "30",
        "max_attempts": "3",
        "backoff_seconds": "5",
        "max_backoff_seconds": "60",
        "keep_succeeded": "20",
        "keep_failed": "20",
        "grace_seconds": "60",
        "target_kind": "http",
        "http_method": "POST",
        "http_url": f"{receiver.url}/hook",
        "http_headers": "X-Team: shop",
        "http_secret_headers": f"Authorization: {SECRET_VALUE}",
        "http_body": "{}",
        "http_expected_statuses": "200, 204",
    }
    data.update(extra)
    return data


def test_the_jobs_list_shows_schedule_next_run_last_outcome_and_sparkline(admin_persona, receiver, shop):
    job = make_job(receiver, application=shop)
    other = make_job(receiver, name="other", schedule="@hourly", timezone="UTC")
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(3):
        slot = now - timedelta(minutes=i + 1)
        run = Run.objects.create(job=job, slot=slot, due_at=slot, not_before=slot)
        assert execution.execute(run.pk) == RunState.SUCCEEDED
    client = forced_login(admin_persona.user)
    page = html(client.get("/cron/"))
    row = re.search(rf'<tr id="job-row-{job.pk}".*?</tr>', page, re.S)
    assert row, page[:3000]
    text = row.group(0)
    assert "<code>30 2 * * *</code>" in text and "Europe/Berlin" in text
    assert "data-schedule-words" in text and "2:30" in text.replace("02:30", "2:30")
    assert "CET" in text or "CEST" in text, "the next run in the job's zone"
    assert " UTC</small>" in text
    assert 'data-last-state="succeeded"' in text
    assert "<svg" in text and "<polyline" in text and "data-sparkline" in text
    assert 'ws-connect="/ws/?topics=cron"' in page
    assert f'id="job-row-{other.pk}"' in page
    assert 'data-last-state="never"' in page

    filtered = html(client.get("/cron/", {"application": shop.pk}))
    assert f'id="job-row-{job.pk}"' in filtered and f'id="job-row-{other.pk}"' not in filtered
    assert f'id="job-row-{job.pk}"' not in html(client.get("/cron/", {"state": "failed"}))
    assert f'id="job-row-{other.pk}"' in html(client.get("/cron/", {"state": "never"}))
    assert f'id="job-row-{job.pk}"' in html(client.get("/cron/", {"q": "nigh"}))
    assert f'id="job-row-{job.pk}"' not in html(client.get("/cron/", {"suspended": "yes"}))
    assert f'id="job-row-{job.pk}"' in html(client.get("/cron/table/", {"target_kind": "http"}))
    assert SECRET_VALUE not in page


def test_personas_see_and_use_only_what_their_role_allows(
    admin_persona, operator_persona, viewer_persona, outsider_persona, receiver
):
    job = make_job(receiver)
    path = f"/cron/{job.pk}/"

    viewer = forced_login(viewer_persona.user)
    page = html(viewer.get(path))
    assert 'id="cron-form"' in page and 'id="cron-save"' not in page and 'id="cron-run-now"' not in page
    assert viewer.post(f"{path}run/").status_code == 403
    assert viewer.post(f"{path}suspend/").status_code == 403
    assert viewer.post(path, {"name": "renamed"}).status_code == 403
    assert viewer.get("/cron/new/").status_code == 403
    assert 'id="cron-new"' not in html(viewer.get("/cron/"))

    operator = forced_login(operator_persona.user)
    page = html(operator.get(path))
    assert 'id="cron-run-now"' in page and 'id="cron-suspend"' in page
    assert 'id="cron-save"' not in page and 'id="cron-delete"' not in page and 'id="cron-rotate"' not in page
    assert operator.post(f"{path}suspend/", {"reason": "maintenance"}).status_code == 302
    assert Job.objects.get().suspended
    assert operator.post(f"{path}run/").status_code == 302
    run = Run.objects.get(job=job)
    assert run.manual and run.requested_by_id == operator_persona.user.pk
    assert operator.post(f"{path}resume/").status_code == 302
    assert not Job.objects.get().suspended
    assert operator.post(f"{path}delete/", {"confirm": job.name}).status_code == 403
    assert operator.get("/cron/new/").status_code == 403

    outsider = forced_login(outsider_persona.user)
    assert f'id="job-row-{job.pk}"' not in html(outsider.get("/cron/"))
    assert outsider.get(path).status_code == 404
    assert outsider.post(f"{path}run/").status_code == 404
    assert not topics.lookup(f"cron.{job.pk}").authorize(outsider_persona.user, f"cron.{job.pk}")  # type: ignore[union-attr]
    assert topics.lookup(f"cron.{job.pk}").authorize(viewer_persona.user, f"cron.{job.pk}")  # type: ignore[union-attr]
    assert "cron-runs-refresh" in topics.lookup("cron.1").render(viewer_persona.user, f"cron.{job.pk}", {})  # type: ignore[union-attr]
    assert topics.lookup("cron.1").render(outsider_persona.user, f"cron.{job.pk}", {}) == ""  # type: ignore[union-attr]


def test_an_application_scoped_binding_sees_only_its_applications_jobs(make_user, receiver, shop):
    from tests.support.clients import with_binding

    billing = application_row(shop.cluster, "billing-ns", "billing", ["b"])
    mine, theirs = (
        make_job(receiver, name="shop-job", application=shop),
        make_job(receiver, name="b", application=billing),
    )
    member = with_binding(make_user("sam-shop"), "viewer", shop.cluster, "shop-ns", "shop")
    client = forced_login(member.user)
    page = html(client.get("/cron/"))
    assert f'id="job-row-{mine.pk}"' in page and f'id="job-row-{theirs.pk}"' not in page
    assert client.get(f"/cron/{theirs.pk}/").status_code == 404


def test_creating_a_job_shows_the_signing_secret_once_and_never_the_secret_headers(admin_persona, receiver):
    client = forced_login(admin_persona.user)
    created = client.post("/cron/new/", form_data(receiver))
    assert created.status_code == 200, html(created)[:2000]
    page = html(created)
    job = Job.objects.get(name="from-portal")
    assert 'id="cron-secret"' in page
    secret = re.search(r"<code data-secret>([^<]+)</code>", page)
    assert secret and len(secret.group(1)) >= 32
    assert SECRET_VALUE not in page
    assert (job.concurrency, job.max_attempts, job.http_expected_statuses) == ("forbid", 3, [200, 204])
    assert job.http_headers == {"X-Team": "shop"} and job.http_secret_header_names == ["Authorization"]
    again = html(client.get(f"/cron/{job.pk}/"))
    assert 'id="cron-secret"' not in again and secret.group(1) not in again and SECRET_VALUE not in again
    assert "data-secret-header-name" in again

    # An edit with the secret box left empty keeps the stored secret headers.
    edited = client.post(f"/cron/{job.pk}/", form_data(receiver, http_secret_headers="", description="changed"))
    assert edited.status_code == 302, html(edited)[:2000]
    job.refresh_from_db()
    assert job.description == "changed" and job.version == 2 and job.http_secret_header_names == ["Authorization"]
    from apps.cron.services.jobs import secret_headers

    assert secret_headers(job) == {"Authorization": SECRET_VALUE}

    rotated = html(client.post(f"/cron/{job.pk}/rotate-secret/"))
    fresh = re.search(r"<code data-secret>([^<]+)</code>", rotated)
    assert fresh and fresh.group(1) != secret.group(1)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"http_url": "http://169.254.169.254/latest/meta-data/"}, "http_url"),
        ({"max_attempts": "-1"}, "max_attempts"),
        ({"backoff_seconds": "many"}, "backoff_seconds"),
        ({"http_headers": "no colon here"}, "http_headers"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(admin_persona, receiver, change, field):
    client = forced_login(admin_persona.user)
    response = client.post("/cron/new/", form_data(receiver, **change))
    assert response.status_code == 400
    page = html(response)
    assert f'data-error-for="{field}"' in page, page[:4000]
    assert change[field] in page or field == "http_headers", "what was typed stays in the form"
    assert Job.objects.count() == 0


def test_delete_needs_the_jobs_name_typed(admin_persona, receiver):
    job = make_job(receiver)
    client = forced_login(admin_persona.user)
    wrong = client.post(f"/cron/{job.pk}/delete/", {"confirm": "night"})
    assert wrong.status_code == 400 and 'data-error-for="confirm"' in html(wrong)
    assert Job.objects.filter(pk=job.pk).exists()
    gone = client.post(f"/cron/{job.pk}/delete/", {"confirm": "nightly"})
    assert gone.status_code == 302 and gone["Location"] == "/cron/"
    assert not Job.objects.filter(pk=job.pk).exists()


def test_a_run_shows_its_attempt_response_and_can_be_cancelled(admin_persona, operator_persona, receiver):
    job = make_job(receiver)
    client = forced_login(operator_persona.user)
    assert client.post(f"/cron/{job.pk}/run/").status_code == 302
    run = Run.objects.get(job=job)
    assert execution.execute(run.pk) == RunState.SUCCEEDED
    page = html(client.get(f"/cron/{job.pk}/"))
    assert f'id="run-{run.pk}"' in page and 'data-state="succeeded"' in page
    assert f"asked by {operator_persona.username}" in page
    assert f"cron.{job.pk}" in page, "the timeline follows its live topic"
    assert f'id="run-{run.pk}"' in html(client.get(f"/cron/{job.pk}/runs/"))
    detail = html(client.get(f"/cron/{job.pk}/runs/{run.pk}/"))
    assert "<strong data-status-code>200</strong>" in detail
    assert "pong from the receiver" in detail and "X-Receiver" in detail and "portal" in detail
    assert 'id="cron-cancel"' not in detail, "a finished run cannot be cancelled"

    waiting = Run.objects.create(
        job=job, slot="2030-01-01T00:00:00Z", due_at="2030-01-01T00:00:00Z", not_before="2030-01-01T00:00:00Z"
    )
    assert 'id="cron-cancel"' in html(client.get(f"/cron/{job.pk}/runs/{waiting.pk}/"))
    assert client.post(f"/cron/{job.pk}/runs/{waiting.pk}/cancel/", {"reason": "no"}).status_code == 302
    waiting.refresh_from_db()
    assert waiting.state == RunState.CANCELLED


def test_a_declared_job_is_read_only_but_may_be_suspended(admin_persona, operator_persona, receiver):
    job = make_job(receiver)
    Job.objects.filter(pk=job.pk).update(declared=True)
    client = forced_login(admin_persona.user)
    page = html(client.get(f"/cron/{job.pk}/"))
    assert "data-declared" in page and 'id="cron-save"' not in page
    assert re.search(r'<input type="text" name="schedule"[^>]*disabled', page)
    refused = client.post(f"/cron/{job.pk}/", form_data(receiver, name="nightly", schedule="@hourly"))
    assert refused.status_code == 409
    assert Job.objects.get(pk=job.pk).schedule == "30 2 * * *"
    assert "data-declared" in html(client.get("/cron/"))
    assert forced_login(operator_persona.user).post(f"/cron/{job.pk}/suspend/").status_code == 302
    assert Job.objects.get(pk=job.pk).suspended


def test_the_preview_marks_the_dst_shift(viewer_persona):
    client = forced_login(viewer_persona.user)
    fragment = client.get(
        "/cron/preview/", {"schedule": "30 2 * * *", "timezone": "Europe/Berlin", "after": "2026-03-26T12:00:00Z"}
    )
    assert fragment.status_code == 200
    items = re.findall(r"<li data-slot=\"([^\"]+)\"([^>]*)>", html(fragment))
    assert len(items) == 10
    shifted = [slot for slot, attrs in items if "data-dst-shift" in attrs]
    assert shifted == ["2026-03-29T01:00:00+00:00"], items
    assert "2026-03-29 03:00 CEST" in html(fragment)
    bad = client.get("/cron/preview/", {"schedule": "30 2 * *", "timezone": "Europe/Berlin"})
    assert bad.status_code == 400 and 'data-error-for="schedule"' in html(bad)
    zone = client.get("/cron/preview/", {"schedule": "30 2 * * *", "timezone": "Nowhere/City"})
    assert zone.status_code == 400 and 'data-error-for="timezone"' in html(zone)


def test_the_application_page_has_a_cron_tab(admin_persona, shop):
    page = html(forced_login(admin_persona.user).get(f"/clusters/applications/{shop.pk}/"))
    assert 'data-tab="cron"' in page
    assert f'href="/cron/?application={shop.pk}"' in page


def test_system_jobs_list_iccs_periodic_work_with_its_last_runs(viewer_persona, outsider_persona):
    from apps.core.tasking import task_runs
    from apps.core.tasks import heartbeat

    heartbeat.apply()
    assert task_runs("core.heartbeat")[0]["outcome"] == "success"
    page = html(forced_login(viewer_persona.user).get("/cron/system/"))
    row = re.search(r'<tr data-system-job="core.heartbeat">.*?</tr>', page, re.S)
    assert row, page[:3000]
    assert 'data-task-outcome="success"' in row.group(0)
    checkpoint = re.search(r'<tr data-system-job="audit.write_checkpoint">.*?</tr>', page, re.S)
    assert checkpoint and "<code>5 0 * * *</code>" in checkpoint.group(0)
    assert "no run recorded yet" in checkpoint.group(0)
    assert "data-system-job" not in html(forced_login(outsider_persona.user).get("/cron/system/"))
