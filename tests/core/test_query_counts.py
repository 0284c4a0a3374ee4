"""Every API list endpoint costs a fixed, small number of queries: listing 12 rows takes exactly as many as
listing 2 (no query per row), and never more than ``MAX_QUERIES``.

The endpoints are the ``list`` routes of the OpenAPI schema; a new one fails ``test_every_list_endpoint_is_counted``
until it has a row maker here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.support.clients import forced_login
from tests.support.personas import Persona
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db

API = "/api/v1"
MAX_QUERIES = 4  # today 2 or 3: the session and its user, the page, a prefetch
FEW, MANY = 2, 12


class Rows:
    """Makes rows of each listed kind, all under one cluster and application (each row a distinct object)."""

    def __init__(self, admin: Persona) -> None:
        from apps.clusters.models import Application

        self.admin = admin.user
        self.cluster = cluster_row("counted", "https://counted.example")
        self.app = Application.objects.create(cluster=self.cluster, namespace="ns", name="shop")
        self.policy: Any = None

    @staticmethod
    def uid() -> str:
        return uuid.uuid4().hex

    def cluster_with_pods(self, i: int) -> None:
        application_row(cluster_row(f"q-{i:02d}", "https://q.example"), "ns", f"app-{i}", ["p"])

    def namespace_row(self, i: int) -> None:
        from apps.clusters.models import Namespace

        Namespace.objects.create(cluster=self.cluster, name=f"ns-{i}", uid=self.uid())

    def node_row(self, i: int) -> None:
        from apps.clusters.models import Node

        Node.objects.create(cluster=self.cluster, name=f"node-{i}", uid=self.uid())

    def application_row(self, i: int) -> None:
        from apps.clusters.models import Application

        Application.objects.create(cluster=self.cluster, namespace=f"ns-{i}", name=f"app-{i}")

    def workload_row(self, i: int) -> None:
        from apps.clusters.models import Workload

        Workload.objects.create(
            cluster=self.cluster, namespace="ns", kind="Deployment", name=f"w-{i}", uid=self.uid(), application=self.app
        )

    def pod_row(self, i: int) -> None:
        from apps.clusters.models import Pod, Workload

        workload = Workload.objects.create(
            cluster=self.cluster,
            namespace="ns",
            kind="Deployment",
            name=f"pw-{i}",
            uid=self.uid(),
            application=self.app,
        )
        Pod.objects.create(
            cluster=self.cluster, namespace="ns", name=f"p-{i}", uid=self.uid(), workload=workload, application=self.app
        )

    def warning_event_row(self, i: int) -> None:
        from apps.clusters.models import WarningEvent

        WarningEvent.objects.create(
            cluster=self.cluster,
            namespace="ns",
            name=f"e-{i}",
            uid=self.uid(),
            object_kind="Deployment",
            object_name="w",
            application=self.app,
            reason="Trouble",
            last_seen=timezone.now(),
        )

    def policy_row(self, i: int) -> None:
        from apps.scaler.models import ScalingPolicy

        ScalingPolicy.objects.create(application=self.app, name=f"p-{i}", metrics=[{"name": "cpu", "target": 0.6}])

    def decision_row(self, i: int) -> None:
        from apps.scaler.models import Decision, ScalingPolicy

        if self.policy is None:
            self.policy = ScalingPolicy.objects.create(application=self.app, metrics=[{"name": "cpu", "target": 0.6}])
        Decision.objects.create(
            policy=self.policy,
            application=self.app,
            at=timezone.now(),
            trigger="periodic",
            current_replicas=1,
            desired_replicas=i + 2,
            outcome="recommended",
            policy_version=1,
        )

    def audit_event_row(self, i: int) -> None:
        from apps.audit.services import audit_record

        audit_record(action="tests.query.count", target_type="tests.row", target_id=str(i), message=f"row {i}")

    def user_row(self, i: int) -> None:
        from apps.users.services import user_create

        user_create(username=f"counted-{i}", password=f"pw-counted-{i}-Correct-Horse-42")

    def token_row(self, i: int) -> None:
        from apps.users.tokens import token_create

        token_create(owner=self.admin, name=f"token-{i}", by=self.admin)

    def role_binding_row(self, i: int) -> None:
        from apps.users.models import RoleBinding
        from apps.users.services import user_create

        user = user_create(username=f"bound-{i}", password=f"pw-bound-{i}-Correct-Horse-42")
        RoleBinding.objects.create(user=user, role="viewer", scope_kind="cluster", scope_cluster=str(self.cluster.pk))

    def team_row(self, i: int) -> None:
        from apps.users.models import Team

        Team.objects.create(name=f"team-{i}")

    def service_account_row(self, i: int) -> None:
        from apps.users.models import Team
        from apps.users.services import service_account_create

        Team.objects.get_or_create(name="robots")
        service_account_create(by=self.admin, username=f"robot-{i}", team_name="robots")

    def cron_job_row(self, i: int) -> None:
        from apps.cron.services.jobs import job_create

        job_create(name=f"cron-{i}", schedule="*/5 * * * *", http_url="http://127.0.0.1:9/hook", application=self.app)

    def cron_run_row(self, i: int) -> None:
        from apps.cron.models import Job, Run
        from apps.cron.services.jobs import job_create

        job = (
            Job.objects.filter(name="runs-of").first()
            or job_create(name="runs-of", schedule="@daily", http_url="http://127.0.0.1:9/hook")[0]
        )
        slot = timezone.now().replace(microsecond=0) - timedelta(minutes=i + 1)
        Run.objects.create(job=job, slot=slot, due_at=slot, not_before=slot, state="succeeded", duration_ms=10 + i)

    def compliance_result_row(self, i: int) -> None:
        from apps.clusters.models import Workload
        from apps.compliance.models import Result

        workload = Workload.objects.create(
            cluster=self.cluster,
            namespace="ns",
            kind="Deployment",
            name=f"cw-{i}",
            uid=self.uid(),
            application=self.app,
        )
        now = timezone.now()
        Result.objects.create(
            workload=workload,
            cluster=self.cluster,
            namespace="ns",
            application=self.app,
            policy="pss-baseline",
            check_id="pss.baseline.privileged",
            severity="critical",
            status="fail" if i % 2 else "pass",
            since=now,
            evaluated_at=now,
        )

    def compliance_policy_row(self, i: int) -> None:
        from apps.compliance.models import Policy

        Policy.objects.create(key=f"cel-{i}", name=f"custom {i}", validations=[{"expression": "true"}])

    def compliance_binding_row(self, i: int) -> None:
        from apps.compliance.models import Binding, Policy

        Binding.objects.create(
            policy=Policy.objects.get(key="pss-baseline"),
            scope_kind="namespace",
            scope_cluster=str(self.cluster.pk),
            scope_namespace=f"ns-{i}",
        )

    def compliance_history_row(self, i: int) -> None:
        from apps.compliance.models import HistoryPoint

        taken_at = timezone.now() - timedelta(hours=i)
        # a scope's total row (what an unfiltered history sums) beside its detail rows, in two namespaces
        for namespace, policy, severity in (("ns", "", ""), ("other", "", ""), ("ns", "pss-baseline", "critical")):
            HistoryPoint.objects.create(
                taken_at=taken_at,
                cluster=self.cluster,
                namespace=namespace,
                application=self.app,
                application_name="shop",
                policy=policy,
                severity=severity,
                passed=3,
                failed=i % 2,
            )

    def compliance_exception_row(self, i: int) -> None:
        from apps.compliance.models import Policy, PolicyException

        PolicyException.objects.create(
            policy=Policy.objects.get(key="pss-baseline"),
            scope_kind="namespace",
            scope_cluster=str(self.cluster.pk),
            scope_namespace="ns",
            reason=f"row {i}",
            owner="team",
            expires_at=timezone.now() + timedelta(days=i + 1),
            requested_by=self.admin,
            approved_by=self.admin if i % 2 else None,
            approved_at=timezone.now() if i % 2 else None,
        )

    def calendar_entry_row(self, i: int) -> None:
        from apps.calendar.models import CalendarEntry

        CalendarEntry.objects.create(
            kind="freeze" if i % 2 else "maintenance",
            title=f"entry {i}",
            rrule="FREQ=WEEKLY;BYDAY=FR" if i % 2 else "",
            start_date=timezone.now().date(),
            start_time=timezone.now().time().replace(microsecond=0),
            timezone="Europe/Berlin",
            duration_minutes=60,
            scope_kind="cluster" if i % 2 else "global",
            scope_cluster=str(self.cluster.pk) if i % 2 else "",
            reason="row",
            owner="team",
            enabled=False,  # listed all the same; no other test may find itself frozen
            created_by=self.admin,
        )

    def compliance_webhook_row(self, i: int) -> None:
        from apps.compliance.models import AdmissionWebhook

        AdmissionWebhook.objects.create(cluster=cluster_row(f"hook-{i}"), failure_policy="Fail" if i % 2 else "Ignore")

    def traffic_recommendation_row(self, i: int) -> None:
        from apps.traffic.models import Recommendation

        Recommendation.objects.create(
            application=self.app,
            route=f"/r/{i}",
            method="GET",
            kind="ttl",
            ttl_seconds=60,
            state="accepted" if i % 2 else "proposed",
            decided_by=self.admin if i % 2 else None,
            computed_at=timezone.now(),
        )

    def traffic_cache_config_row(self, i: int) -> None:
        from apps.traffic.models import CacheConfig

        CacheConfig.objects.create(application=self.app, version=i + 1, routes=[], created_by=self.admin)

    def _traffic(self, app: Any, route: str) -> None:
        from apps.traffic import sketch
        from apps.traffic.models import RouteRollup

        latency = sketch.new()
        sketch.add(latency, 12.5)
        minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=1)
        buckets = {  # every level, as the flusher writes them
            "m": minute,
            "h": minute.replace(minute=0),
            "d": minute.replace(hour=0, minute=0),
        }
        for level, bucket in buckets.items():
            RouteRollup.objects.create(
                application=app,
                level=level,
                bucket=bucket,
                route=route,
                method="GET",
                status_class=2,
                count=3,
                bytes=10,
                sketch=sketch.dumps(latency),
            )

    def traffic_application_row(self, i: int) -> None:
        from apps.clusters.models import Application

        self._traffic(Application.objects.create(cluster=self.cluster, namespace=f"t-{i}", name=f"t-{i}"), "/")

    def notification_channel_row(self, i: int) -> None:
        from apps.notifications.models import Channel

        Channel.objects.create(name=f"channel-{i}", kind="email", target=f"ops{i}@example.com")

    def notification_rule_row(self, i: int) -> None:
        from apps.notifications.models import Channel, Rule

        channel = Channel.objects.create(name=f"rule-channel-{i}", kind="email", target="ops@example.com")
        Rule.objects.create(name=f"rule-{i}", kinds=["clusters.*"]).channels.add(channel)

    def notification_subscription_row(self, i: int) -> None:
        from apps.notifications.models import Subscription

        Subscription.objects.create(user=self.admin, kinds=["*"], email=f"me{i}@example.com")

    def _notification(self, i: int) -> Any:
        from apps.notifications.models import Channel, Delivery, Event, Message

        now = timezone.now()
        event = Event.objects.create(kind="k", severity="error", subject=f"s{i}", dedup_key=f"k{i}", at=now)
        message = Message.objects.create(
            dedup_key=f"k{i}",
            kind="k",
            severity="error",
            subject="s",
            first_event=event,
            last_event=event,
            opened_at=now,
            last_event_at=now,
            state="resolved",
        )
        message.events.add(event)
        channel = Channel.objects.create(name=f"d-{i}", kind="email", target="ops@example.com")
        return Delivery.objects.create(message=message, channel=channel, kind="first", next_attempt_at=now)

    def notification_event_row(self, i: int) -> None:
        self._notification(i)

    def notification_delivery_row(self, i: int) -> None:
        self._notification(i)

    def traffic_route_row(self, i: int) -> None:
        self._traffic(self.app, f"/r/{i}")


ENDPOINTS: dict[str, Callable[[Rows, int], None]] = {
    "audit/events": Rows.audit_event_row,
    "clusters": Rows.cluster_with_pods,
    "namespaces": Rows.namespace_row,
    "nodes": Rows.node_row,
    "applications": Rows.application_row,
    "workloads": Rows.workload_row,
    "pods": Rows.pod_row,
    "warning-events": Rows.warning_event_row,
    "scaler/policies": Rows.policy_row,
    "scaler/decisions": Rows.decision_row,
    "cron/jobs": Rows.cron_job_row,
    "cron/runs": Rows.cron_run_row,
    "compliance/results": Rows.compliance_result_row,
    "compliance/policies": Rows.compliance_policy_row,
    "compliance/bindings": Rows.compliance_binding_row,
    "compliance/exceptions": Rows.compliance_exception_row,
    "compliance/history": Rows.compliance_history_row,
    "compliance/webhooks": Rows.compliance_webhook_row,
    "calendar/entries": Rows.calendar_entry_row,
    "traffic/applications": Rows.traffic_application_row,
    "traffic/routes": Rows.traffic_route_row,
    "traffic/recommendations": Rows.traffic_recommendation_row,
    "traffic/cache-configs": Rows.traffic_cache_config_row,
    "users": Rows.user_row,
    "tokens": Rows.token_row,
    "role-bindings": Rows.role_binding_row,
    "service-accounts": Rows.service_account_row,
    "teams": Rows.team_row,
    "notifications/channels": Rows.notification_channel_row,
    "notifications/rules": Rows.notification_rule_row,
    "notifications/subscriptions": Rows.notification_subscription_row,
    "notifications/events": Rows.notification_event_row,
    "notifications/deliveries": Rows.notification_delivery_row,
}


def list_queries(client: Any, path: str, at_least: int) -> list[str]:
    """The SQL of one list request (after a warm-up), which must show ``at_least`` rows on its page."""
    client.get(path)  # warm-up: content types, the session's first touch
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, {"limit": 100})
    assert response.status_code == 200, response.content[:500]
    assert len(response.json()["results"]) >= at_least, response.json()
    return [q["sql"] for q in queries]


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_a_list_costs_the_same_queries_for_2_rows_as_for_12(endpoint: str, admin_persona: Persona) -> None:
    rows, make = Rows(admin_persona), ENDPOINTS[endpoint]
    client, path = forced_login(admin_persona.user), f"{API}/{endpoint}/"
    for i in range(FEW):
        make(rows, i)
    few = list_queries(client, path, FEW)
    for i in range(FEW, MANY):
        make(rows, i)
    many = list_queries(client, path, MANY)
    assert len(many) == len(few), {"rows": (FEW, MANY), "queries": (few, many)}
    assert len(many) <= MAX_QUERIES, many


def test_every_list_endpoint_is_counted(admin_persona: Persona) -> None:
    """The OpenAPI schema's collection GETs (no path parameter) are exactly the endpoints counted above."""
    schema = forced_login(admin_persona.user).get(f"{API}/schema/", {"format": "json"}).json()
    listed = {
        path.removeprefix(f"{API}/").rstrip("/")
        for path, operations in schema["paths"].items()
        if "get" in operations and "{" not in path and "results" in _response_properties(schema, operations["get"])
    }
    assert listed == set(ENDPOINTS)


def _response_properties(schema: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    content = operation.get("responses", {}).get("200", {}).get("content", {})
    ref = next(iter(content.values()), {}).get("schema", {}).get("$ref", "")
    if not ref:
        return set()
    component = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return set(component.get("properties", {}))
