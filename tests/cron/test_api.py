"""The cron API through the Django test client, on real PostgreSQL and Redis and against a real HTTP receiver.

Personas: the admin configures, the operator runs and suspends but may not create or change, the viewer reads
only, the outsider sees nothing, and an application-scoped binding sees only its application's jobs. Bad input
is refused naming the field with nothing stored; secret header values never appear in an answer or the audit
trail; the signing secret appears once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from apps.audit.models import AuditEvent
from apps.cron import execution
from apps.cron.models import Job, Run, RunState
from tests.support.clients import error_fields, forced_login, patch_json, post_json, results, with_binding
from tests.support.receiver import Receiver
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/v1/cron"
SECRET_VALUE = "Bearer top-secret-value-7f3a"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(body=b'{"done": true}', headers={"Content-Type": "application/json", "X-Receiver": "yes"}) as r:
        yield r


@pytest.fixture
def shop() -> Any:
    return application_row(cluster_row("cron-c"), "shop-ns", "shop", ["a"])


def job_body(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "nightly-report",
        "schedule": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "http_url": f"{receiver.url}/hook",
        "http_method": "POST",
        "http_body": '{"report": "nightly"}',
        "http_headers": {"X-Team": "shop"},
        "http_secret_headers": {"Authorization": SECRET_VALUE},
    }
    body.update(extra)
    return body


def create(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = post_json(client, f"{API}/jobs/", body)
    assert response.status_code == 201, response.content
    data: dict[str, Any] = response.json()
    return data


def test_a_job_is_created_read_and_its_secrets_stay_hidden(admin_persona, receiver, shop):
    client = forced_login(admin_persona.user)
    created = create(client, job_body(receiver, application=shop.pk))
    assert created["signing_secret"] and len(created["signing_secret"]) >= 32
    assert created["application"] == shop.pk and created["cluster"] == shop.cluster_id
    assert created["namespace"] == "shop-ns"
    assert created["http_secret_header_names"] == ["Authorization"]
    assert "http_secret_headers" not in created
    assert created["schedule_description"] and created["next_due_at"]
    assert created["version"] == 1 and created["declared"] is False

    listed = results(client.get(f"{API}/jobs/"))
    assert [j["name"] for j in listed] == ["nightly-report"]
    one = client.get(f"{API}/jobs/{created['id']}/")
    for answer in (json.dumps(listed), one.content.decode()):
        assert SECRET_VALUE not in answer
        assert created["signing_secret"] not in answer
    trail = json.dumps(list(AuditEvent.objects.values("changes", "metadata", "message")), default=str)
    assert "cron.job.create" in json.dumps(list(AuditEvent.objects.values_list("action", flat=True)))
    assert SECRET_VALUE not in trail and created["signing_secret"] not in trail

    changed = patch_json(client, f"{API}/jobs/{created['id']}/", {"http_secret_headers": {"Authorization": "other"}})
    assert changed.status_code == 200, changed.content
    assert changed.json()["version"] == 2 and "other" not in changed.content.decode()
    trail = json.dumps(list(AuditEvent.objects.values("changes", "metadata", "message")), default=str)
    assert "other" not in trail and SECRET_VALUE not in trail


def test_personas_read_act_and_configure_within_their_rights(
    admin_persona, operator_persona, viewer_persona, outsider_persona, receiver
):
    job = create(forced_login(admin_persona.user), job_body(receiver))
    path = f"{API}/jobs/{job['id']}/"

    viewer = forced_login(viewer_persona.user)
    assert [j["id"] for j in results(viewer.get(f"{API}/jobs/"))] == [job["id"]]
    assert viewer.get(path).status_code == 200
    assert patch_json(viewer, path, {"description": "x"}).status_code == 403
    assert post_json(viewer, f"{path}run/").status_code == 403
    assert post_json(viewer, f"{path}suspend/").status_code == 403
    assert viewer.delete(f"{path}?confirm=nightly-report").status_code == 403
    assert post_json(viewer, f"{API}/jobs/", job_body(receiver, name="mine")).status_code == 403

    operator = forced_login(operator_persona.user)
    suspended = post_json(operator, f"{path}suspend/", {"reason": "maintenance"})
    assert suspended.status_code == 200 and suspended.json()["suspended"] is True
    ran = post_json(operator, f"{path}run/")
    assert ran.status_code == 201 and ran.json()["manual"] is True
    assert ran.json()["requested_by"] == operator_persona.user.pk
    resumed = post_json(operator, f"{path}resume/")
    assert resumed.status_code == 200 and resumed.json()["suspended"] is False
    assert patch_json(operator, path, {"description": "x"}).status_code == 403
    assert post_json(operator, f"{path}rotate-secret/").status_code == 403
    assert post_json(operator, f"{API}/jobs/", job_body(receiver, name="mine")).status_code == 403
    assert operator.delete(f"{path}?confirm=nightly-report").status_code == 403

    outsider = forced_login(outsider_persona.user)
    assert results(outsider.get(f"{API}/jobs/")) == []
    assert results(outsider.get(f"{API}/runs/")) == []
    assert outsider.get(path).status_code == 404
    assert post_json(outsider, f"{path}run/").status_code == 404
    assert Job.objects.count() == 1 and Job.objects.get().description == ""


def test_an_application_scoped_binding_sees_only_its_applications_jobs(admin_persona, make_user, receiver, shop):
    billing = application_row(shop.cluster, "billing-ns", "billing", ["b"])
    admin = forced_login(admin_persona.user)
    mine = create(admin, job_body(receiver, name="shop-job", application=shop.pk))
    theirs = create(admin, job_body(receiver, name="billing-job", application=billing.pk))
    create(admin, job_body(receiver, name="global-job"))
    for job in (mine, theirs):
        assert post_json(admin, f"{API}/jobs/{job['id']}/run/").status_code == 201

    member = with_binding(make_user("sam-shop"), "operator", shop.cluster, "shop-ns", "shop")
    client = forced_login(member.user)
    assert [j["name"] for j in results(client.get(f"{API}/jobs/"))] == ["shop-job"]
    assert {r["job"] for r in results(client.get(f"{API}/runs/"))} == {mine["id"]}
    assert client.get(f"{API}/jobs/{theirs['id']}/").status_code == 404
    assert post_json(client, f"{API}/jobs/{mine['id']}/run/").status_code == 201
    assert results(client.get(f"{API}/jobs/", {"application": shop.pk}))[0]["id"] == mine["id"]
    assert results(client.get(f"{API}/jobs/", {"application": billing.pk})) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"schedule": "every day"}, "schedule"),
        ({"schedule": "0 0 31 2 *"}, "schedule"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"http_url": "http://169.254.169.254/latest/meta-data/"}, "http_url"),
        ({"http_url": "ftp://127.0.0.1/x"}, "http_url"),
        ({"max_attempts": -1}, "max_attempts"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"backoff_seconds": -5}, "backoff_seconds"),
        ({"timeout_seconds": "soon"}, "timeout_seconds"),
        ({"http_headers": {"Idempotency-Key": "mine"}}, "http_headers"),
        ({"retries": 3}, "retries"),
        ({"name": "no spaces allowed"}, "name"),
        ({"application": 999999}, "application"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(admin_persona, receiver, change, field):
    client = forced_login(admin_persona.user)
    response = post_json(client, f"{API}/jobs/", job_body(receiver, **change))
    assert response.status_code == 400, response.content
    assert field in error_fields(response), response.json()
    assert Job.objects.count() == 0
    assert not AuditEvent.objects.filter(action="cron.job.create").exists()


def test_a_bad_change_is_refused_and_the_job_stays_as_it_was(admin_persona, receiver):
    client = forced_login(admin_persona.user)
    job = create(client, job_body(receiver))
    response = patch_json(client, f"{API}/jobs/{job['id']}/", {"schedule": "* * *", "description": "new"})
    assert response.status_code == 400 and "schedule" in error_fields(response)
    stored = Job.objects.get()
    assert (stored.schedule, stored.description, stored.version) == ("30 2 * * *", "", 1)


def test_filters_are_strict(admin_persona):
    client = forced_login(admin_persona.user)
    for path, params, field in [
        ("jobs", {"suspended": "maybe"}, "suspended"),
        ("jobs", {"application": "abc"}, "application"),
        ("jobs", {"target_kind": "ftp"}, "target_kind"),
        ("runs", {"state": "exploded"}, "state"),
        ("runs", {"job": "1.5"}, "job"),
        ("runs", {"limit": "0"}, "limit"),
    ]:
        response = client.get(f"{API}/{path}/", params)
        assert response.status_code == 400, (path, params)
        assert field in error_fields(response), response.json()


def test_jobs_are_searched_by_name_description_or_application(admin_persona, receiver):
    client = forced_login(admin_persona.user)
    create(client, job_body(receiver, name="nightly-report"))
    create(client, job_body(receiver, name="cleanup", description="removes the report drafts"))
    create(client, job_body(receiver, name="rotate"))
    response = client.get(f"{API}/jobs/", {"q": "REPORT"})
    assert response.status_code == 200, response.content
    assert sorted(j["name"] for j in response.json()["results"]) == ["cleanup", "nightly-report"]


def test_delete_needs_the_jobs_name_typed(admin_persona, receiver):
    client = forced_login(admin_persona.user)
    job = create(client, job_body(receiver))
    path = f"{API}/jobs/{job['id']}/"
    assert "confirm" in error_fields(client.delete(path))
    wrong = client.delete(path, json.dumps({"confirm": "nightly"}), content_type="application/json")
    assert wrong.status_code == 400 and "confirm" in error_fields(wrong)
    assert Job.objects.count() == 1
    assert client.delete(f"{path}?confirm=nightly-report").status_code == 204
    assert Job.objects.count() == 0
    assert AuditEvent.objects.filter(action="cron.job.delete").count() == 1


def test_run_now_calls_the_receiver_and_the_run_shows_its_attempt(operator_persona, admin_persona, receiver):
    job = create(forced_login(admin_persona.user), job_body(receiver))
    client = forced_login(operator_persona.user)
    ran = post_json(client, f"{API}/jobs/{job['id']}/run/")
    assert ran.status_code == 201
    run = Run.objects.get(pk=ran.json()["id"])
    assert run.manual and run.requested_by_id == operator_persona.user.pk
    assert execution.execute(run.pk) == RunState.SUCCEEDED

    [request] = receiver.received()
    assert request.method == "POST" and request.path == "/hook" and request.body == b'{"report": "nightly"}'
    assert request.header("Authorization") == SECRET_VALUE and request.header("X-Team") == "shop"
    assert request.header("Idempotency-Key") == run.job.idempotency_key(run.slot)
    assert (request.header("X-ICC-Signature") or "").startswith("t=")

    detail = client.get(f"{API}/runs/{run.pk}/").json()
    assert detail["state"] == "succeeded" and detail["manual"] is True
    assert detail["requested_by"] == operator_persona.user.pk
    [attempt] = detail["attempt_rows"]
    assert attempt["status_code"] == 200 and attempt["outcome"] == "succeeded"
    assert attempt["response_headers"]["X-Receiver"] == "yes"
    assert attempt["body_excerpt"] == '{"done": true}'
    per_job = results(client.get(f"{API}/jobs/{job['id']}/runs/"))
    assert [r["id"] for r in per_job] == [run.pk]
    assert results(client.get(f"{API}/jobs/", {"last_state": "succeeded"}))[0]["last_state"] == "succeeded"
    assert AuditEvent.objects.filter(action="cron.job.run", actor_name=operator_persona.username).exists()


def test_a_run_is_cancelled_once(operator_persona, admin_persona, viewer_persona, receiver):
    job = create(forced_login(admin_persona.user), job_body(receiver))
    run = Run.objects.create(
        job_id=job["id"], slot="2030-01-01T00:00:00Z", due_at="2030-01-01T00:00:00Z", not_before="2030-01-01T00:00:00Z"
    )
    assert post_json(forced_login(viewer_persona.user), f"{API}/runs/{run.pk}/cancel/").status_code == 403
    client = forced_login(operator_persona.user)
    cancelled = post_json(client, f"{API}/runs/{run.pk}/cancel/", {"reason": "not needed"})
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = post_json(client, f"{API}/runs/{run.pk}/cancel/")
    assert again.status_code == 409 and "state" in error_fields(again)


def test_rotating_the_signing_secret_answers_a_new_one_once(admin_persona, receiver):
    client = forced_login(admin_persona.user)
    job = create(client, job_body(receiver))
    rotated = post_json(client, f"{API}/jobs/{job['id']}/rotate-secret/")
    assert rotated.status_code == 200
    secret = rotated.json()["signing_secret"]
    assert secret and secret != job["signing_secret"]
    assert secret not in client.get(f"{API}/jobs/{job['id']}/").content.decode()
    run = post_json(client, f"{API}/jobs/{job['id']}/run/").json()
    assert execution.execute(run["id"]) == RunState.SUCCEEDED
    import hashlib
    import hmac

    [request] = receiver.received()
    parts = dict(p.split("=", 1) for p in (request.header("X-ICC-Signature") or "").split(","))
    message = f"{parts['t']}.{request.header('Idempotency-Key')}.".encode() + request.body
    assert parts["v1"] == hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def test_the_preview_marks_the_dst_shift(admin_persona):
    client = forced_login(admin_persona.user)
    answer = client.get(
        f"{API}/preview/", {"schedule": "30 2 * * *", "timezone": "Europe/Berlin", "after": "2026-03-26T12:00:00Z"}
    )
    assert answer.status_code == 200, answer.content
    runs = answer.json()["runs"]
    assert len(runs) == 10
    assert [r["dst_shift"] for r in runs] == [False, False, True, *([False] * 7)]
    shifted = runs[2]
    assert shifted["local"].startswith("2026-03-29T03:00:00+02:00"), shifted
    assert shifted["utc"].startswith("2026-03-29T01:00:00")
    assert runs[1]["local"].startswith("2026-03-28T02:30:00+01:00")
    for params, field in [
        ({"schedule": "30 2 * *", "timezone": "Europe/Berlin"}, "schedule"),
        ({"schedule": "30 2 * * *", "timezone": "Nowhere/City"}, "timezone"),
        ({"schedule": "30 2 * * *", "after": "yesterday"}, "after"),
    ]:
        refused = client.get(f"{API}/preview/", params)
        assert refused.status_code == 400 and field in error_fields(refused), refused.content
