"""Notifications: every domain event recorded, rules and subscriptions that route them to channels, grouped
messages (one per condition: rule or subscription x deduplication key while open) and their deliveries.

Rules on the model: a rule matches an event when its kind matches one of the rule's globs, the rule's scope
contains the event's scope (compared whole) and the event is at least as severe as the rule's minimum.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.access import Scope, ScopeKind
from apps.core.domain_events import SEVERITY_RANK, Severity

SEVERITY_CHOICES = [(s.value, s.value.capitalize()) for s in Severity]


def kinds_match(globs: list[str], kind: str) -> bool:
    """Rule: no glob matches nothing; ``*`` matches every kind; ``clusters.*`` every clusters event."""
    return any(fnmatch.fnmatchcase(kind, glob) for glob in globs)


def severity_reaches(severity: str, minimum: str) -> bool:
    return SEVERITY_RANK[Severity(severity)] >= SEVERITY_RANK[Severity(minimum)]


class ScopedFields(models.Model):
    """The scope coordinates of a row (kind, cluster id, namespace, application name)."""

    scope_kind = models.CharField(max_length=16, choices=ScopeKind.choices, default=ScopeKind.GLOBAL)
    scope_cluster = models.CharField(max_length=64, blank=True, default="")
    scope_namespace = models.CharField(max_length=253, blank=True, default="")
    scope_application = models.CharField(max_length=253, blank=True, default="")

    class Meta:
        abstract = True

    @property
    def scope(self) -> Scope:
        return Scope(self.scope_kind, self.scope_cluster, self.scope_namespace, self.scope_application)

    @staticmethod
    def scope_values(scope: Scope) -> dict[str, str]:
        return {
            "scope_kind": str(scope.kind),
            "scope_cluster": scope.cluster,
            "scope_namespace": scope.namespace,
            "scope_application": scope.application,
        }


class Event(ScopedFields):
    """One emitted domain event, as it was emitted (searchable; what was sent for it is in its messages)."""

    kind = models.CharField(max_length=100, db_index=True)
    severity = models.CharField(max_length=16, choices=SEVERITY_CHOICES)
    subject = models.CharField(max_length=300)
    text = models.TextField(blank=True, default="")
    link = models.CharField(max_length=500, blank=True, default="")
    dedup_key = models.CharField(max_length=300, db_index=True)
    resolves = models.BooleanField(default=False)
    at = models.DateTimeField(db_index=True)
    maintenance = models.BooleanField(default=False)  # emitted while its scope was in a maintenance window
    routed_at = models.DateTimeField(null=True, blank=True)  # set once, when its messages and deliveries were made

    class Meta:
        ordering = ("-at", "-id")
        indexes = [models.Index(fields=("at",), condition=Q(routed_at__isnull=True), name="notif_event_unrouted")]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}"


class ChannelKind(models.TextChoices):
    EMAIL = "email", "E-mail"
    SLACK = "slack", "Slack"
    TEAMS = "teams", "Microsoft Teams"
    WEBHOOK = "webhook", "Webhook"


class Channel(models.Model):
    """Where messages go. ``target``: e-mail addresses (comma-separated) or the webhook URL; for Slack and Teams
    the whole URL is the secret (its path is the token), so ``target`` keeps only its scheme and host. ``secret``
    (encrypted): the Slack/Teams URL, or the webhook's HMAC signing key. Never shown after it is written."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    target = models.TextField(blank=True, default="")
    secret_encrypted = models.BinaryField(null=True, blank=True, editable=False)
    max_per_minute = models.PositiveIntegerField(default=30)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_encrypted)

    def addresses(self) -> list[str]:
        return [a.strip() for a in self.target.replace(";", ",").split(",") if a.strip()]


