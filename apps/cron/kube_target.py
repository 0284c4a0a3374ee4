"""The Kubernetes Job target: one Job per (job, slot) in the job's cluster and namespace.

The Job's name is deterministic (:meth:`Job.kube_job_name`), so a second create — a re-claimed run, a retry —
answers AlreadyExists and ICC attaches to the Job that exists. It is labelled as ICC's (the watcher observes
only those, :class:`apps.clusters.models.KubeJob`), its timeout is ``activeDeadlineSeconds``, and its
completion or failure arrives through the watcher (``job_observed``), which finishes the run.
"""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction

from apps.clusters import gateway as gateways
from apps.clusters.models import JobState, KubeJob
from apps.core.errors import DomainError
from apps.cron import events, metrics, signals
from apps.cron.models import Attempt, Job, Run, RunState
from apps.cron.outcomes import Claim, Outcome

logger = logging.getLogger(__name__)

MANAGED_BY = "app.kubernetes.io/managed-by"
JOB_LABEL = "icc.dev/cron-job"
RUN_LABEL = "icc.dev/cron-run"


def collection(job: Job) -> str:
    return f"/apis/batch/v1/namespaces/{job.namespace}/jobs"


def manifest(job: Job, name: str, *, run_id: int | None = None) -> dict[str, Any]:
    """The Job to create: the template with ICC's name, namespace, labels and deadline."""
    body = copy.deepcopy(job.job_template)
    metadata = dict(body.get("metadata") or {})
    labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    labels.update({MANAGED_BY: "icc", JOB_LABEL: str(job.pk or 0)})
    if run_id is not None:
        labels[RUN_LABEL] = str(run_id)
    metadata.update({"name": name, "namespace": job.namespace, "labels": labels})
    metadata.pop("generateName", None)
    metadata.pop("resourceVersion", None)
    body["metadata"] = metadata
    spec = dict(body.get("spec") or {})
    spec["activeDeadlineSeconds"] = int(job.timeout_seconds)
    body["spec"] = spec
    return body


def dry_run(job: Job) -> None:
    """Validated by the API server (server-side dry-run) before it is saved; errors name the template's field."""
    if job.cluster is None:
        raise DomainError("a Kubernetes Job target needs a registered cluster", field="cluster")
    gw = gateways.for_cluster(job.cluster)
    try:
        gw.create(collection(job), manifest(job, "icc-cron-dry-run"), dry_run=True)
    except gateways.Invalid as exc:
        causes = "; ".join(f"{c.field}: {c.message}" for c in getattr(exc, "causes", ())[:5]) or exc.message
        raise DomainError(f"the API server rejected the Job template: {causes}", field="job_template") from None
    except gateways.NotFound:
        raise DomainError(
            f"namespace {job.namespace} does not exist in cluster {job.cluster}", field="namespace"
        ) from None
    except gateways.KubeError as exc:
        raise DomainError(f"cluster {job.cluster}: {exc.message}", field="cluster") from None


def start(claimed: Claim) -> Outcome | None:
    """Create the run's Job (or attach to it); None while it runs, an Outcome when it is already over."""
    job, run = claimed.job, claimed.run
    name = job.kube_job_name(run.slot)
    Run.objects.filter(pk=run.pk).update(kube_job=name)
    try:
        gw = gateways.for_cluster(job.cluster)
        gw.create(collection(job), manifest(job, name, run_id=run.pk))
    except gateways.Conflict as exc:
        if exc.code != "already_exists":
            return Outcome(RunState.FAILED, error=f"creating Job {name}: {exc.message}")
        logger.info("cron run %s: Job %s/%s exists already; attaching", run.pk, job.namespace, name)
    except gateways.KubeError as exc:
        return Outcome(RunState.FAILED, error=f"creating Job {name}: {exc.message}")
    observed = KubeJob.objects.filter(cluster=job.cluster, namespace=job.namespace, name=name).first()
    if observed is not None and observed.state != JobState.RUNNING:
        return outcome_of(observed)
    return None


