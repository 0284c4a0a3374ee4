"""Jobs as an observed kind, against the real control plane: created through the gateway (dry-run, Invalid naming
the field, AlreadyExists), run by the real Job controller on the fake node (``finish_pod``), stored by the watcher
and the full sync as ``KubeJob`` rows with their state, announced by ``job_observed``, and deleted with either
propagation.

The rules that need no cluster (a Job's state, what an error repeats of an answer) come first, without a database.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from kubernetes import client

from apps.clusters import gateway as gateways
from apps.clusters import sync
from apps.clusters.kinds import ICC_MANAGED, job_row
from apps.clusters.models import Cluster, JobState, KubeJob, Pod
from apps.clusters.signals import job_observed
from tests.support.clusters import recording, register, running_job_pod
from tests.support.components import wait_for

MARKER = "SECRET-FROM-THE-REMOTE-BODY-5c1e"


def jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


def job_body(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    restart_policy: str = "Never",
    backoff_limit: int = 0,
    deadline: int | None = None,
) -> dict[str, Any]:
    """A one-pod batch/v1 Job labelled as ICC's (unless ``labels`` says otherwise)."""
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": "report"}},
            "spec": {
                "restartPolicy": restart_policy,
                "containers": [{"name": "main", "image": "registry.local/report:1.0"}],
            },
        },
    }
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": ICC_MANAGED if labels is None else labels},
        "spec": spec,
    }


# --- rules without a cluster ------------------------------------------------------------------------------------


def condition(kind: str, reason: str = "") -> dict[str, str]:
    return {"type": kind, "status": "True", "reason": reason, "lastTransitionTime": "2026-12-01T10:00:00Z"}


@pytest.mark.parametrize(
    ("conditions", "state", "reason"),
    [
        ([], JobState.RUNNING, ""),
        ([condition("Complete")], JobState.SUCCEEDED, ""),
        ([condition("Failed", "BackoffLimitExceeded")], JobState.FAILED, "BackoffLimitExceeded"),
        ([condition("Failed", "DeadlineExceeded")], JobState.FAILED, "DeadlineExceeded"),
        ([{**condition("Failed", "DeadlineExceeded"), "status": "False"}], JobState.RUNNING, ""),
    ],
    ids=["running", "complete", "backoff-limit", "deadline", "false-condition"],
)
def test_a_jobs_state_follows_its_conditions(conditions, state, reason):
    obj = {
        "metadata": {"name": "j", "namespace": "ns", "uid": "u", "resourceVersion": "7", "annotations": {}},
        "status": {"active": 1, "succeeded": 2, "failed": 3, "conditions": conditions},
    }
    row = job_row(obj)
    assert (row["state"], row["failure_reason"]) == (state, reason)
    assert (row["active"], row["succeeded"], row["failed"]) == (1, 2, 3)


def test_an_invalid_answer_names_its_fields_and_repeats_nothing_else():
    """A 422 Kubernetes Status: the field paths and their short messages, never the Status' own message, a field
    path of another form or a cause beyond the first five; any other 422 body: the status line only."""
    causes = [
        {"reason": "FieldValueNotSupported", "field": "spec.template.spec.restartPolicy", "message": "Unsupported"},
        {"reason": MARKER, "field": f"spec.x {MARKER}\n", "message": MARKER},  # not a field path: left out
        {
            "reason": "FieldValueRequired",
            "field": "spec.template.spec.containers[0].image",
            "message": "Required value",
        },
        *[{"reason": "FieldValueInvalid", "field": f"metadata.labels[{i}]", "message": "x" * 500} for i in range(9)],
    ]
    status = {"kind": "Status", "apiVersion": "v1", "code": 422, "reason": "Invalid", "message": MARKER}
    error = gateways._error_for(422, orjson.dumps({**status, "details": {"causes": causes}}), "POST /jobs")
    assert isinstance(error, gateways.Invalid) and error.reason == "Invalid"
    assert "spec.template.spec.restartPolicy: Unsupported" in error.message
    assert "spec.template.spec.containers[0].image: Required value" in error.message
    assert MARKER not in error.message and all(MARKER not in repr(c) for c in error.causes)
    assert len(error.causes) == 5 and all(len(c.message) <= 200 for c in error.causes)
    assert error.causes[0] == gateways.FieldCause(
        "spec.template.spec.restartPolicy", "FieldValueNotSupported", "Unsupported"
    )

    not_status = {"reason": "Invalid", "details": {"causes": [{"field": "spec", "message": MARKER}]}}
    error = gateways._error_for(422, orjson.dumps(not_status), "POST /jobs")
    assert MARKER not in error.message and error.causes == ()


def test_a_name_in_use_is_a_conflict_with_its_own_code():
    error = gateways._error_for(409, orjson.dumps({"kind": "Status", "reason": "AlreadyExists"}), "POST /jobs")
    assert isinstance(error, gateways.Conflict)
    assert (error.code, error.reason, error.status) == ("already_exists", "AlreadyExists", 409)
    edit = gateways._error_for(409, orjson.dumps({"kind": "Status", "reason": "Conflict"}), "PUT /x")
    assert (edit.code, edit.reason) == ("conflict", "Conflict")


