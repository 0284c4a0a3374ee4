"""The Kubernetes Job target on the real control plane: the template validated by a server-side dry-run when
saved (errors by field, nothing stored), one Job per slot (a second create attaches), completion and failure
observed through the watcher (the simulated node ends the Job's pod), the timeout as activeDeadlineSeconds,
and ``replace`` deleting the running Job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client

from apps.core.errors import DomainError
from apps.cron import execution
from apps.cron.models import Job, Run, RunState
from apps.cron.services.jobs import job_create
from apps.cron.services.runs import job_run_now
from tests.support.clusters import register, running_job_pod
from tests.support.components import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(45 * 60)]

TEMPLATE = """
apiVersion: batch/v1
kind: Job
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: registry.local/report:1.0
"""


@pytest.fixture
def cluster(kube_apiserver, watching) -> object:
    cluster = register(kube_apiserver)
    watching(cluster)
    return cluster


def kube_job(cluster, namespace: str, name: str, **values) -> Job:
    job, _ = job_create(
        name=name,
        schedule="@hourly",
        target_kind="kubernetes",
        cluster=cluster,
        namespace=namespace,
        **{"job_template": TEMPLATE, **values},
    )
    return job


def wait_state(run: Run, *states: str, timeout: float = 90) -> Run:
    def done() -> Run | None:
        run.refresh_from_db()
        return run if run.state in states else None

    found: Run = wait_for(f"run {run.pk} to be {'/'.join(states)}", done, timeout=timeout)
    return found


def test_a_template_the_apiserver_rejects_is_refused_by_field_and_nothing_is_stored(cluster, namespace):
    bad = TEMPLATE.replace("restartPolicy: Never", "restartPolicy: Always")  # a Job's pods may not restart
    with pytest.raises(DomainError) as refused:
        kube_job(cluster, namespace, "bad-template", job_template=bad)
    assert refused.value.field == "job_template"
    assert "spec.template.spec.restartPolicy" in refused.value.message
    with pytest.raises(DomainError) as aliased:
        kube_job(cluster, namespace, "aliases", job_template="a: &x [1]\nb: *x\n")
    assert aliased.value.field == "job_template" and "aliases" in aliased.value.message
    assert not Job.objects.exists()


def test_a_job_run_creates_one_job_per_slot_and_finishes_with_it(cluster, namespace, kube_apiserver):
    core = client.CoreV1Api(kube_apiserver.api_client())
    batch = client.BatchV1Api(kube_apiserver.api_client())
    job = kube_job(cluster, namespace, "report")
    ok = job_run_now(job=job)
    assert execution.execute(ok.pk) == RunState.RUNNING
    ok.refresh_from_db()
    assert ok.kube_job == job.kube_job_name(ok.slot)
    created = batch.read_namespaced_job(ok.kube_job, namespace)
    assert created.metadata.labels["app.kubernetes.io/managed-by"] == "icc"
    assert created.spec.active_deadline_seconds == job.timeout_seconds

    # A second claim of the same slot (its worker died): the create answers AlreadyExists and ICC attaches.
    Run.objects.filter(pk=ok.pk).update(claim_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert execution.execute(ok.pk) == RunState.RUNNING
    assert len(batch.list_namespaced_job(namespace, label_selector=f"icc.dev/cron-job={job.pk}").items) == 1

    kube_apiserver.node.finish_pod(namespace, running_job_pod(core, namespace, ok.kube_job), exit_code=0)
    ok = wait_state(ok, RunState.SUCCEEDED)
    assert ok.finished_at is not None and ok.attempts == 2

    bad = job_run_now(job=job)
    assert execution.execute(bad.pk) == RunState.RUNNING
    bad.refresh_from_db()
    kube_apiserver.node.finish_pod(namespace, running_job_pod(core, namespace, bad.kube_job), exit_code=3)
    bad = wait_state(bad, RunState.FAILED)
    assert "BackoffLimitExceeded" in bad.reason


def test_the_timeout_is_the_jobs_active_deadline(cluster, namespace):
    job = kube_job(cluster, namespace, "slow", timeout_seconds=3)
    run = job_run_now(job=job)
    assert execution.execute(run.pk) == RunState.RUNNING
    run = wait_state(run, RunState.TIMED_OUT, timeout=120)
    assert "activeDeadlineSeconds" in run.reason


def test_replace_deletes_the_running_job(cluster, namespace, kube_apiserver):
    batch = client.BatchV1Api(kube_apiserver.api_client())
    job = kube_job(cluster, namespace, "replaced", concurrency="replace")
    first = job_run_now(job=job)
    assert execution.execute(first.pk) == RunState.RUNNING
    first.refresh_from_db()
    second = Run.objects.create(
        job=job, slot=first.slot + timedelta(seconds=1), due_at=first.slot, not_before=first.slot
    )
    assert execution.execute(second.pk) == RunState.RUNNING
    first.refresh_from_db()
    assert first.state == RunState.CANCELLED

    def gone() -> bool:
        names = [j.metadata.name for j in batch.list_namespaced_job(namespace).items]
        return first.kube_job not in names

    wait_for("the replaced run's Job to be deleted", gone, timeout=60)
