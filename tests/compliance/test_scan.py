"""The chunked scan stores exactly what evaluating each workload on its own stores (real PostgreSQL): pass, fail,
error and excepted results with their messages and strictest modes, on workloads across chunk boundaries; a status
change moves ``since`` and nothing else does; a binding removed takes its results with it; a workload without a
stored template keeps what it had. Both chunk writers (PostgreSQL's single statement and the ORM one other
databases use) are held to the same reference: the original per-binding algorithm, written out here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.clusters.models import Workload
from apps.compliance import evaluation, scan_writes
from apps.compliance.models import Binding, Policy, PolicyException, Result
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db

HARDENED: dict[str, Any] = {
    "metadata": {"labels": {"app": "x", "team": "shop"}},
    "spec": {
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "app",
                "image": "registry.local/x:1.0",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
                "livenessProbe": {"httpGet": {"path": "/", "port": 80}},
                "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
            }
        ],
    },
}
PRIVILEGED: dict[str, Any] = {
    "metadata": {"labels": {"app": "x"}},
    "spec": {
        "hostNetwork": True,
        "containers": [{"name": "app", "image": "nginx:latest", "securityContext": {"privileged": True}}],
    },
}
INIT_AS_ROOT: dict[str, Any] = {
    "metadata": {"labels": {"app": "x"}},
    "spec": {
        "initContainers": [{"name": "migrate", "image": "registry.local/m:2", "securityContext": {"runAsUser": 0}}],
        "containers": [
            {"name": "app", "image": "registry.local/x:1.0", "ports": [{"containerPort": 80, "hostPort": 80}]}
        ],
        "volumes": [{"name": "logs", "hostPath": {"path": "/var/log"}}],
    },
}
TEMPLATES = (HARDENED, PRIVILEGED, INIT_AS_ROOT)


@pytest.fixture
def estate() -> dict[str, Any]:
    """Nine workloads in two clusters and three namespaces, with varied templates; one has no stored template."""
    prod, stage = cluster_row("prod"), cluster_row("stage")
    workloads = []
    for index in range(9):
        cluster = prod if index < 6 else stage
        app = application_row(cluster, ("shop", "blog", "default")[index % 3], f"app{index}", [])
        Workload.objects.filter(application=app).update(
            pod_template=TEMPLATES[index % 3],
            desired_replicas=index % 3,
            labels={"team": "shop"} if index % 2 else {},
            images=[{"container": "app", "image": "nginx:latest" if index % 3 == 1 else "registry.local/x:1.0"}],
        )
        workloads.append(Workload.objects.get(application=app))
    Workload.objects.filter(pk=workloads[8].pk).update(pod_template={})
    policies = {p.key: p for p in Policy.objects.all()}
    cel = Policy.objects.create(
        key="two-replicas",
        name="Two replicas",
        kind="cel",
        severity="high",
        validations=[
            {"expression": "object.spec.replicas >= 2", "message": "run two"},
            {"expression": "object.spec.missing.field == 1"},  # a runtime error: an error result
        ],
        match={"kinds": ["Deployment"], "namespaces": ["shop", "blog"]},
    )
    bindings = [
        Binding.objects.create(policy=policies["pss-baseline"], mode="audit"),
        Binding.objects.create(
            policy=policies["pss-restricted"], scope_kind="cluster", scope_cluster=str(prod.pk), mode="warn"
        ),
        # Bound again, stricter, in one namespace: those results carry enforce.
        Binding.objects.create(
            policy=policies["pss-baseline"],
            check_id="pss.baseline.privileged",
            scope_kind="namespace",
            scope_cluster=str(prod.pk),
            scope_namespace="blog",
            mode="enforce",
        ),
        Binding.objects.create(
            policy=policies["best-practice"],
            mode="audit",
            params={"bp.required-labels": {"labels": ["team"]}, "bp.allowed-registries": {"registries": "oops"}},
        ),
        Binding.objects.create(policy=cel, scope_kind="cluster", scope_cluster=str(prod.pk)),
    ]
    now = datetime.now(UTC)
    exception = PolicyException.objects.create(
        policy=policies["pss-baseline"],
        check_id="pss.baseline.privileged",
        match_names=["app1-*"],
        reason="legacy",
        owner="platform",
        expires_at=now + timedelta(days=3),
        approved_at=now,
    )
    PolicyException.objects.create(  # never approved: changes nothing
        policy=policies["pss-baseline"], reason="no", owner="x", expires_at=now + timedelta(days=3)
    )
    return {"workloads": workloads, "bindings": bindings, "exception": exception, "prod": prod}


def reference(workload: Workload) -> dict[str, tuple[str, str, str, str, Any, int | None]]:
    """The original algorithm: every applicable binding's verdicts in order, the first verdict of a check kept,
    the strictest mode carried, an approved exception turning a failure into excepted."""
    rank = {"audit": 0, "warn": 1, "enforce": 2}
    workload = Workload.objects.select_related("application").get(pk=workload.pk)
    if not workload.pod_template:
        return {}
    application = workload.application.name
    obj = evaluation.manifest(workload)
    chosen: dict[str, tuple[Any, str]] = {}
    for binding in evaluation.active_bindings():
        if not binding.applies_to(workload.cluster_id, workload.namespace, application):
            continue
        for verdict in evaluation.verdicts(binding, obj):
            known = chosen.get(verdict.check_id)
            if known is None:
                chosen[verdict.check_id] = (verdict, binding.mode)
            elif rank[binding.mode] > rank[known[1]]:
                chosen[verdict.check_id] = (known[0], binding.mode)
    exceptions = evaluation.active_exceptions()
    expected = {}
    for check_id, (verdict, mode) in chosen.items():
        excepted = evaluation.excepted_by(workload, verdict, exceptions)
        status, message = str(verdict.status), verdict.message
        if excepted is not None:
            status = "excepted"
            message = f"excepted until {excepted.expires_at:%Y-%m-%d %H:%M} UTC (owner {excepted.owner}): {message}"
        expected[check_id] = (
            status,
            message[:1024],
            mode,
            str(verdict.severity),
            verdict.fix,
            excepted and excepted.pk,
        )
    return expected


def stored(workload: Workload) -> dict[str, tuple[str, str, str, str, Any, int | None]]:
    rows = Result.objects.filter(workload=workload)
    for row in rows:
        assert (row.cluster_id, row.namespace, row.application_id) == (
            workload.cluster_id,
            workload.namespace,
            workload.application_id,
        )
    return {r.check_id: (r.status, r.message, r.mode, r.severity, r.fix, r.exception_id) for r in rows}


def since_of(workload: Workload) -> dict[str, tuple[datetime, datetime]]:
    return {r.check_id: (r.since, r.evaluated_at) for r in Result.objects.filter(workload=workload)}


@pytest.fixture(params=["postgresql", "orm"])
def writer(request, monkeypatch) -> str:
    """Run each test with PostgreSQL's one-statement writer and with the ORM writer (what SQLite uses)."""
    if request.param == "orm":
        monkeypatch.setitem(scan_writes.WRITERS, "postgresql", scan_writes.write_orm)
    return request.param


