"""Compliance history (real PostgreSQL and Redis): a scan records the counts per scope; the trend, the overview
and the per-release history are queries over them; "new since this release" lists the failures that began with
the latest rollout; old snapshots are pruned; every read is restricted to the caller's scopes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.clusters.models import ApplicationVersion, Workload
from apps.compliance import evaluation, history, selectors, tasks
from apps.compliance.models import Binding, HistoryPoint, Policy, Result
from tests.support.clients import error_fields, forced_login, html, results, with_binding
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db

PAGE = "/compliance/"
HISTORY, OVERVIEW, SUMMARY = (
    "/api/v1/compliance/history/",
    "/api/v1/compliance/overview/",
    "/api/v1/compliance/summary/",
)
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
    """Shop (privileged, namespace shop) and blog (hardened, namespace blog) on cluster prod, and a privileged
    intranet on cluster lab; the baseline bound globally, nothing scanned yet."""
    prod, lab = cluster_row("prod"), cluster_row("lab")
    shop = application_row(prod, "shop", "shop", [])
    blog = application_row(prod, "blog", "blog", [])
    intranet = application_row(lab, "tools", "intranet", [])
    Workload.objects.update(pod_template=PRIVILEGED, desired_replicas=1)
    Workload.objects.filter(application=blog).update(pod_template=HARDENED)
    Binding.objects.create(policy=Policy.objects.get(key="pss-baseline"))
    return {"prod": prod, "lab": lab, "shop": shop, "blog": blog, "intranet": intranet}


def scan_at(moment=None) -> set[int]:
    evaluation.scan()
    return history.record(moment)


def rollout(application, revision: str, at) -> ApplicationVersion:
    workload = Workload.objects.get(application=application)
    return ApplicationVersion.objects.create(
        application=application,
        workload_kind=workload.kind,
        workload_name=workload.name,
        revision=revision,
        images=[{"container": "app", "image": f"registry.local/shop:{revision}"}],
        observed_at=at,
    )


def set_template(application, template) -> None:
    Workload.objects.filter(application=application).update(pod_template=template)


def test_a_scan_records_the_counts_of_every_scope(estate):
    assert tasks.scan() == 3  # the task: evaluate everything, then record
    points = list(HistoryPoint.objects.all())
    assert len({p.taken_at for p in points}) == 1, "one snapshot, one time"
    detail = [p for p in points if p.policy]
    shop = [p for p in detail if p.application_name == "shop"]
    assert {(p.policy, p.namespace, p.cluster_id) for p in shop} == {("pss-baseline", "shop", estate["prod"].pk)}
    per_check = Result.objects.filter(application=estate["shop"]).count()
    assert sum(p.failed for p in shop) == 1 and sum(p.passed for p in shop) == per_check - 1
    critical = next(p for p in shop if p.severity == "critical")
    assert critical.failed == 1, "the privileged check is critical"
    blog = [p for p in detail if p.application_name == "blog"]
    assert sum(p.failed for p in blog) == 0 and sum(p.passed for p in blog) == per_check
    assert sum(p.passed + p.failed + p.errored + p.skipped + p.excepted for p in detail) == Result.objects.count()

    totals = {p.application_name: p for p in points if not p.policy}
    assert set(totals) == {"shop", "blog", "intranet"}, "one total row per scope"
    assert all(not p.severity for p in totals.values())
    assert (totals["shop"].passed, totals["shop"].failed) == (per_check - 1, 1)
    assert totals["intranet"].cluster_id == estate["lab"].pk and totals["intranet"].namespace == "tools"


def test_the_trend_scores_each_scan_and_follows_a_fix(estate, viewer_persona):
    start = timezone.now() - timedelta(hours=3)
    scan_at(start)
    set_template(estate["shop"], HARDENED)
    changed = scan_at(start + timedelta(hours=1))
    assert changed == {estate["shop"].pk}, "only the shop's counts moved"
    set_template(estate["intranet"], HARDENED)
    scan_at(start + timedelta(hours=2))

    points = selectors.trend(selectors.history(viewer_persona.user))
    assert [p["taken_at"] for p in points] == sorted(p["taken_at"] for p in points), "oldest first"
    assert [p["failed"] for p in points] == [2, 1, 0]
    assert points[-1]["score"] == 100.0 and points[0]["score"] < points[1]["score"] < 100.0

    api = forced_login(viewer_persona.user).get(HISTORY).json()["results"]
    assert [row["failed"] for row in api] == [0, 1, 2], "the API lists the newest first"
    assert api[-1]["score"] == points[0]["score"]
    since = (start + timedelta(minutes=30)).isoformat()
    assert len(results(forced_login(viewer_persona.user).get(HISTORY, {"since": since}))) == 2
    only_lab = results(forced_login(viewer_persona.user).get(HISTORY, {"cluster": estate["lab"].pk}))
    assert [row["failed"] for row in only_lab] == [0, 1, 1]
    critical = results(forced_login(viewer_persona.user).get(HISTORY, {"severity": "critical"}))
    assert [row["failed"] for row in critical] == [0, 1, 2], "the privileged check is the critical one"
    assert all(row["passed"] < api_row["passed"] for row, api_row in zip(critical, api, strict=True))
    baseline = results(forced_login(viewer_persona.user).get(HISTORY, {"policy": "pss-baseline"}))
    assert [(row["passed"], row["failed"]) for row in baseline] == [(row["passed"], row["failed"]) for row in api]
    assert results(forced_login(viewer_persona.user).get(HISTORY, {"policy": "best-practice"})) == []

    page = html(forced_login(viewer_persona.user).get(PAGE))
    assert "data-trend" in page and "last 3 scans" in page


def test_a_bad_history_filter_is_a_400_naming_it(estate, viewer_persona):
    client = forced_login(viewer_persona.user)
    for parameter, value in (("since", "yesterday"), ("cluster", "prod"), ("severity", "urgent")):
        response = client.get(HISTORY, {parameter: value})
        assert response.status_code == 400, (parameter, response.content)
        assert parameter in error_fields(response)


def test_each_release_keeps_its_counts_and_new_failures_are_the_releases(estate, viewer_persona):
    shop = estate["shop"]
    set_template(shop, HARDENED)
    first = rollout(shop, "1", timezone.now() - timedelta(hours=5))
    scan_at(timezone.now() - timedelta(hours=4))
    second = rollout(shop, "2", timezone.now() - timedelta(minutes=1))
    set_template(shop, PRIVILEGED)  # the second release brings a privileged container
    scan_at()

    assert HistoryPoint.objects.filter(application=shop, version=first).exists()
    assert HistoryPoint.objects.filter(application=shop, version=second).exists()
    rows = selectors.releases(viewer_persona.user, shop)
    assert [r["version"] for r in rows] == [second, first]
    assert rows[0]["failed"] == 1 and rows[1]["failed"] == 0
    assert rows[0]["failed_change"] == 1 and rows[1]["failed_change"] is None

    scope = selectors.results(viewer_persona.user, application=shop.pk)
    new = selectors.new_since_release(scope, second)
    assert [r.check_id for r in new] == ["pss.baseline.privileged"]
    assert not selectors.new_since_release(scope, rollout(shop, "3", timezone.now() + timedelta(minutes=5)))

    client = forced_login(viewer_persona.user)
    summary = client.get(SUMMARY, {"application": shop.pk}).json()
    assert summary["release"]["new_failures"] == 0, "the third release (just now) brought nothing new yet"
    ApplicationVersion.objects.filter(revision="3").delete()
    summary = client.get(SUMMARY, {"application": shop.pk}).json()
    assert summary["release"] == {
        "version": second.pk,
        "observed_at": summary["release"]["observed_at"],
        "new_failures": 1,
    }
    page = html(client.get(PAGE, {"application": shop.pk}))
    assert 'data-new-check="pss.baseline.privileged"' in page
    assert f'data-release="{second.pk}"' in page and 'data-failed-change="1"' in page


def test_old_snapshots_are_pruned_after_the_retention(estate, settings):
    settings.COMPLIANCE_HISTORY_DAYS = 30
    now = timezone.now()
    scan_at(now - timedelta(days=31))
    scan_at(now - timedelta(days=29))
    assert HistoryPoint.objects.values("taken_at").distinct().count() == 2, "recording at an old time prunes by it"
    scan_at(now)
    kept = sorted({p.taken_at for p in HistoryPoint.objects.all()})
    assert kept == [now - timedelta(days=29), now]
    settings.COMPLIANCE_HISTORY_DAYS = 1
    assert history.prune(now) > 0
    assert {p.taken_at for p in HistoryPoint.objects.all()} == {now}


def test_the_overview_scores_each_cluster_and_namespace_worst_first(estate, viewer_persona):
    scan_at()
    per_check = Result.objects.filter(application=estate["shop"]).count()
    found = forced_login(viewer_persona.user).get(OVERVIEW).json()
    assert [(c["cluster_name"], c["failed"]) for c in found["clusters"]] == [("lab", 1), ("prod", 1)]
    assert found["clusters"][1]["passed"] == 2 * per_check - 1
    assert [(n["namespace"], n["failed"]) for n in found["namespaces"]] == [("tools", 1), ("shop", 1), ("blog", 0)]
    assert found["namespaces"][-1]["score"] == 100.0
    page = html(forced_login(viewer_persona.user).get(PAGE))
    assert f'href="?cluster={estate["prod"].pk}&amp;namespace=shop"' in page
    assert f'href="?cluster={estate["lab"].pk}"' in page


def test_scoped_users_see_only_their_scopes_history_and_overview(estate, make_user, outsider_persona):
    """The attack: a user bound to the shop application asks for the fleet, another cluster, another application,
    and the history of another scope by filter; a user bound to namespace blog asks for the shop."""
    start = timezone.now() - timedelta(hours=2)
    scan_at(start)
    set_template(estate["intranet"], HARDENED)
    scan_at(start + timedelta(hours=1))
    shop_viewer = with_binding(make_user("shop-viewer"), "viewer", estate["prod"], application="shop")
    blog_viewer = with_binding(make_user("blog-viewer"), "viewer", estate["prod"], namespace="blog")

    shop = forced_login(shop_viewer.user)
    assert [row["failed"] for row in results(shop.get(HISTORY))] == [1, 1], "the lab's fix is not the shop's"
    assert results(shop.get(HISTORY, {"cluster": estate["lab"].pk})) == []
    assert results(shop.get(HISTORY, {"application": estate["intranet"].pk})) == []
    overview = shop.get(OVERVIEW).json()
    assert [c["cluster_name"] for c in overview["clusters"]] == ["prod"]
    assert [n["namespace"] for n in overview["namespaces"]] == ["shop"]
    assert [p["failed"] for p in shop.get(SUMMARY).json()["trend"]] == [1, 1]
    page = html(shop.get(PAGE))
    assert 'data-overview-namespace="blog"' not in page and 'data-overview-cluster="lab"' not in page

    blog = forced_login(blog_viewer.user)
    assert [row["failed"] for row in results(blog.get(HISTORY))] == [0, 0]
    assert results(blog.get(HISTORY, {"application": estate["shop"].pk})) == []
    assert selectors.releases(blog_viewer.user, estate["shop"]) == []
    assert [n["namespace"] for n in blog.get(OVERVIEW).json()["namespaces"]] == ["blog"]

    outsider = forced_login(outsider_persona.user)
    assert results(outsider.get(HISTORY)) == []
    assert outsider.get(OVERVIEW).json() == {"clusters": [], "namespaces": []}
    assert outsider.get(SUMMARY).json()["trend"] == []


def test_the_weighted_score_counts_each_check_by_its_severity(estate, viewer_persona):
    scan_at()
    weights = {"critical": 8, "high": 4, "medium": 2, "low": 1, "info": 0}
    rows = list(Result.objects.filter(status__in=("pass", "fail")).values_list("status", "severity"))
    passing = sum(weights[severity] for status, severity in rows if status == "pass")
    expected = round(100 * passing / sum(weights[severity] for _, severity in rows), 1)
    summary = forced_login(viewer_persona.user).get(SUMMARY).json()
    assert summary["weighted_score"] == expected
    assert summary["weighted_score"] < summary["score"], "the failing check is critical: it weighs more"
    assert f"{expected}%" in html(forced_login(viewer_persona.user).get(PAGE))
