"""Scheduled jobs and their runs.

A ``Job`` fires on a cron schedule in an IANA time zone and calls an HTTP target or creates a Kubernetes Job.
Each scheduled slot becomes exactly one ``Run`` row — unique on (job, slot) in the database, so any number of
scheduler replicas insert it with ``ON CONFLICT DO NOTHING`` and any number of workers claim it by
compare-and-swap. Each try of a run is an ``Attempt`` (status, duration, response excerpt or the Job's outcome).

Access follows the job's coordinates: its application's (cluster, namespace, name) when it has one, else the
target cluster and namespace of a Kubernetes Job target; an HTTP job without an application is global.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import models

from apps.core.access import Scope, ScopeKind
from apps.core.models import BaseModel


def slot_text(slot: datetime) -> str:
    """A slot in UTC, ISO 8601 to the second (scheduled slots), or to the millisecond (manual runs)."""
    text = slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if slot.microsecond:
        text += f".{slot.microsecond // 1000:03d}"
    return f"{text}Z"


class TargetKind(models.TextChoices):
    HTTP = "http", "HTTP call"
    KUBERNETES = "kubernetes", "Kubernetes Job"


class Concurrency(models.TextChoices):
    ALLOW = "allow", "Allow (runs may overlap)"
    FORBID = "forbid", "Forbid (skip while one runs)"
    REPLACE = "replace", "Replace (cancel the running one)"


class CatchUp(models.TextChoices):
    SKIP = "skip", "Skip every missed slot"
    LATEST = "latest", "Run the latest missed slot"
    ALL = "all", "Run every missed slot (up to the limit)"


class RunState(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    TIMED_OUT = "timed_out", "Timed out"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATES = (RunState.SUCCEEDED, RunState.FAILED, RunState.TIMED_OUT, RunState.SKIPPED, RunState.CANCELLED)


class SkipReason(models.TextChoices):
    CONCURRENCY = "concurrency", "Another run was still running (concurrency forbid)"
    DEADLINE = "deadline", "Not started within the starting deadline"
    SUSPENDED = "suspended", "The job was suspended"
    CATCH_UP = "catch_up", "Missed while the scheduler was down (catch-up policy)"
    FREEZE = "freeze", "Inside a change freeze (the job's freeze policy is skip)"


class FreezePolicy(models.TextChoices):
    RUN = "run", "Run during a change freeze"
    SKIP = "skip", "Skip during a change freeze"


# A job's settings by group: what forms, serializers, the admin and declarations list (one place).
TIMING_FIELDS = (
    "schedule",
    "timezone",
    "concurrency",
    "starting_deadline_seconds",
    "catch_up",
    "catch_up_limit",
    "timeout_seconds",
    "max_attempts",
    "backoff_seconds",
    "max_backoff_seconds",
    "keep_succeeded",
    "keep_failed",
    "spread",
    "grace_seconds",
    "freeze_policy",
)
HTTP_FIELDS = ("http_method", "http_url", "http_headers", "http_body", "http_expected_statuses")
KUBE_FIELDS = ("cluster", "namespace", "job_template")


class Job(BaseModel):
    name = models.CharField(max_length=100)
    application = models.ForeignKey(
        "clusters.Application", null=True, blank=True, on_delete=models.CASCADE, related_name="cron_jobs"
    )
    # Access coordinates (derived: the application's, else the Kubernetes target's; both empty means global).
    cluster = models.ForeignKey(
        "clusters.Cluster", null=True, blank=True, on_delete=models.CASCADE, related_name="cron_jobs"
    )
    namespace = models.CharField(max_length=253, blank=True)
    description = models.TextField(blank=True)
    schedule = models.CharField(max_length=120)
    timezone = models.CharField(max_length=64, default="UTC")
    suspended = models.BooleanField(default=False)
    concurrency = models.CharField(max_length=8, choices=Concurrency.choices, default=Concurrency.ALLOW)
    starting_deadline_seconds = models.PositiveIntegerField(null=True, blank=True)
    catch_up = models.CharField(max_length=8, choices=CatchUp.choices, default=CatchUp.LATEST)
    catch_up_limit = models.PositiveIntegerField(default=10)
    timeout_seconds = models.PositiveIntegerField(default=60)
    max_attempts = models.PositiveIntegerField(default=1)
    backoff_seconds = models.PositiveIntegerField(default=10)
    max_backoff_seconds = models.PositiveIntegerField(default=600)
    keep_succeeded = models.PositiveIntegerField(default=20)
    keep_failed = models.PositiveIntegerField(default=20)
    spread = models.BooleanField(default=False, help_text="Fire at a stable per-job second instead of :00.")
    grace_seconds = models.PositiveIntegerField(default=60)
    freeze_policy = models.CharField(max_length=8, choices=FreezePolicy.choices, default=FreezePolicy.RUN)
    target_kind = models.CharField(max_length=16, choices=TargetKind.choices, default=TargetKind.HTTP)
    # HTTP target
    http_method = models.CharField(max_length=8, default="POST")
    http_url = models.CharField(max_length=2000, blank=True)  # checked by the outbound address policy
    http_headers = models.JSONField(default=dict, blank=True)  # plain headers, shown
    http_secret_headers = models.BinaryField(null=True, editable=False)  # Fernet token of {name: value}; write-only
    http_secret_header_names = models.JSONField(default=list, blank=True)  # names only, for display
    http_body = models.TextField(blank=True)
    http_expected_statuses = models.JSONField(default=list, blank=True)  # empty: any 2xx
    # Kubernetes Job target (in ``cluster`` / ``namespace``)
    job_template = models.JSONField(default=dict, blank=True)
    # Signing: a per-job HMAC secret (Fernet token), shown once when created or rotated.
    signing_secret = models.BinaryField(null=True, editable=False)
    declared = models.BooleanField(default=False, help_text="Declared by its application; edits come from it.")
    version = models.PositiveIntegerField(default=1)
    next_slot_at = models.DateTimeField(null=True, blank=True)  # the next slot to materialise (UTC)
    next_due_at = models.DateTimeField(null=True, blank=True, db_index=True)  # that slot plus the spread offset
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ("name", "id")
        constraints = [
            models.UniqueConstraint(fields=("application", "name"), name="cron_job_unique_in_application"),
            models.UniqueConstraint(
                fields=("name",), condition=models.Q(application__isnull=True), name="cron_job_unique_unowned"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def spread_offset(self) -> timedelta:
        """Rule: a spread job fires at a stable second of its minute derived from its id (Jenkins' ``H``)."""
        if not self.spread or self.pk is None:
            return timedelta(0)
        digest = hashlib.sha256(f"icc-cron:{self.pk}".encode()).digest()
        return timedelta(seconds=int.from_bytes(digest[:4], "big") % 60)

    def due_at(self, slot: datetime) -> datetime:
        """When the run of ``slot`` should start: the slot plus the job's spread offset."""
        return slot + self.spread_offset()

    def set_next_slot(self, slot: datetime | None) -> None:
        """Rule: the next slot and when it is due (the slot plus the spread offset) always move together."""
        self.next_slot_at = slot
        self.next_due_at = self.due_at(slot) if slot is not None else None

    def idempotency_key(self, slot: datetime) -> str:
        return f"{self.pk}:{slot_text(slot)}"

    def scope_coordinates(self) -> tuple[int | None, str]:
        """Rule: the application's coordinates, else the Kubernetes target's, else none (global)."""
        if self.application is not None:
            return self.application.cluster_id, self.application.namespace
        if self.target_kind == TargetKind.KUBERNETES:
            return self.cluster_id, self.namespace
        return None, ""

    def freeze_scope(self) -> Scope:
        """Rule: where a change freeze is looked up for this job: its application, else its Kubernetes target's
        namespace, else global."""
        if self.application is not None:
            app = self.application
            return Scope(ScopeKind.APPLICATION, str(app.cluster_id), app.namespace, app.name)
        if self.target_kind == TargetKind.KUBERNETES and self.cluster_id:
            return Scope(ScopeKind.NAMESPACE, str(self.cluster_id), self.namespace)
        return Scope()

    def kube_job_name(self, slot: datetime) -> str:
        """Rule: a deterministic Kubernetes Job name per (job, slot): a second create is AlreadyExists."""
        return f"icc-cron-{self.pk}-{int(slot.timestamp() * 1000)}"

    def is_expected_status(self, status: int) -> bool:
        expected = self.http_expected_statuses or []
        return status in expected if expected else 200 <= status < 300


class Run(models.Model):
    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="runs")
    slot = models.DateTimeField()  # the scheduled time (UTC); for a manual run, when it was asked for
    due_at = models.DateTimeField()  # slot + spread offset: when it should start
    state = models.CharField(max_length=12, choices=RunState.choices, default=RunState.SCHEDULED)
    reason = models.CharField(max_length=300, blank=True)  # why skipped / failed / cancelled
    skip_reason = models.CharField(max_length=16, choices=SkipReason.choices, blank=True)
    manual = models.BooleanField(default=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    attempts = models.PositiveIntegerField(default=0)
    not_before = models.DateTimeField()  # no claim before this (retry backoff)
    claim_token = models.UUIDField(null=True, blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lateness_ms = models.IntegerField(null=True, blank=True)  # first start minus due time
    duration_ms = models.IntegerField(null=True, blank=True)
    late = models.BooleanField(default=False)
    kube_job = models.CharField(max_length=253, blank=True)  # the Kubernetes Job's name (Job targets)
    dispatched_at = models.DateTimeField(null=True, blank=True)  # last handed to a worker (the reaper re-sends)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-slot", "-id")
        constraints = [models.UniqueConstraint(fields=("job", "slot"), name="cron_run_one_per_slot")]
        indexes = [
            models.Index(fields=("state", "not_before"), name="cron_run_state_idx"),
            models.Index(fields=("job", "-slot"), name="cron_run_job_slot_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}@{self.slot:%Y-%m-%d %H:%M:%S}"

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


class Attempt(models.Model):
    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveIntegerField()
    worker = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=RunState.choices, default=RunState.RUNNING)
    status_code = models.IntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    body_excerpt = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ("run_id", "number")
        constraints = [models.UniqueConstraint(fields=("run", "number"), name="cron_attempt_unique")]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.number}"
