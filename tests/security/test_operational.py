"""Operational attacks, each written as the request an attacker sends and the answer ICC must give.

Anonymous noise is counted, not audited; schedules are bounded; exports are spreadsheet-safe; /metrics and
/readyz give outsiders nothing; every API operation answers an anonymous caller 401 before it looks anything
up; production settings pass ``check --deploy``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.apps import apps as django_apps
from django.test import Client, override_settings
from django.urls import resolve
from prometheus_client import REGISTRY

from apps.audit.models import AuditEvent
from apps.clusters.models import Namespace, Node, WarningEvent, Workload
from apps.compliance.models import Policy, PolicyException, Result
from apps.core.errors import DomainError
from apps.cron.models import Job, Run
from apps.scaler import schedules
from apps.scaler.models import Decision, ScalingPolicy
from apps.users.models import RoleBinding
from apps.users.services import team_create
from apps.users.tokens import token_create
from tests.support.components import free_port
from tests.support.rows import application_row, cluster_row
from tests.support.work import BOUNDED_WORK, python_calls

ROOT = Path(__file__).resolve().parents[2]
MISSING_ID = "987654321"
pytestmark = pytest.mark.django_db


def anonymous_denied(route: str) -> float:
    return REGISTRY.get_sample_value("icc_api_anonymous_denied_total", {"route": route}) or 0.0


def signed_in(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def estate(admin_persona) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """One row of everything the API exposes by id, so a walk can use ids that exist."""
    boss = admin_persona.user
    cluster = cluster_row("c1")
    app = application_row(cluster, "prod", "shop", ["1"])
    Namespace.objects.create(cluster=cluster, name="prod", uid="ns-1")
    Node.objects.create(cluster=cluster, name="node-1", uid="n-1")
    WarningEvent.objects.create(cluster=cluster, namespace="prod", name="ev", uid="e-1", application=app)
    policy = ScalingPolicy.objects.create(application=app, metrics=[{"name": "rps", "target": 50}])
    Decision.objects.create(
        policy=policy,
        application=app,
        at=datetime.now(UTC),
        trigger="periodic",
        current_replicas=1,
        desired_replicas=1,
        outcome="applied",
        policy_version=1,
    )
    job = Job.objects.create(name="nightly", application=app, schedule="@daily", http_url="http://127.0.0.1:9/x")
    now = datetime.now(UTC)
    Run.objects.create(job=job, slot=now, due_at=now, not_before=now)
    workload = Workload.objects.get(application=app)
    Result.objects.create(
        workload=workload,
        cluster=cluster,
        namespace="prod",
        application=app,
        policy="pss-baseline",
        check_id="pss.baseline.privileged",
        severity="critical",
        status="fail",
        since=now,
        evaluated_at=now,
    )
    PolicyException.objects.create(
        policy=Policy.objects.get(key="pss-baseline"), reason="walk", owner="ops", expires_at=now + timedelta(days=1)
    )
    team_create(by=boss, name="ops")
    token_create(owner=boss, name="walk", by=boss)
    RoleBinding.objects.create(user=boss, role="viewer")
    from apps.compliance.models import Binding
    from apps.compliance.models import Policy as CompliancePolicy

    Binding.objects.create(policy=CompliancePolicy.objects.get(key="pss-baseline"))
    from apps.compliance.models import AdmissionWebhook

    AdmissionWebhook.objects.create(cluster=cluster)
    from apps.calendar.models import CalendarEntry

    CalendarEntry.objects.create(  # disabled and long past: no other test may find itself frozen
        kind="freeze",
        title="estate",
        start_date=date(2001, 1, 1),
        start_time=now.time(),
        duration_minutes=1,
        reason="r",
        owner="o",
        enabled=False,
    )
    from apps.traffic.models import CacheConfig, Recommendation

    Recommendation.objects.create(application=app, route="/", method="GET", kind="ttl", computed_at=now)
    CacheConfig.objects.create(application=app, version=1)
    from apps.notifications.models import Channel, Delivery, Event, Message, Rule, Subscription

    channel = Channel.objects.create(name="estate", kind="email", target="ops@example.com")
    Rule.objects.create(name="estate", kinds=["*"]).channels.add(channel)
    Subscription.objects.create(user=boss, kinds=["*"], email="boss@example.com")
    event = Event.objects.create(kind="clusters.unreachable", severity="error", subject="s", dedup_key="k", at=now)
    message = Message.objects.create(
        dedup_key="k",
        kind=event.kind,
        severity="error",
        subject="s",
        first_event=event,
        last_event=event,
        opened_at=now,
        last_event_at=now,
        state="resolved",
    )
    Delivery.objects.create(message=message, channel=channel, kind="first", next_attempt_at=now, status="sent")
    return {"application": app, "admin": boss}


# --- 16. Anonymous first -------------------------------------------------------------------------------------


def api_operations() -> list[tuple[str, str]]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (path, method.upper())
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def existing_id(path: str) -> str:
    """An id that exists for the ``{id}`` of ``path``: the model of the view's serializer, else the collection
    named just before the parameter (``applications/{id}/kill-switch/``)."""
    view = resolve(path.replace("{id}", "1")).func
    cls = getattr(view, "cls", None)
    model = getattr(getattr(getattr(cls, "serializer_class", None), "Meta", None), "model", None)
    if model is None:
        collection = path.split("/{id}", maxsplit=1)[0].rsplit("/", 1)[-1]
        model = next(m for m in django_apps.get_models() if f"{m._meta.model_name}s" == collection)
    pk = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
    assert pk is not None, f"the estate fixture has no {model.__name__} for {path}"
    return str(pk)


def test_every_api_operation_answers_an_anonymous_caller_401_whatever_the_id(client, estate):
    operations = api_operations()
    assert len(operations) > 30
    stale_session = Client()
    stale_session.cookies["sessionid"] = "not-a-session"  # gets past the middleware: DRF must refuse it too
    wrong: list[str] = []
    for path, method in operations:
        ids = [existing_id(path), MISSING_ID] if "{id}" in path else [""]
        for value in ids:
            url = path.replace("{id}", value)
            for caller, name in ((client, "no credentials"), (stale_session, "stale session cookie")):
                response = caller.generic(method, url, data="{}", content_type="application/json")
                if response.status_code != 401 or response.json()["error"]["code"] != "not_authenticated":
                    wrong.append(f"{method} {url} ({name}): {response.status_code} {response.content[:120]!r}")
    assert not wrong, "\n".join(wrong)


def test_the_kill_switch_of_an_existing_and_a_missing_application_look_the_same_to_an_outsider(client, estate):
    body = json.dumps({"on": True, "reason": "probe"})
    answers = []
    for pk in (estate["application"].pk, MISSING_ID):
        response = client.post(f"/api/v1/scaler/applications/{pk}/kill-switch/", body, content_type="application/json")
        answers.append((response.status_code, response["WWW-Authenticate"], response.json()["error"]["message"]))
    assert answers[0] == answers[1] == (401, "Bearer", "Authentication credentials were not provided.")
    assert not ScalingPolicy.objects.filter(kill_switch=True).exists()


# --- 11. Anonymous noise does not flood the audit chain ------------------------------------------------------


def test_anonymous_noise_is_counted_by_route_not_audited(client, estate):
    route = "api/v1/scaler/applications/<int:pk>/kill-switch/"
    before_count, before_events = anonymous_denied(route), AuditEvent.objects.count()
    for pk in range(1, 51):
        assert client.post(f"/api/v1/scaler/applications/{pk}/kill-switch/").status_code == 401
    stale = Client()
    stale.cookies["sessionid"] = "expired"
    assert stale.get("/api/v1/clusters/").status_code == 401  # refused by DRF, still only counted
    assert anonymous_denied(route) == before_count + 50  # one label per route, never per raw path
    assert anonymous_denied("api/v1/clusters/$") >= 1  # the router's pattern
    assert AuditEvent.objects.count() == before_events
    metrics = client.get("/metrics").content.decode()
    assert f'icc_api_anonymous_denied_total{{route="{route}"}}' in metrics
    assert "kill-switch/50" not in metrics


def test_denials_of_signed_in_principals_stay_audited(estate, outsider_persona):
    outsider = signed_in(outsider_persona.user)
    app = estate["application"]
    before = AuditEvent.objects.filter(outcome="denied").count()
    # An existing application the outsider cannot see: a 404 that is audited as denied.
    response = outsider.post(f"/api/v1/clusters/{app.cluster_id}/sync/", "{}", content_type="application/json")
    assert response.status_code == 404
    response = outsider.post(
        "/api/v1/scaler/pause/", json.dumps({"on": True, "reason": "x"}), content_type="application/json"
    )
    assert response.status_code == 403
    assert AuditEvent.objects.filter(outcome="denied").count() == before + 2


# --- 13. Exports are spreadsheet-safe ------------------------------------------------------------------------

FORMULA = '=HYPERLINK("http://x","y")'


def test_a_formula_typed_into_the_login_form_reaches_the_csv_export_as_text(client, admin_persona):
    # The attacker needs no account: a failed login records the typed username in the audit trail.
    client.post("/accounts/login/", {"username": FORMULA, "password": "whatever-it-is"})
    for prefix in ("+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        client.post("/accounts/login/", {"username": prefix, "password": "whatever-it-is"})
    admin = signed_in(admin_persona.user)
    response = admin.get("/audit/export.csv", {"action": "users.session.login"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    cells = [value for row in rows for value in row.values() if value and "HYPERLINK" in value]
    assert cells and all(cell.startswith("'=") for cell in cells), cells
    for row in rows:
        for value in row.values():
            assert not (value or "").startswith(("=", "+", "-", "@", "\t", "\r")), row
    assert any(row["target_display"] == "'+cmd" for row in rows)


# --- 15. Operational endpoints -------------------------------------------------------------------------------

TOKEN = "scrape-token-8d1f6a3c9e2b47f0a5d4c3b2a1908f7e"


def test_metrics_need_the_bearer_token_when_one_is_set(client, settings):
    assert client.get("/metrics").status_code == 200  # unset: as before
    settings.METRICS_TOKEN = TOKEN
    for header in (None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "):
        headers = {"Authorization": header} if header else {}
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, header
        assert b"icc_" not in response.content and response["WWW-Authenticate"].startswith("Bearer")
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and b"icc_task_runs_total" in response.content


def test_a_standalone_workers_metrics_port_needs_the_token_too(settings):
    from apps.core.metrics import serve_metrics

    settings.METRICS_TOKEN = TOKEN
    port = free_port()
    server = serve_metrics(port, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert requests.get(url, timeout=5).status_code == 401
        assert requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=5).status_code == 401
        response = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert response.status_code == 200 and "icc_task_runs_total" in response.text
    finally:
        server.shutdown()
        server.server_close()


def test_readyz_names_the_failing_part_but_never_the_exception_text(client):
    unreachable = "redis://icc-secret-redis-host.invalid:6379/0"
    with override_settings(REDIS_URL=unreachable, CELERY_BROKER_URL=unreachable):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis", "broker"]
    assert body["checks"] == {"database": "ok", "redis": "fail", "broker": "fail"}
    text = response.content.decode()
    for leak in ("icc-secret-redis-host", "invalid", "Error", "6379", "Name or service"):
        assert leak not in text, leak


# --- 12. Schedules are bounded -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ("FREQ=SECONDLY", "SECONDLY"),
        ("FREQ=MINUTELY;INTERVAL=5", "MINUTELY"),
        ("DTSTART:19991231T230000\nRRULE:FREQ=DAILY", "2000"),
        ("DTSTART:20990101T000000\nRRULE:FREQ=DAILY", "10 years"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "never occurs"),
        ("FREQ=HOURLY;BYMONTH=4;BYMONTHDAY=31", "never occurs"),
        ("FREQ=DAILY;BYWEEKNO=1;BYMONTH=6", "never occurs"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6", "never occurs"),
        ("FREQ=DAILY;INTERVAL=7;BYDAY=TU\nDTSTART:20260105T000000", "never occurs"),  # a Monday, every 7 days
        ("FREQ=YEARLY;BYEASTER=0", "BYEASTER"),
        ("FREQ=DAILY;COUNT=1000000", "COUNT"),
    ],
)
def test_a_schedule_that_would_make_the_scaler_spin_is_refused_at_once(rule, says, estate):
    admin = signed_in(estate["admin"])
    window = {"name": "w", "rrule": rule, "timezone": "Europe/Berlin", "duration_minutes": 30, "min_replicas": 2}
    response = admin.post(
        "/api/v1/scaler/policies/",
        json.dumps(
            {
                "application": estate["application"].pk,
                "metrics": [{"name": "rps", "target": 50}],
                "schedules": [window],
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert list(fields) == ["schedules"] and says in fields["schedules"][0], fields


def test_validating_any_rule_does_bounded_work():
    rules = (
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;INTERVAL=7;BYDAY=TU\nDTSTART:20260105T000000",
        "FREQ=HOURLY;BYMINUTE=0,15,30,45",
    )
    for rule in rules:
        work = python_calls(
            lambda rule=rule: schedules.validate_window(
                rrule_text=rule, timezone="UTC", duration_minutes=60, min_replicas=1, max_replicas=None, name="w"
            ),
            expected=DomainError,
        )
        assert work < BOUNDED_WORK, (rule, work)


def test_an_evaluation_examines_a_bounded_number_of_occurrences():
    class Window:
        name, timezone, min_replicas, max_replicas, priority = "w", "UTC", 2, None, 0
        rrule = "DTSTART:20000101T000000\nRRULE:FREQ=HOURLY;BYMINUTE=0,10,20,30,40,50"
        duration_minutes = 5

    at = datetime(2026, 12, 6, 3, 12, tzinfo=UTC)
    assert schedules.open_since(Window(), at) == datetime(2026, 12, 6, 3, 10, tzinfo=UTC)
    assert schedules.open_since(Window(), datetime(2026, 12, 6, 3, 16, tzinfo=UTC)) is None
    # 26 years of 10-minute occurrences since DTSTART: the evaluation starts near ``at``, not at DTSTART.
    work = python_calls(lambda: schedules.open_since(Window(), at))
    assert work < BOUNDED_WORK, work


# --- 17. Secure by default in production ---------------------------------------------------------------------

PRODUCTION_ENV = {
    "DATABASE_URL": "postgres://icc:change-me@postgres.icc.svc:5432/icc",
    "REDIS_URL": "redis://redis.icc.svc:6379/0",
    "SECRET_KEY": "QpJrO5Xn72QZ2YSPyjYZFi5-OeJmryBpuZvbljNBLWHAAal6IAdy7D-k4_n2k3rP",
    "ICC_ENCRYPTION_KEYS": "ax8kbeJzi_k2Sj26iMfv8Rqec6n-c2mmmabUDF9Z6kU=",
    "ALLOWED_HOSTS": "icc.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://icc.example.com",
    "METRICS_TOKEN": "8bc90b4cd6e9c6ad6d4ff9ce7eb44358731a74154dc6d8e9",
}


def production_env(**extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(PRODUCTION_ENV, **extra)
    return env


def run_settings(env: dict[str, str], code: str) -> Any:
    script = f"import django, json; django.setup(); from django.conf import settings as s; print(json.dumps({code}))"
    env = {**env, "DJANGO_SETTINGS_MODULE": "iccapp.settings"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_production_settings_pass_the_deploy_checks():
    # --deploy checks only read settings; the database check is skipped unless asked for (--database).
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"System check identified no issues", done.stdout), done.stdout + done.stderr


SECURE = (
    "[s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER,"
    " s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD]"
)


def test_production_is_https_only_by_default_and_secure_cookies_false_turns_it_off():
    on = run_settings(production_env(), SECURE)
    assert on == [True, True, True, ["HTTP_X_FORWARDED_PROTO", "https"], 31536000, True, True]
    off = run_settings(production_env(SECURE_COOKIES="false"), SECURE)
    assert off == [False, False, False, None, 0, False, False]
