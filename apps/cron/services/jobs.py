"""Writes on jobs: ``job_<action>(*, ..., by)`` checks the caller, writes, audits, publishes after commit and
wakes the scheduler (so a changed schedule takes effect at once, not at the next poll).

``by`` is the acting user (``None`` is ICC itself: commands, tasks, the declared-jobs endpoint, which records
the machine identity as the actor instead).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from apps.audit.services import audit_record
from apps.clusters import crypto
from apps.core.access import Action, Scope, ScopeKind, can, can_at
from apps.core.errors import ConflictError, DomainError, ForbiddenError
from apps.cron import events, schedule
from apps.cron.models import Job, TargetKind
from apps.cron.services import wake
from apps.cron.services.validation import clean_job

SECRET_FIELDS = ("http_secret_headers",)


def audit_scope(job: Job) -> dict[str, str]:
    scope = {}
    if job.cluster_id:
        scope["cluster"] = str(job.cluster_id)
    if job.namespace:
        scope["namespace"] = job.namespace
    if job.application_id and job.application is not None:
        scope["application"] = job.application.name
    return scope


def target_scope(values: Mapping[str, Any]) -> Scope:
    """Rule: where a job with these values lives, for access control (see :meth:`Job.scope_coordinates`)."""
    application = values.get("application")
    if application is not None:
        return Scope(ScopeKind.APPLICATION, cluster=str(application.cluster_id), application=application.name)
    if values.get("target_kind") == TargetKind.KUBERNETES and values.get("cluster") is not None:
        return Scope(ScopeKind.NAMESPACE, cluster=str(values["cluster"].pk), namespace=values.get("namespace", ""))
    return Scope()


def check(by: Any, action: str, job: Job | None, what: str, *, at: Scope | None = None) -> None:
    """Rule of every write: ``by`` needs ``action`` on the job (or at the scope a new job will have)."""
    if by is None:
        return
    allowed = can(by, action, job) if job is not None else can_at(by, action, at or Scope())
    if not allowed:
        raise ForbiddenError(f"your role does not allow {what} here")


def snapshot(job: Job) -> dict[str, Any]:
    """What the audit trail records of a job (secret header values never: their names only)."""
    return {
        "name": job.name,
        "application": job.application_id,
        "cluster": job.cluster_id,
        "namespace": job.namespace,
        "schedule": job.schedule,
        "timezone": job.timezone,
        "suspended": job.suspended,
        "concurrency": job.concurrency,
        "starting_deadline_seconds": job.starting_deadline_seconds,
        "catch_up": job.catch_up,
        "catch_up_limit": job.catch_up_limit,
        "timeout_seconds": job.timeout_seconds,
        "max_attempts": job.max_attempts,
        "backoff_seconds": job.backoff_seconds,
        "max_backoff_seconds": job.max_backoff_seconds,
        "keep_succeeded": job.keep_succeeded,
        "keep_failed": job.keep_failed,
        "spread": job.spread,
        "freeze_policy": job.freeze_policy,
        "grace_seconds": job.grace_seconds,
        "target_kind": job.target_kind,
        "http_method": job.http_method,
        "http_url": job.http_url,
        "http_headers": job.http_headers,
        "http_secret_header_names": job.http_secret_header_names,
        "http_body_bytes": len(job.http_body.encode()),
        "http_expected_statuses": job.http_expected_statuses,
        "job_template": job.job_template,
        "declared": job.declared,
    }


def _recorded(job: Job, action: str, changes: dict[str, Any], *, actor: Any = None, **audit: Any) -> None:
    """In the write's transaction: the audit event ``cron.job.<action>``, the live update and the scheduler's
    wake-up after commit."""
    audit_record(action=f"cron.job.{action}", target=job, scope=audit_scope(job), changes=changes, actor=actor, **audit)
    events.job_changed(job, action)
    wake.after_commit()


def _apply(job: Job, cleaned: dict[str, Any]) -> None:
    secret_headers = cleaned.pop("http_secret_headers", None)
    for key, value in cleaned.items():
        setattr(job, key, value)
    if secret_headers is not None:  # None keeps the stored ones; {} removes them
        job.http_secret_headers = crypto.encrypt(secret_headers) if secret_headers else None
        job.http_secret_header_names = sorted(secret_headers)
    cluster, namespace = job.scope_coordinates()
    job.cluster_id, job.namespace = cluster, namespace


def _first_slot(job: Job, after: datetime | None = None) -> datetime:
    return schedule.next_slot(job.schedule, job.timezone, after or datetime.now(UTC))


def _dry_run(job: Job) -> None:
    if job.target_kind == TargetKind.KUBERNETES:
        from apps.cron import kube_target

        kube_target.dry_run(job)


def job_create(*, by: Any = None, declared: bool = False, actor: Any = None, **values: Any) -> tuple[Job, str]:
    """A new job; returns it and its signing secret (shown once: receivers verify ICC's signature with it)."""
    cleaned = clean_job(values, None)
    check(by, Action.CONFIGURE, None, "creating a scheduled job", at=target_scope({**values, **cleaned}))
    job = Job(declared=declared, created_by=by if getattr(by, "is_authenticated", False) else None)
    _apply(job, cleaned)
    _dry_run(job)
    signing = secrets.token_urlsafe(32)
    job.signing_secret = crypto.encrypt({"secret": signing})
    try:
        with transaction.atomic():
            job.save()
            job.set_next_slot(_first_slot(job))  # the spread offset needs the id
            job.save(update_fields=["next_slot_at", "next_due_at"])
            _recorded(job, "create", {k: [None, v] for k, v in snapshot(job).items()}, actor=actor)
    except IntegrityError:
        raise ConflictError(f"a job named {job.name!r} already exists here", field="name") from None
    return job, signing


def job_update(*, job: Job, by: Any = None, actor: Any = None, declared_source: bool = False, **values: Any) -> Job:
    """Change a job; a changed schedule or time zone recomputes the next slot. Declared jobs change only
    through their application's declaration (operators may still suspend them)."""
    check(by, Action.CONFIGURE, job, "changing a scheduled job")
    if job.declared and not declared_source:
        raise ConflictError(
            "this job is declared by its application; change the declaration (operators may suspend it)",
            field="declared",
            code="declared",
        )
    cleaned = clean_job(values, job)
    if "application" in cleaned and cleaned["application"] != job.application:
        raise DomainError("a job cannot move to another application; create a new one", field="application")
    with transaction.atomic():
        locked = Job.objects.select_for_update(of=("self",)).select_related("application").get(pk=job.pk)
        before = snapshot(locked)
        timing = {"schedule", "timezone", "spread"} & set(cleaned)
        _apply(locked, cleaned)
        if (before["cluster"], before["namespace"]) != (locked.cluster_id, locked.namespace):
            check(by, Action.CONFIGURE, None, "moving a scheduled job", at=target_scope(snapshot_values(locked)))
        _dry_run(locked)
        if timing:
            locked.set_next_slot(_first_slot(locked))
        locked.version = F("version") + 1
        try:
            locked.save()
        except IntegrityError:
            raise ConflictError(f"a job named {locked.name!r} already exists here", field="name") from None
        locked.refresh_from_db()
        after = snapshot(locked)
        changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        if "http_secret_headers" in values:
            changes["http_secret_headers"] = ["(hidden)", "(changed)"]
        _recorded(locked, "update", changes, actor=actor, metadata={"version": locked.version})
    return locked


def snapshot_values(job: Job) -> dict[str, Any]:
    return {
        "application": job.application,
        "target_kind": job.target_kind,
        "cluster": job.cluster,
        "namespace": job.namespace,
    }


def job_set_suspended(*, job: Job, suspended: bool, reason: str = "", by: Any = None) -> Job:
    """Suspend or resume. Resuming never fires the slots missed while suspended: the next slot is the next
    one from now (the "re-enabled task fires twice" report against Celery beat)."""
    check(by, Action.ACT, job, "suspending or resuming a scheduled job")
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.suspended == suspended:
            return locked
        locked.suspended = suspended
        if not suspended:
            locked.set_next_slot(_first_slot(locked))
        locked.save(update_fields=["suspended", "next_slot_at", "next_due_at", "updated_at"])
        action = "suspend" if suspended else "resume"
        _recorded(locked, action, {"suspended": [not suspended, suspended]}, message=reason[:500])
    return locked


def job_delete(*, job: Job, confirm: str, by: Any = None, actor: Any = None) -> None:
    """Delete a job and its runs; ``confirm`` must repeat the job's name (destructive)."""
    check(by, Action.CONFIGURE, job, "deleting a scheduled job")
    if confirm != job.name:
        raise DomainError(f"type the job's name ({job.name}) to confirm", field="confirm")
    with transaction.atomic():
        _recorded(job, "delete", {k: [v, None] for k, v in snapshot(job).items()}, actor=actor)
        job.delete()


def job_rotate_secret(*, job: Job, by: Any = None) -> str:
    """A new signing secret (returned once); signatures made with the old one stop verifying."""
    check(by, Action.CONFIGURE, job, "rotating a job's signing secret")
    signing = secrets.token_urlsafe(32)
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(signing_secret=crypto.encrypt({"secret": signing}))
        audit_record(action="cron.job.rotate_secret", target=job, scope=audit_scope(job))
    return signing


def signing_secret(job: Job) -> bytes:
    if not job.signing_secret:
        return b""
    return str(crypto.decrypt(job.signing_secret).get("secret", "")).encode()


def secret_headers(job: Job) -> dict[str, str]:
    if not job.http_secret_headers:
        return {}
    return {str(k): str(v) for k, v in crypto.decrypt(job.http_secret_headers).items()}
