"""Applications declare their own jobs with their ServiceAccount token (TokenReview on the real kube-apiserver):
the set is replaced idempotently by name, each change audited with the ServiceAccount as actor; another
application's jobs are out of reach; bad declarations are refused whole; operators may suspend, not edit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.core.errors import ConflictError
from apps.cron.models import Job
from apps.cron.services.jobs import job_create, job_set_suspended, job_update
from tests.support.clusters import sa_token

pytestmark = [pytest.mark.timeout(45 * 60), pytest.mark.django_db]
DECLARED = "/api/v1/cron/declared/"


def declare(token: str, cluster: str, jobs: Any) -> Any:
    return Client().put(
        DECLARED,
        json.dumps({"jobs": jobs}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_X_ICC_CLUSTER=cluster,
    )


def hook(name: str, schedule: str = "*/5 * * * *", **extra: Any) -> dict[str, Any]:
    return {"name": name, "schedule": schedule, "http_url": "http://127.0.0.1:9/hooks/" + name, **extra}


def test_a_workload_replaces_its_declared_jobs_idempotently(k8s_api, shop_and_blog):
    cluster, namespace, shop = shop_and_blog["cluster"], shop_and_blog["namespace"], shop_and_blog["apps"]["shop"]
    token = sa_token(k8s_api, namespace, "shop-sa")

    first = declare(token, cluster.name, [hook("cleanup"), hook("report", "0 6 * * *", timezone="Europe/Berlin")])
    assert first.status_code == 200, first.content
    assert first.json() == {"created": ["cleanup", "report"], "updated": [], "removed": [], "unchanged": []}
    jobs = {j.name: j for j in Job.objects.filter(application=shop)}
    assert set(jobs) == {"cleanup", "report"} and all(j.declared for j in jobs.values())
    assert (jobs["report"].cluster_id, jobs["report"].namespace) == (cluster.pk, namespace)

    again = declare(token, cluster.name, [hook("cleanup"), hook("report", "0 6 * * *", timezone="Europe/Berlin")])
    assert again.json() == {"created": [], "updated": [], "removed": [], "unchanged": ["cleanup", "report"]}
    assert Job.objects.get(pk=jobs["report"].pk).version == 1

    third = declare(token, cluster.name, [hook("cleanup", "*/10 * * * *"), hook("rotate-logs")])
    assert third.json() == {"created": ["rotate-logs"], "updated": ["cleanup"], "removed": ["report"], "unchanged": []}
    cleanup = Job.objects.get(application=shop, name="cleanup")
    assert cleanup.schedule == "*/10 * * * *" and cleanup.version == 2
    assert not Job.objects.filter(pk=jobs["report"].pk).exists()

    actions = list(
        AuditEvent.objects.filter(action__startswith="cron.job.").order_by("seq").values_list("action", "actor_name")
    )
    assert [a for a, _ in actions] == [
        "cron.job.create",
        "cron.job.create",
        "cron.job.update",
        "cron.job.create",
        "cron.job.delete",
    ]
    assert all(f"system:serviceaccount:{namespace}:shop-sa" in who for _, who in actions)


def test_declarations_reach_only_the_callers_application_and_are_refused_whole(k8s_api, shop_and_blog):
    cluster, namespace, apps = shop_and_blog["cluster"], shop_and_blog["namespace"], shop_and_blog["apps"]
    blog_job, _ = job_create(
        application=apps["blog"], name="blog-digest", schedule="@daily", http_url="http://127.0.0.1:9/x"
    )
    shop_token = sa_token(k8s_api, namespace, "shop-sa")

    # The shop's declaration never touches the blog's jobs, even with the same names or an empty list.
    assert declare(shop_token, cluster.name, [hook("blog-digest")]).status_code == 200
    assert declare(shop_token, cluster.name, []).json()["removed"] == ["blog-digest"]
    assert Job.objects.filter(pk=blog_job.pk, application=apps["blog"]).exists()
    assert not Job.objects.filter(application=apps["shop"]).exists()

    # A declaration cannot move a job to another application or set fields it does not own.
    foreign = declare(shop_token, cluster.name, [{**hook("x"), "application": apps["blog"].pk}])
    assert foreign.status_code == 400 and "jobs[0].application" in foreign.json()["error"]["fields"]

    # One bad job refuses the whole declaration, named by its index; nothing is stored.
    bad = declare(shop_token, cluster.name, [hook("fine"), hook("broken", "61 * * * *")])
    assert bad.status_code == 400, bad.content
    assert list(bad.json()["error"]["fields"]) == ["jobs[1].schedule"]
    refused = declare(shop_token, cluster.name, [hook("meta", http_url="http://169.254.169.254/latest/")])
    assert refused.status_code == 400 and list(refused.json()["error"]["fields"]) == ["jobs[0].http_url"]
    assert not Job.objects.filter(application=apps["shop"]).exists()

    # Without a ServiceAccount token: 401; a token that is no ServiceAccount's: 401.
    anonymous = Client().put(DECLARED, json.dumps({"jobs": []}), content_type="application/json")
    assert anonymous.status_code == 401
    assert declare("not-a-token", cluster.name, []).status_code == 401


def test_operators_may_suspend_a_declared_job_but_not_edit_it(k8s_api, shop_and_blog, admin_persona):
    cluster, namespace = shop_and_blog["cluster"], shop_and_blog["namespace"]
    token = sa_token(k8s_api, namespace, "shop-sa")
    assert declare(token, cluster.name, [hook("cleanup")]).status_code == 200
    job = Job.objects.get(name="cleanup")
    with pytest.raises(ConflictError) as refused:
        job_update(job=job, by=admin_persona.user, schedule="@hourly")
    assert refused.value.field == "declared"
    job = job_set_suspended(job=job, suspended=True, by=admin_persona.user)
    assert job.suspended
    # A later declaration does not lift the operator's suspension.
    assert declare(token, cluster.name, [hook("cleanup", "*/7 * * * *")]).json()["updated"] == ["cleanup"]
    assert Job.objects.get(pk=job.pk).suspended
