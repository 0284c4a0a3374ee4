"""The audit event: append-only, hash-chained, one row per action.

``seq`` is gap-free and assigned under one serialization point (the chain head row, locked
``FOR UPDATE`` in the writer's transaction), so the chain order is the commit order of writers.
``hash`` = SHA-256 over the canonical serialization of every other field plus ``prev_hash``
(see :mod:`apps.audit.chain`). On PostgreSQL a trigger refuses UPDATE and DELETE.
"""

from __future__ import annotations

from django.db import models


class ActorKind(models.TextChoices):
    USER = "user", "User"
    TOKEN = "token", "API token"
    SERVICE_ACCOUNT = "service_account", "Service account"
    SYSTEM = "system", "System"
    ANONYMOUS = "anonymous", "Anonymous"


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    DENIED = "denied", "Denied"
    FAILED = "failed", "Failed"


class Source(models.TextChoices):
    API = "api", "API"
    PORTAL = "portal", "Portal"
    ADMIN = "admin", "Admin"
    TASK = "task", "Task"
    WATCHER = "watcher", "Watcher"
    CLI = "cli", "CLI"


class AuditEvent(models.Model):
    seq = models.BigIntegerField(primary_key=True)
    time = models.DateTimeField()
    actor_kind = models.CharField(max_length=20, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=100)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    target_display = models.CharField(max_length=255, blank=True)
    scope_cluster = models.CharField(max_length=100, blank=True)
    scope_namespace = models.CharField(max_length=100, blank=True)
    scope_application = models.CharField(max_length=150, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS)
    message = models.TextField(blank=True)
    changes = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    metadata = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        db_table = "audit_event"
        ordering = ("-seq",)
        # Plus, on PostgreSQL, a BRIN index on time (migration 0002): tiny at 100M rows because
        # time grows with seq, and it serves time-range scans of the whole trail.
        indexes = [
            models.Index(fields=["target_type", "target_id", "time"], name="audit_event_target_time"),
            models.Index(fields=["action", "time"], name="audit_event_action_time"),
            models.Index(fields=["actor_kind", "actor_id", "time"], name="audit_event_actor_time"),
            models.Index(fields=["request_id"], name="audit_event_request"),
        ]
        # A constraint, not unique=True: that would add a second, LIKE-pattern index on hash that no
        # query uses (119 MiB per million events).
        constraints = [models.UniqueConstraint(fields=["hash"], name="audit_event_hash_unique")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.outcome}"


class AuditChainHead(models.Model):
    """The single row every append locks: the last sequence number and hash of the chain."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    class Meta:
        db_table = "audit_chain_head"

    def __str__(self) -> str:
        return f"head #{self.seq}"