def outcome_of(observed: KubeJob) -> Outcome:
    if observed.state == JobState.SUCCEEDED:
        return Outcome(RunState.SUCCEEDED, body=f"Job succeeded ({observed.succeeded} pod(s))")
    if observed.failure_reason == "DeadlineExceeded":
        return Outcome(RunState.TIMED_OUT, error="the Job exceeded its activeDeadlineSeconds", body="DeadlineExceeded")
    reason = observed.failure_reason or "failed"
    return Outcome(RunState.FAILED, error=f"the Job failed: {reason}", body=reason)


def stop(job: Job, run: Run) -> None:
    """Delete a cancelled or replaced run's Job with its pods (background propagation)."""
    if not run.kube_job or job.cluster is None:
        return
    try:
        gateways.for_cluster(job.cluster).delete(f"{collection(job)}/{run.kube_job}", propagation="Background")
    except gateways.NotFound:
        return
    except gateways.KubeError as exc:
        logger.warning("cron run %s: could not delete Job %s: %s", run.pk, run.kube_job, exc.message)


OVERDUE_MARGIN = timedelta(seconds=30)


def expire_overdue(now: datetime | None = None) -> int:
    """Rule: a Job target's run still running its timeout plus 30 s after it started is timed out by ICC itself and
    its Job deleted — the cluster's own ``activeDeadlineSeconds`` is not always enforced (Kubernetes before 1.25
    may check it once, too early), and an unreachable cluster reports nothing."""
    now = now or datetime.now(UTC)
    overdue = []
    running = Run.objects.filter(state=RunState.RUNNING, job__target_kind="kubernetes", started_at__isnull=False)
    for run in running.select_related("job", "job__cluster")[:200]:
        if run.started_at and run.started_at + timedelta(seconds=run.job.timeout_seconds) + OVERDUE_MARGIN < now:
            overdue.append(run)
    for run in overdue:
        finish_observed(run, RunState.TIMED_OUT, f"no outcome {run.job.timeout_seconds} s after it started", "")
        stop(run.job, run)
    return len(overdue)


def on_job_observed(*, cluster_id: int, namespace: str, name: str, state: str, deleted: bool, **_: Any) -> None:
    """The watcher saw an ICC Job change: finish its run when the Job is over (idempotent)."""
    if not name.startswith("icc-cron-"):
        return
    run = (
        Run.objects.select_related("job")
        .filter(job__cluster_id=cluster_id, job__namespace=namespace, kube_job=name, state=RunState.RUNNING)
        .first()
    )
    if run is None:
        return
    if deleted:
        outcome_state, error = str(RunState.CANCELLED), "the Job was deleted in the cluster"
        outcome = None
    elif state == JobState.RUNNING:
        return
    else:
        observed = KubeJob.objects.filter(cluster_id=cluster_id, namespace=namespace, name=name).first()
        if observed is None:
            return
        outcome = outcome_of(observed)
        outcome_state, error = str(outcome.state), outcome.error
    finish_observed(run, outcome_state, error, outcome.body if outcome else "")


def finish_observed(run: Run, state: str, error: str, detail: str) -> None:
    """Finish a Job target's run from what the cluster reported (no claim token: the watcher is not a worker).

    Rule: a Job target is retried by the Job's own ``backoffLimit`` (pods), not by ICC: the run's Job name is
    fixed by its slot, so ICC records the Job's outcome as the run's."""
    job = run.job
    now = datetime.now(UTC)
    with transaction.atomic():
        live = Run.objects.select_for_update().filter(pk=run.pk, state=RunState.RUNNING)
        current = live.first()
        if current is None:
            return
        attempt = Attempt.objects.filter(run=current, number=current.attempts).first()
        if attempt is not None:
            duration = int((now - attempt.started_at).total_seconds() * 1000)
            Attempt.objects.filter(pk=attempt.pk).update(
                finished_at=now, outcome=state, error=error[:500], body_excerpt=detail, duration_ms=duration
            )
        total = int((now - (current.started_at or now)).total_seconds() * 1000)
        live.update(state=state, finished_at=now, duration_ms=total, claim_expires_at=None, reason=error[:300])
        metrics.RUNS.labels(state=state).inc()
        if state in (RunState.FAILED, RunState.TIMED_OUT):
            transaction.on_commit(lambda: signals.run_failed.send(sender=Run, run=current, job=job))
        transaction.on_commit(lambda: events.runs_changed([job.pk]))
