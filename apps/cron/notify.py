"""Cron's domain events: a run that failed after its last attempt, or that is late, becomes a DomainEvent
(``cron.run_failed``, ``cron.run_late``) for notifications; one condition per job and kind."""

from __future__ import annotations

from typing import Any

from apps.core.access import Scope, ScopeKind
from apps.core.domain_events import DomainEvent, Severity, emit
from apps.cron import signals
from apps.cron.models import Job, Run


def job_scope(job: Job) -> Scope:
    if job.application is not None and job.cluster_id is not None:
        return Scope(ScopeKind.APPLICATION, str(job.cluster_id), application=job.application.name)
    if job.cluster_id is not None:
        return Scope(ScopeKind.NAMESPACE, str(job.cluster_id), namespace=job.namespace)
    return Scope()


def _run_failed(*, run: Run, job: Job, **_: Any) -> None:
    try:
        run.refresh_from_db(fields=["state", "reason"])  # the sender's instance may predate the final update
    except Run.DoesNotExist:
        return  # deleted meanwhile (its job was): nothing left to point at
    emit(
        DomainEvent(
            kind="cron.run_failed",
            severity=Severity.ERROR,
            subject=f"cron job {job.name}",
            text=f"The run of {run.slot:%Y-%m-%d %H:%M:%S}Z of job {job.name} {run.state}: {run.reason}"[:1000],
            scope=job_scope(job),
            link=f"/cron/{job.pk}/",
            dedup_key=f"cron.run_failed:{job.pk}",
        )
    )


def _run_late(*, run: Run, job: Job, what: str = "start", **_: Any) -> None:
    emit(
        DomainEvent(
            kind="cron.run_late",
            severity=Severity.WARNING,
            subject=f"cron job {job.name}",
            text=f"The run of {run.slot:%Y-%m-%d %H:%M:%S}Z of job {job.name} did not {what} within its grace period.",
            scope=job_scope(job),
            link=f"/cron/{job.pk}/",
            dedup_key=f"cron.run_late:{job.pk}",
        )
    )


def connect() -> None:
    signals.run_failed.connect(_run_failed, dispatch_uid="cron.notify.run_failed")
    signals.run_late.connect(_run_late, dispatch_uid="cron.notify.run_late")
