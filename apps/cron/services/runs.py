"""Writes on runs: run now (manual, recorded with who asked) and cancel; both audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction

from apps.audit.services import audit_record
from apps.core.access import Action
from apps.core.errors import ConflictError
from apps.cron import events
from apps.cron.models import Job, Run, RunState, TargetKind
from apps.cron.services.jobs import audit_scope, check


def job_run_now(*, job: Job, by: Any = None) -> Run:
    """A manual run now: it honours the concurrency policy (decided when a worker claims it) and also works on a
    suspended job."""
    check(by, Action.ACT, job, "running a scheduled job")
    moment = datetime.now(UTC)
    now = moment.replace(microsecond=moment.microsecond // 1000 * 1000)  # manual slots are kept to the ms
    requester = by if getattr(by, "is_authenticated", False) else None
    try:
        with transaction.atomic():
            run = Run.objects.create(
                job=job, slot=now, due_at=now, not_before=now, manual=True, requested_by=requester, dispatched_at=now
            )
            audit_record(
                action="cron.job.run",
                target=job,
                scope=audit_scope(job),
                metadata={"run": run.pk, "manual": True},
            )
            transaction.on_commit(lambda: _dispatch(run.pk))
            transaction.on_commit(lambda: events.runs_changed([job.pk], "run"))
    except IntegrityError:
        raise ConflictError("a run of this job was just asked for; try again in a second", field="job") from None
    return run


def _dispatch(run_id: int) -> None:
    from apps.cron.tasks import execute_run

    execute_run.apply_async(args=[run_id], queue="cron")


def run_cancel(*, run: Run, by: Any = None, reason: str = "") -> Run:
    """Cancel a scheduled or running run; a Kubernetes Job target's Job is deleted with its pods."""
    job = run.job
    check(by, Action.ACT, job, "cancelling a run")
    now = datetime.now(UTC)
    with transaction.atomic():
        updated = Run.objects.filter(pk=run.pk, state__in=(RunState.SCHEDULED, RunState.RUNNING)).update(
            state=RunState.CANCELLED, finished_at=now, reason=(reason or "cancelled by an operator")[:300]
        )
        if not updated:
            raise ConflictError(f"this run is already {run.get_state_display().lower()}", field="state")
        audit_record(
            action="cron.run.cancel",
            target=job,
            scope=audit_scope(job),
            metadata={"run": run.pk, "slot": run.slot.isoformat()},
            message=reason[:500],
        )
        if job.target_kind == TargetKind.KUBERNETES:
            from apps.cron import kube_target

            transaction.on_commit(lambda: kube_target.stop(job, run))
        transaction.on_commit(lambda: events.runs_changed([job.pk], "cancel"))
    run.refresh_from_db()
    return run