# --- against the real control plane -----------------------------------------------------------------------------


def real_cluster(test: Callable[..., None]) -> Callable[..., None]:
    """A test against the real control plane (which may need building first) and a committed database, so that
    ``transaction.on_commit`` (and with it ``job_observed``) runs."""
    return pytest.mark.timeout(45 * 60)(pytest.mark.django_db(transaction=True)(test))


@pytest.fixture
def announced() -> Iterator[list[dict[str, Any]]]:
    """The keyword arguments of every ``job_observed`` sent during the test (from any thread)."""
    with recording(job_observed) as seen:
        yield seen


def row_in(cluster: Cluster, namespace: str, name: str, state: str | None = None) -> KubeJob | None:
    row = KubeJob.objects.filter(cluster=cluster, namespace=namespace, name=name).first()
    return row if row is not None and (state is None or row.state == state) else None


def signalled(seen: list[dict[str, Any]], cluster: Cluster, namespace: str, name: str, **expect: Any) -> bool:
    wanted = {"cluster_id": cluster.pk, "namespace": namespace, "name": name, **expect}
    return any(all(s.get(k) == v for k, v in wanted.items()) for s in list(seen))


def failed_by_deadline(gateway: gateways.Gateway, cluster: Cluster, namespace: str, name: str) -> KubeJob | None:
    """The Job's row once it failed. Until then the Job is touched now and then: the Job controller of Kubernetes
    < 1.25 may check the deadline once, too early, and not again until a resync (kubernetes/kubernetes#107226);
    any change of the Job makes it look again."""
    row = row_in(cluster, namespace, name, JobState.FAILED)
    if row is None:
        nudge = {"metadata": {"annotations": {"icc.test/nudged-at": str(time.time())}}}
        gateway.patch(f"{jobs_path(namespace)}/{name}", nudge)
        time.sleep(1)
    return row


@real_cluster
def test_create_dry_runs_names_an_invalid_field_and_refuses_a_name_in_use(kube_apiserver, namespace):
    cluster = register(kube_apiserver)
    gateway = gateways.for_cluster(cluster)
    name = f"job-{uuid.uuid4().hex[:6]}"

    with pytest.raises(gateways.Invalid) as invalid:
        gateway.create(jobs_path(namespace), job_body(name, restart_policy="Always"), dry_run=True)
    assert invalid.value.kube_status == 422 and invalid.value.code == "kube_invalid"
    assert "spec.template.spec.restartPolicy" in [c.field for c in invalid.value.causes]
    assert "spec.template.spec.restartPolicy" in invalid.value.message

    checked = gateway.create(jobs_path(namespace), job_body(name), dry_run=True)
    assert checked["metadata"]["name"] == name
    with pytest.raises(gateways.NotFound):
        gateway.get(f"{jobs_path(namespace)}/{name}")  # a dry run stores nothing

    created = gateway.create(jobs_path(namespace), job_body(name))
    assert created["metadata"]["labels"] == ICC_MANAGED and created["metadata"]["uid"]
    for dry_run in (True, False):  # the name is taken, for a dry run too
        with pytest.raises(gateways.Conflict) as taken:
            gateway.create(jobs_path(namespace), job_body(name), dry_run=dry_run)
        error = taken.value
        assert (error.code, error.reason, error.kube_status) == ("already_exists", "AlreadyExists", 409)

    with pytest.raises(ValueError, match="propagation"):
        gateway.delete(f"{jobs_path(namespace)}/{name}", propagation="Later")
    gateway.delete(f"{jobs_path(namespace)}/{name}")
    with pytest.raises(gateways.NotFound):
        gateway.delete(f"{jobs_path(namespace)}/{name}")