class Rule(ScopedFields):
    """Event kinds x scope x minimum severity → channels, with grouping, repeat and resolved messages."""

    name = models.CharField(max_length=100, unique=True)
    kinds = models.JSONField(default=list)  # globs
    min_severity = models.CharField(max_length=16, choices=SEVERITY_CHOICES, default=Severity.WARNING)
    channels = models.ManyToManyField(Channel, related_name="rules", blank=True)
    group_window_seconds = models.PositiveIntegerField(default=30)
    repeat_interval_seconds = models.PositiveIntegerField(default=0)  # 0: never repeat
    notify_resolved = models.BooleanField(default=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def matches(self, kind: str, severity: str, scope: Scope) -> bool:
        """Rule: enabled, kind matches a glob, the rule's scope contains the event's, severity reaches the minimum."""
        return (
            self.enabled
            and kinds_match(list(self.kinds), kind)
            and self.scope.contains(scope)
            and severity_reaches(severity, self.min_severity)
        )


class Subscription(ScopedFields):
    """One user's "e-mail me about these": kinds x scope x minimum severity, to their address."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_subscriptions"
    )
    kinds = models.JSONField(default=list)
    min_severity = models.CharField(max_length=16, choices=SEVERITY_CHOICES, default=Severity.WARNING)
    email = models.EmailField()
    group_window_seconds = models.PositiveIntegerField(default=30)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"subscription {self.pk} of user {self.user_id}"

    def matches(self, kind: str, severity: str, scope: Scope) -> bool:
        return (
            self.enabled
            and kinds_match(list(self.kinds), kind)
            and self.scope.contains(scope)
            and severity_reaches(severity, self.min_severity)
        )


class MessageState(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class Message(ScopedFields):
    """One grouped notification: the events of one deduplication key for one rule (or subscription) while open."""

    rule = models.ForeignKey(Rule, null=True, blank=True, on_delete=models.CASCADE, related_name="messages")
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    dedup_key = models.CharField(max_length=300)
    kind = models.CharField(max_length=100)
    severity = models.CharField(max_length=16, choices=SEVERITY_CHOICES)
    subject = models.CharField(max_length=300)
    text = models.TextField(blank=True, default="")
    link = models.CharField(max_length=500, blank=True, default="")
    first_event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    last_event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    events = models.ManyToManyField(Event, related_name="messages", blank=True)
    count = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=16, choices=MessageState.choices, default=MessageState.OPEN)
    maintenance = models.BooleanField(default=False)
    muted = models.BooleanField(default=False)  # in maintenance and not critical: recorded, not sent
    opened_at = models.DateTimeField()
    last_event_at = models.DateTimeField()
    next_repeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    repeats = models.PositiveIntegerField(default=0)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-opened_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=("rule", "dedup_key"),
                condition=Q(state="open", rule__isnull=False),
                name="notifications_one_open_message_per_rule_key",
            ),
            models.UniqueConstraint(
                fields=("subscription", "dedup_key"),
                condition=Q(state="open", subscription__isnull=False),
                name="notifications_one_open_message_per_subscription_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject} x{self.count}"


class DeliveryKind(models.TextChoices):
    FIRST = "first", "First"
    REPEAT = "repeat", "Repeat"
    RESOLVED = "resolved", "Resolved"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"  # an attempt failed; retried (status goes back to pending) until the limit
    DEAD = "dead", "Dead"


class Delivery(models.Model):
    """One message sent (or to be sent) once to one channel (or a subscriber's address): first, each repeat,
    resolved. ``reason``: the channel's answer in a few words (status code and why), never a remote body."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    recipient = models.EmailField(blank=True, default="")  # a subscription's address (no channel)
    kind = models.CharField(max_length=16, choices=DeliveryKind.choices)
    sequence = models.PositiveIntegerField(default=0)  # the repeat's number (0 for first and resolved)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    status_code = models.IntegerField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True, default="")
    next_attempt_at = models.DateTimeField(db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-id",)
        constraints = [
            models.UniqueConstraint(
                fields=("message", "channel", "kind", "sequence"),
                condition=Q(channel__isnull=False),
                name="notifications_one_delivery_per_message_channel_kind",
            ),
            models.UniqueConstraint(
                fields=("message", "recipient", "kind", "sequence"),
                condition=Q(channel__isnull=True),
                name="notifications_one_delivery_per_message_recipient_kind",
            ),
        ]
        indexes = [models.Index(fields=("channel", "claimed_at"), name="notif_delivery_channel_claim")]

    def __str__(self) -> str:
        return f"{self.kind} of message {self.message_id} to {self.channel_id or self.recipient}: {self.status}"

    def payload_context(self) -> dict[str, Any]:
        return {"kind": self.kind, "sequence": self.sequence}