def test_the_chunked_scan_stores_what_per_workload_evaluation_stores(estate, writer):
    workloads = estate["workloads"]
    for workload in workloads:
        evaluation.evaluate_workload(Workload.objects.select_related("application").get(pk=workload.pk))
    one_by_one = {w.pk: stored(w) for w in workloads}
    Result.objects.all().delete()

    stats = evaluation.ScanStats()
    assert evaluation.scan(batch=2, stats=stats) == 9  # chunks of two: every boundary crossed
    assert (stats.workloads, stats.judged, stats.failed_chunks) == (9, 8, 0)
    assert stats.results == Result.objects.count()
    for workload in workloads:
        assert stored(workload) == one_by_one[workload.pk] == reference(workload), workload.name

    statuses = set(Result.objects.values_list("status", flat=True))
    assert statuses >= {"pass", "fail", "error", "excepted"}, "the estate exercises every status a scan writes"
    excepted = Result.objects.get(status="excepted")
    assert excepted.workload_id == workloads[1].pk and excepted.exception_id == estate["exception"].pk
    assert excepted.message.startswith("excepted until ") and "(owner platform)" in excepted.message
    strict = Result.objects.get(workload=workloads[4], check_id="pss.baseline.privileged")
    assert strict.mode == "enforce" and strict.status == "fail", "blog in prod: bound again in enforce"
    assert Result.objects.get(workload=workloads[4], check_id="pss.baseline.host-ports").mode == "warn"
    assert Result.objects.get(workload=workloads[7], check_id="pss.baseline.host-ports").mode == "audit"
    assert not Result.objects.filter(workload=workloads[8]).exists(), "no stored template: not judged"
    assert not Result.objects.filter(workload__cluster=estate["prod"], namespace="default", policy="two-replicas")


def test_since_moves_only_with_the_status_and_unbound_checks_go(estate, writer):
    workloads = estate["workloads"]
    evaluation.evaluate_workload(Workload.objects.select_related("application").get(pk=workloads[0].pk))
    evaluation.scan(batch=4)
    first = {w.pk: since_of(w) for w in workloads}
    # A result written by the per-workload path keeps its since through the scan when its status holds.
    assert all(since < evaluated for since, evaluated in first[workloads[0].pk].values())

    hardened = workloads[0]
    Workload.objects.filter(pk=hardened.pk).update(pod_template=PRIVILEGED)
    Binding.objects.filter(pk=estate["bindings"][3].pk).delete()  # best practices unbound
    evaluation.scan(batch=4)

    moved = since_of(hardened)
    assert stored(hardened) == reference(hardened)
    privileged = moved["pss.baseline.privileged"]
    assert privileged[0] == privileged[1] > first[hardened.pk]["pss.baseline.privileged"][0], "pass -> fail moves it"
    kept = moved["pss.baseline.proc-mount"]
    assert kept[0] == first[hardened.pk]["pss.baseline.proc-mount"][0] < kept[1], "still passing: since kept"
    for workload in workloads[1:8]:
        assert stored(workload) == reference(workload), workload.name
        assert not any(check.startswith("bp.") for check in stored(workload)), "unbound checks are gone"
        for check_id, (since, evaluated) in since_of(workload).items():
            assert since == first[workload.pk][check_id][0] and evaluated > first[workload.pk][check_id][1]


