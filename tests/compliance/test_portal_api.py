"""The compliance page and its read API through the client with the personas (real PostgreSQL): each persona sees
only its scope's results, failing first; filters narrow them and a bad value is a 400 naming the parameter; the
summary counts what the viewer may read."""

from __future__ import annotations

import pytest

from apps.clusters.models import Workload
from apps.compliance import evaluation
from apps.compliance.models import Binding, Policy, Result
from tests.support.clients import error_fields, forced_login, html, results, with_binding
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db

PAGE, RESULTS, SUMMARY = "/compliance/", "/api/v1/compliance/results/", "/api/v1/compliance/summary/"
PRIVILEGED = {
    "metadata": {"labels": {"app": "shop"}},
    "spec": {
        "containers": [{"name": "app", "image": "registry.local/shop:1.0", "securityContext": {"privileged": True}}]
    },
}


@pytest.fixture
def estate():
    """Two applications on one cluster, each a privileged Deployment, scanned against the baseline bound
    globally."""
    cluster = cluster_row("prod")
    shop = application_row(cluster, "shop", "shop", [])
    blog = application_row(cluster, "blog", "blog", [])
    Workload.objects.update(pod_template=PRIVILEGED, desired_replicas=1)
    Binding.objects.create(policy=Policy.objects.get(key="pss-baseline"))
    assert evaluation.scan() == 2
    return {"cluster": cluster, "shop": shop, "blog": blog}


@pytest.fixture
def shop_viewer(make_user, estate):
    """Reads the shop application only (an application-scoped role binding)."""
    return with_binding(make_user("shop-viewer"), "viewer", estate["cluster"], application="shop")


def workloads_in_api(client, **params) -> set[str]:
    return {row["workload_name"] for row in results(client.get(RESULTS, params))}


def workloads_on_page(client, **params) -> set[str]:
    page = html(client.get(PAGE, params))
    return {name for name in ("shop-w", "blog-w") if f'data-workload="{name}"' in page}


def test_each_persona_sees_only_its_scopes_results(
    estate, admin_persona, viewer_persona, outsider_persona, shop_viewer
):
    expected = [
        (admin_persona, {"shop-w", "blog-w"}),
        (viewer_persona, {"shop-w", "blog-w"}),
        (shop_viewer, {"shop-w"}),
        (outsider_persona, set()),
    ]
    for persona, names in expected:
        client = forced_login(persona.user)
        assert workloads_in_api(client) == names, persona.username
        assert workloads_on_page(client) == names, persona.username
    blog_result = Result.objects.filter(workload__name="blog-w").first()
    assert forced_login(shop_viewer.user).get(f"{RESULTS}{blog_result.pk}/").status_code == 404


def test_the_page_shows_failing_results_first(estate, viewer_persona):
    page = html(forced_login(viewer_persona.user).get(PAGE))
    statuses = [part.split('"', 1)[0] for part in page.split('data-status="')[1:]]
    assert statuses[:2] == ["fail", "fail"] and set(statuses[2:]) == {"pass"}, statuses
    assert 'data-check="pss.baseline.privileged"' in page


def test_filters_narrow_the_results_in_the_page_and_the_api(estate, viewer_persona):
    client = forced_login(viewer_persona.user)
    failing = results(client.get(RESULTS, {"status": "fail"}))
    assert {(r["workload_name"], r["check_id"]) for r in failing} == {
        ("shop-w", "pss.baseline.privileged"),
        ("blog-w", "pss.baseline.privileged"),
    }
    assert {r["severity"] for r in results(client.get(RESULTS, {"severity": "critical", "status": "fail"}))} == {
        "critical"
    }
    assert workloads_in_api(client, application=estate["shop"].pk) == {"shop-w"}
    assert workloads_in_api(client, namespace="blog") == {"blog-w"}
    assert workloads_in_api(client, q="blog") == {"blog-w"}
    assert workloads_in_api(client, cluster=estate["cluster"].pk, policy="pss-baseline") == {"shop-w", "blog-w"}
    assert workloads_in_api(client, policy="best-practice") == set()
    assert {r["check_id"] for r in results(client.get(RESULTS, {"q": "privileged"}))} == {"pss.baseline.privileged"}

    assert workloads_on_page(client, application=estate["shop"].pk) == {"shop-w"}
    page = html(client.get(PAGE, {"status": "fail"}))
    assert 'data-status="pass"' not in page and 'data-status="fail"' in page


@pytest.mark.parametrize(
    ("parameter", "value"),
    [("status", "broken"), ("severity", "urgent"), ("application", "shop"), ("cluster", "1.5"), ("limit", "0")],
)
def test_a_bad_filter_value_is_a_400_naming_the_parameter(estate, viewer_persona, parameter, value):
    client = forced_login(viewer_persona.user)
    response = client.get(RESULTS, {parameter: value})
    assert response.status_code == 400, response.content
    assert parameter in error_fields(response)
    if parameter not in ("status", "limit"):  # the summary takes every filter but the status
        response = client.get(SUMMARY, {parameter: value})
        assert response.status_code == 400, response.content
        assert parameter in error_fields(response)


def test_the_summary_counts_what_the_viewer_may_read(estate, admin_persona, outsider_persona, shop_viewer):
    per_workload = Result.objects.filter(workload__name="shop-w").count()
    passes = per_workload - 1  # only privileged fails

    everything = forced_login(admin_persona.user).get(SUMMARY).json()
    assert everything["total"] == 2 * per_workload
    assert everything["by_status"] == {"pass": 2 * passes, "fail": 2, "skip": 0, "error": 0, "excepted": 0}
    assert everything["failing_by_severity"]["critical"] == 2 and sum(everything["failing_by_severity"].values()) == 2
    assert everything["score"] == round(100 * passes / per_workload, 1)

    scoped = forced_login(shop_viewer.user)
    shop = scoped.get(SUMMARY).json()
    assert shop["total"] == per_workload and shop["by_status"]["fail"] == 1
    assert shop["score"] == everything["score"]
    assert scoped.get(SUMMARY, {"application": estate["blog"].pk}).json()["total"] == 0
    assert f"{shop['score']}%" in html(scoped.get(PAGE))

    nothing = forced_login(outsider_persona.user).get(SUMMARY).json()
    assert nothing["total"] == 0 and nothing["score"] is None
    assert "no score yet" in html(forced_login(outsider_persona.user).get(PAGE))


def test_the_application_page_links_to_its_compliance_results(estate, viewer_persona):
    client = forced_login(viewer_persona.user)
    shop = estate["shop"]
    page = html(client.get(f"/clusters/applications/{shop.pk}/"))
    assert f'href="/compliance/?application={shop.pk}" data-tab="compliance"' in page
    assert workloads_on_page(client, application=shop.pk) == {"shop-w"}