@real_cluster
def test_the_watcher_stores_jobs_that_succeed_fail_or_run_out_of_time_and_announces_them(
    kube_apiserver, api, namespace, announced, watching
):
    """The real Job controller decides; the fake node only ends the pods. Each outcome reaches the KubeJob row
    and ``job_observed``; a Job without ICC's label is not observed at all."""
    core = client.CoreV1Api(api)
    cluster = register(kube_apiserver)
    watching(cluster)
    gateway = gateways.for_cluster(cluster)
    ok, bad, slow, other = (f"{what}-{uuid.uuid4().hex[:6]}" for what in ("ok", "bad", "slow", "other"))
    gateway.create(jobs_path(namespace), job_body(ok))
    gateway.create(jobs_path(namespace), job_body(bad, backoff_limit=0))
    gateway.create(jobs_path(namespace), job_body(slow, deadline=3))
    gateway.create(jobs_path(namespace), job_body(other, labels={"team": "data"}))

    wait_for("the running job's row", lambda: row_in(cluster, namespace, ok, JobState.RUNNING), timeout=30)
    wait_for("its announcement", lambda: signalled(announced, cluster, namespace, ok, state="running"), timeout=10)

    kube_apiserver.node.finish_pod(namespace, running_job_pod(core, namespace, ok), exit_code=0)
    kube_apiserver.node.finish_pod(namespace, running_job_pod(core, namespace, bad), exit_code=2)

    done = wait_for("the succeeded job", lambda: row_in(cluster, namespace, ok, JobState.SUCCEEDED), timeout=60)
    assert (done.succeeded, done.failed, done.active, done.failure_reason) == (1, 0, 0, "")
    assert done.completion_time is not None and done.start_time is not None
    assert {c["type"] for c in done.conditions} == {"Complete"}

    failed = wait_for("the failed job", lambda: row_in(cluster, namespace, bad, JobState.FAILED), timeout=60)
    assert (failed.failed, failed.failure_reason) == (1, "BackoffLimitExceeded")

    timed_out = wait_for("the timed-out job", lambda: failed_by_deadline(gateway, cluster, namespace, slow), timeout=60)
    assert timed_out.failure_reason == "DeadlineExceeded"

    for name, state in ((ok, "succeeded"), (bad, "failed"), (slow, "failed")):
        wait_for(
            f"job_observed for {name} {state}",
            lambda n=name, s=state: signalled(announced, cluster, namespace, n, state=s, deleted=False),
            timeout=10,
        )
    pod = core.list_namespaced_pod(namespace, label_selector=f"job-name={ok}").items[0]
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    wait_for(
        "the job's pod row, owned by the Job",
        lambda: Pod.objects.filter(
            cluster=cluster, namespace=namespace, owner_kind="Job", owner_name=ok, phase="Succeeded"
        ).exists(),
        timeout=10,
    )
    assert row_in(cluster, namespace, other) is None, "a Job without ICC's label is not observed"
    assert not signalled(announced, cluster, namespace, other)


@real_cluster
@pytest.mark.parametrize("propagation", ["Background", "Foreground"])
def test_a_deleted_job_takes_its_pods_and_its_row_along(
    kube_apiserver, api, namespace, announced, watching, propagation
):
    core = client.CoreV1Api(api)
    cluster = register(kube_apiserver)
    watching(cluster)
    gateway = gateways.for_cluster(cluster)
    name = f"del-{uuid.uuid4().hex[:6]}"
    gateway.create(jobs_path(namespace), job_body(name))
    running_job_pod(core, namespace, name)
    wait_for("the job's row", lambda: row_in(cluster, namespace, name), timeout=30)

    gateway.delete(f"{jobs_path(namespace)}/{name}", propagation=propagation)

    wait_for("the row to go", lambda: row_in(cluster, namespace, name) is None, timeout=60)
    wait_for(
        "job_observed for the deletion",
        lambda: signalled(announced, cluster, namespace, name, deleted=True),
        timeout=10,
    )
    wait_for(
        "the job's pods to go",
        lambda: not core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items,
        timeout=60,
    )


@real_cluster
def test_the_full_sync_stores_and_removes_jobs_and_announces_only_changes(kube_apiserver, api, namespace, announced):
    core = client.CoreV1Api(api)
    cluster = register(kube_apiserver)
    gateway = gateways.for_cluster(cluster)
    name = f"sync-{uuid.uuid4().hex[:6]}"
    gateway.create(jobs_path(namespace), job_body(name))
    kube_apiserver.node.finish_pod(namespace, running_job_pod(core, namespace, name), exit_code=0)
    wait_for(
        "the Job controller to see the pod succeed",
        lambda: (
            gateway.get(f"{jobs_path(namespace)}/{name}").get("status", {}).get("succeeded") == 1
            and gateway.get(f"{jobs_path(namespace)}/{name}").get("status", {}).get("completionTime")
        ),
        timeout=60,
    )

    assert not sync.full_sync(cluster.pk).skipped
    row = row_in(cluster, namespace, name, JobState.SUCCEEDED)
    assert row is not None and row.labels == ICC_MANAGED
    assert signalled(announced, cluster, namespace, name, state="succeeded", deleted=False)

    def about_this_job() -> list[dict[str, Any]]:  # other tests' Jobs may come and go meanwhile
        return [s for s in announced if (s["namespace"], s["name"]) == (namespace, name)]

    before = about_this_job()
    sync.full_sync(cluster.pk)
    unchanged = row_in(cluster, namespace, name, JobState.SUCCEEDED)
    if unchanged is not None and unchanged.resource_version == row.resource_version:
        assert about_this_job() == before, "a Job that did not change is not announced again"

    gateway.delete(f"{jobs_path(namespace)}/{name}")
    wait_for(
        "the Job to be gone",
        lambda: not gateway.get(jobs_path(namespace), query={"fieldSelector": f"metadata.name={name}"})["items"],
        timeout=30,
    )
    sync.full_sync(cluster.pk)
    assert row_in(cluster, namespace, name) is None
    assert signalled(announced, cluster, namespace, name, state="succeeded", deleted=True)