def test_a_workload_without_a_template_keeps_its_results_and_an_expired_exception_stops(estate, writer):
    workloads = estate["workloads"]
    evaluation.scan()
    Workload.objects.filter(pk=workloads[2].pk).update(pod_template={})
    before = stored(workloads[2])
    PolicyException.objects.filter(pk=estate["exception"].pk).update(expires_at=datetime.now(UTC) - timedelta(1))
    evaluation.scan()
    assert stored(workloads[2]) == before, "observed before templates were stored: left as it was"
    assert Result.objects.get(workload=workloads[1], check_id="pss.baseline.privileged").status == "fail"
    assert not Result.objects.filter(status="excepted").exists()


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_writer_thread_stores_the_chunks_with_the_same_results(estate):
    """A task's scan (no enclosing transaction) stores chunks from a thread while it judges the next ones."""
    stats = evaluation.ScanStats()
    assert evaluation.scan(batch=3, stats=stats) == 9
    assert (stats.judged, stats.failed_chunks) == (8, 0) and stats.results == Result.objects.count() > 0
    for workload in estate["workloads"]:
        assert stored(workload) == reference(workload), workload.name


def test_a_fix_copies_only_what_it_writes_and_its_operations_stay_as_made():
    """Fixes copy the containers on their path (not the whole object, as they once did, per failing check)."""
    from apps.compliance.checks import Workload as View

    obj = {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}}
    untouched = obj["spec"]["template"]["spec"]["containers"][0]
    builder = View.from_object(obj).patch()
    builder.set(("spec", "template", "spec", "containers", 0, "securityContext"), {"runAsNonRoot": True})
    builder.set(("spec", "template", "spec", "containers", 0, "securityContext", "privileged"), False)
    assert builder.build() == [
        {"op": "add", "path": "/spec/template/spec/containers/0/securityContext", "value": {"runAsNonRoot": True}},
        {"op": "add", "path": "/spec/template/spec/containers/0/securityContext/privileged", "value": False},
    ]
    assert obj == {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}}
    assert obj["spec"]["template"]["spec"]["containers"][0] is untouched


def test_a_result_evaluated_after_the_chunk_was_read_is_neither_overwritten_nor_deleted(estate, writer):
    """The watcher's evaluation of a newer change may land while a scan's chunk is on its way: it is fresher."""
    workloads = estate["workloads"]
    evaluation.scan()
    later = datetime.now(UTC) + timedelta(minutes=5)
    Result.objects.filter(workload=workloads[0], check_id="pss.baseline.privileged").update(
        status="fail", message="seen by the watcher", evaluated_at=later
    )
    fresh_unbound = Result.objects.create(
        workload=workloads[0],
        cluster_id=workloads[0].cluster_id,
        namespace=workloads[0].namespace,
        application_id=workloads[0].application_id,
        policy="two-replicas",
        check_id="two-replicas.validations[9]",
        severity="high",
        status="fail",
        since=later,
        evaluated_at=later,
    )
    stale_unbound = Result.objects.create(
        workload=workloads[0],
        cluster_id=workloads[0].cluster_id,
        namespace=workloads[0].namespace,
        application_id=workloads[0].application_id,
        policy="two-replicas",
        check_id="two-replicas.validations[8]",
        severity="high",
        status="fail",
        since=later - timedelta(hours=1),
        evaluated_at=later - timedelta(hours=1),
    )
    evaluation.scan()
    kept = Result.objects.get(workload=workloads[0], check_id="pss.baseline.privileged")
    assert (kept.status, kept.message, kept.evaluated_at) == ("fail", "seen by the watcher", later)
    assert Result.objects.filter(pk=fresh_unbound.pk).exists(), "evaluated after the read: not the scan's to drop"
    assert not Result.objects.filter(pk=stale_unbound.pk).exists(), "an older result of an unbound check goes"
    others = {k: v for k, v in stored(workloads[0]).items() if not k.startswith("two-replicas.validations[9]")}
    expected = reference(workloads[0])
    expected.pop("pss.baseline.privileged")
    others.pop("pss.baseline.privileged")
    assert others == expected
