"""Observed workloads evaluated against bound policies (real PostgreSQL): bindings apply where their scope covers
the workload, results are upserted with the time their status last changed, unbound checks disappear, CEL
policies run beside the built-ins, a workload change reported by the watcher is re-evaluated."""

from __future__ import annotations

import pytest

from apps.clusters.models import Workload
from apps.compliance import evaluation
from apps.compliance.models import Binding, Policy, Result
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db

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


@pytest.fixture
def estate():
    cluster = cluster_row("prod")
    shop = application_row(cluster, "shop", "shop", [])
    blog = application_row(cluster, "blog", "blog", [])
    for app in (shop, blog):
        Workload.objects.filter(application=app).update(pod_template=PRIVILEGED, desired_replicas=1)
    return {
        "cluster": cluster,
        "shop": Workload.objects.get(application=shop),
        "blog": Workload.objects.get(application=blog),
    }


def bind(key: str, **values) -> Binding:
    return Binding.objects.create(policy=Policy.objects.get(key=key), **values)


def results(workload: Workload) -> dict[str, str]:
    return dict(Result.objects.filter(workload=workload).values_list("check_id", "status"))


def test_a_binding_applies_where_its_scope_covers_the_workload(estate):
    bind(
        "pss-baseline",
        scope_kind="application",
        scope_cluster=str(estate["cluster"].pk),
        scope_application="shop",
        mode="enforce",
    )
    evaluation.scan()
    shop = results(estate["shop"])
    assert shop["pss.baseline.privileged"] == "fail"
    assert shop["pss.baseline.host-namespaces"] == "pass"
    assert results(estate["blog"]) == {}, "another application's workload is outside the binding's scope"
    row = Result.objects.get(workload=estate["shop"], check_id="pss.baseline.privileged")
    assert row.mode == "enforce" and row.severity == "critical" and "app" in row.message
    assert row.fix, "privileged has a JSON Patch fix"


def test_the_status_keeps_its_since_until_it_changes_and_unbound_checks_go(estate):
    binding = bind("pss-baseline")
    shop = estate["shop"]
    evaluation.evaluate_workload(shop)
    first = Result.objects.get(workload=shop, check_id="pss.baseline.privileged")
    evaluation.evaluate_workload(shop)
    again = Result.objects.get(pk=first.pk)
    assert again.since == first.since and again.evaluated_at > first.evaluated_at

    Workload.objects.filter(pk=shop.pk).update(pod_template=HARDENED)
    shop.refresh_from_db()
    evaluation.evaluate_workload(shop)
    fixed = Result.objects.get(pk=first.pk)
    assert fixed.status == "pass" and fixed.since > first.since

    binding.check_id = "pss.baseline.privileged"
    binding.save()
    evaluation.evaluate_workload(shop)
    assert list(results(shop)) == ["pss.baseline.privileged"]
    binding.delete()
    evaluation.evaluate_workload(shop)
    assert results(shop) == {}


def test_a_check_bound_twice_carries_the_strictest_mode(estate):
    bind("pss-baseline", mode="audit")
    bind(
        "pss-baseline",
        check_id="pss.baseline.privileged",
        scope_kind="cluster",
        scope_cluster=str(estate["cluster"].pk),
        mode="warn",
    )
    evaluation.evaluate_workload(estate["shop"])
    modes = dict(Result.objects.filter(workload=estate["shop"]).values_list("check_id", "mode"))
    assert modes["pss.baseline.privileged"] == "warn" and modes["pss.baseline.host-ports"] == "audit"


def test_a_cel_policy_runs_beside_the_built_ins_and_a_runtime_error_is_a_result(estate):
    policy = Policy.objects.create(
        key="two-replicas",
        name="At least two replicas",
        kind="cel",
        severity="high",
        validations=[
            {"expression": "object.spec.replicas >= 2", "message": "run at least two replicas"},
            {"expression": "object.spec.missing.field == 1"},
        ],
        match={"kinds": ["Deployment"]},
    )
    Binding.objects.create(policy=policy)
    evaluation.evaluate_workload(estate["shop"])
    rows = {r.check_id: r for r in Result.objects.filter(workload=estate["shop"])}
    assert rows["two-replicas.validations[0]"].status == "fail"
    assert rows["two-replicas.validations[0]"].message == "run at least two replicas"
    assert rows["two-replicas.validations[0]"].severity == "high"
    assert rows["two-replicas.validations[1]"].status == "error"


def test_a_workload_without_a_stored_template_is_not_judged(estate):
    bind("pss-baseline")
    Workload.objects.filter(pk=estate["shop"].pk).update(pod_template={})
    estate["shop"].refresh_from_db()
    assert evaluation.evaluate_workload(estate["shop"]) == []
    assert not Result.objects.exists()


def test_the_watchers_signal_re_evaluates_the_workload(estate):
    """The signal's receiver enqueues ``compliance.evaluate_workload``; here Celery runs the task body eagerly in
    this process (the queue round trip through a real worker is what the cron and scaler worker tests cover)."""
    from celery import current_app

    from apps.clusters.signals import workload_observed

    current_app.conf.task_always_eager = True
    try:
        bind("pss-baseline")
        shop = estate["shop"]
        workload_observed.send(
            sender=Workload,
            cluster_id=shop.cluster_id,
            namespace=shop.namespace,
            kind=shop.kind,
            name=shop.name,
            deleted=False,
        )
    finally:
        current_app.conf.task_always_eager = False
    assert results(estate["shop"])["pss.baseline.privileged"] == "fail"
    assert results(estate["blog"]) == {}, "only the workload the watcher reported"
