"""Scaling policies, their schedules, pushed signals and the decisions they lead to.

A ``ScalingPolicy`` belongs to an application (optionally narrowed to one of its workloads). Every
evaluation writes a ``Decision`` row first (inputs, forecast, desired replicas, what was done and why, the
policy version), and acts second. ``ScalerSettings`` holds the global pause.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields

from django.conf import settings
from django.db import models

from apps.core.models import BaseModel
from apps.scaler import engine


class Mode(models.TextChoices):
    ACTIVE = "active", "Active (decide and scale)"
    RECOMMEND = "recommend", "Recommend (decide and show, never write)"
    SHADOW = "shadow", "Shadow (run beside another policy, only log)"


class ConflictMode(models.TextChoices):
    REFUSE = "refuse", "Refuse and show a conflict"
    DRIVE_HPA = "drive_hpa", "Drive the HorizontalPodAutoscaler's min/max instead"


class PolicyStatus(models.TextChoices):
    OK = "ok", "OK"
    DEGRADED = "degraded", "Degraded (metrics unavailable)"
    CONFLICT = "conflict", "Conflict (another writer owns the replica count)"
    PAUSED = "paused", "Paused"
    DISABLED = "disabled", "Disabled"


class ScalingPolicy(BaseModel):
    application = models.ForeignKey("clusters.Application", on_delete=models.CASCADE, related_name="scaling_policies")
    workload = models.ForeignKey(
        "clusters.Workload", null=True, blank=True, on_delete=models.SET_NULL, related_name="scaling_policies"
    )
    name = models.CharField(max_length=100, default="default")
    enabled = models.BooleanField(default=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.RECOMMEND)
    min_replicas = models.PositiveIntegerField(default=1)
    max_replicas = models.PositiveIntegerField(default=10)
    # [{"name": "cpu", "kind": "utilization", "target": 0.6, "query": "<PromQL, for kind custom>"}]
    metrics = models.JSONField(default=list)
    behavior = models.JSONField(default=dict)  # engine.Behavior fields
    predictive = models.BooleanField(default=False)
    conflict_mode = models.CharField(max_length=16, choices=ConflictMode.choices, default=ConflictMode.REFUSE)
    kill_switch = models.BooleanField(default=False, help_text="Stop every write for this application at once.")
    status = models.CharField(max_length=16, choices=PolicyStatus.choices, default=PolicyStatus.OK)
    status_message = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ("application_id", "name")
        constraints = [
            models.UniqueConstraint(fields=("application", "name"), name="scaler_policy_unique"),
            models.CheckConstraint(
                condition=models.Q(min_replicas__lte=models.F("max_replicas")), name="scaler_policy_min_le_max"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application} / {self.name}"

    def engine_behavior(self) -> engine.Behavior:
        """Rule: the engine's behaviour settings, stored ones over the defaults (unknown keys ignored)."""
        known = {f.name for f in dataclass_fields(engine.Behavior)}
        return engine.Behavior(**{k: v for k, v in (self.behavior or {}).items() if k in known})


class ScheduleWindow(BaseModel):
    """An RRULE window in a time zone that raises the floor or lowers the ceiling while it lasts."""

    policy = models.ForeignKey(ScalingPolicy, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=100)
    rrule = models.TextField(help_text="RFC 5545 recurrence, e.g. FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8")
    duration_minutes = models.PositiveIntegerField()
    timezone = models.CharField(max_length=64, default="UTC")
    min_replicas = models.PositiveIntegerField(null=True, blank=True)
    max_replicas = models.PositiveIntegerField(null=True, blank=True)
    priority = models.IntegerField(default=0, help_text="Higher wins when windows overlap.")

    class Meta:
        ordering = ("policy_id", "-priority", "name")

    def __str__(self) -> str:
        return self.name


class Trigger(models.TextChoices):
    PERIODIC = "periodic", "Periodic"
    SIGNAL = "signal", "Pushed signal"
    ALERT = "alert", "Alertmanager"
    MANUAL = "manual", "Manual"


class Outcome(models.TextChoices):
    APPLIED = "applied", "Applied"
    UNCHANGED = "unchanged", "Unchanged"
    RECOMMENDED = "recommended", "Recommended only"
    SHADOW = "shadow", "Shadow"
    CONFLICT = "conflict", "Conflict"
    KILLED = "killed", "Kill switch"
    PAUSED = "paused", "Global pause"
    DEGRADED = "degraded", "Metrics unavailable"
    FAILED = "failed", "Failed"


class Decision(models.Model):
    id = models.BigAutoField(primary_key=True)
    policy = models.ForeignKey(ScalingPolicy, on_delete=models.CASCADE, related_name="decisions")
    application = models.ForeignKey("clusters.Application", on_delete=models.CASCADE, related_name="decisions")
    at = models.DateTimeField(db_index=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    current_replicas = models.IntegerField()
    desired_replicas = models.IntegerField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.TextField(blank=True)  # the one-line why
    reasons = models.JSONField(default=list)  # every step of the engine
    inputs = models.JSONField(default=dict)  # metrics snapshot, limits, behaviour
    forecast = models.JSONField(null=True, blank=True)
    policy_version = models.PositiveIntegerField()
    duration_ms = models.FloatField(default=0)

    class Meta:
        ordering = ("-at", "-id")
        indexes = [models.Index(fields=("application", "-at"), name="scaler_decision_app_at")]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.current_replicas}->{self.desired_replicas} {self.outcome}"


class Signal(models.Model):
    """A pushed per-pod metric value (from the workload itself or Alertmanager); kept briefly."""

    id = models.BigAutoField(primary_key=True)
    application = models.ForeignKey("clusters.Application", on_delete=models.CASCADE, related_name="signals")
    metric = models.CharField(max_length=100)
    pod = models.CharField(max_length=253)
    value = models.FloatField()
    at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=("application", "metric", "-at"), name="scaler_signal_app_metric")]

    def __str__(self) -> str:
        return f"{self.metric}={self.value} ({self.pod})"


class ScalerSettings(models.Model):
    """One row: the global pause."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    paused = models.BooleanField(default=False)
    paused_reason = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return "paused" if self.paused else "running"
