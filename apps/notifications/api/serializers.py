"""Serializers of the notifications API. A channel's secret is write-only: answers say whether one is set
(``has_secret``), never what it is. Write serializers check types; the services check the rules."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.core.api.serializers import StrictSerializer
from apps.notifications.models import Channel, Delivery, Event, Message, Rule, Subscription

SCOPE_FIELDS = ("scope_kind", "scope_cluster", "scope_namespace", "scope_application")


class NotificationChannelSerializer(serializers.ModelSerializer):
    has_secret = serializers.BooleanField(read_only=True)

    class Meta:
        model = Channel
        fields = ("id", "name", "kind", "target", "has_secret", "max_per_minute", "enabled", "created_at", "updated_at")
        read_only_fields = fields


class NotificationChannelWriteSerializer(StrictSerializer):
    name = serializers.CharField(required=False, max_length=100)
    kind = serializers.CharField(required=False, max_length=16)
    target = serializers.CharField(required=False, allow_blank=True)
    secret = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="Slack/Teams: the incoming webhook URL; webhook: the HMAC signing key. Never shown again.",
    )
    max_per_minute = serializers.IntegerField(required=False)
    enabled = serializers.BooleanField(required=False)


class NotificationTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()


class NotificationRuleSerializer(serializers.ModelSerializer):
    channels: Any = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Rule
        fields = (
            "id",
            "name",
            "kinds",
            "min_severity",
            *SCOPE_FIELDS,
            "channels",
            "group_window_seconds",
            "repeat_interval_seconds",
            "notify_resolved",
            "enabled",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class NotificationRuleWriteSerializer(StrictSerializer):
    name = serializers.CharField(required=False, max_length=100)
    kinds = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    min_severity = serializers.CharField(required=False)
    scope_kind = serializers.CharField(required=False)
    scope_cluster = serializers.CharField(required=False, allow_blank=True)
    scope_namespace = serializers.CharField(required=False, allow_blank=True)
    scope_application = serializers.CharField(required=False, allow_blank=True)
    channels = serializers.ListField(child=serializers.IntegerField(), required=False)
    group_window_seconds = serializers.IntegerField(required=False)
    repeat_interval_seconds = serializers.IntegerField(required=False)
    notify_resolved = serializers.BooleanField(required=False)
    enabled = serializers.BooleanField(required=False)


class NotificationSubscriptionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Subscription
        fields = (
            "id",
            "kinds",
            "min_severity",
            *SCOPE_FIELDS,
            "email",
            "group_window_seconds",
            "enabled",
            "created_at",
        )
        read_only_fields = fields


class NotificationSubscriptionWriteSerializer(StrictSerializer):
    kinds = serializers.ListField(child=serializers.CharField(max_length=100))
    min_severity = serializers.CharField(required=False, default="warning")
    scope_kind = serializers.CharField(required=False, default="global")
    scope_cluster = serializers.CharField(required=False, allow_blank=True, default="")
    scope_namespace = serializers.CharField(required=False, allow_blank=True, default="")
    scope_application = serializers.CharField(required=False, allow_blank=True, default="")
    email = serializers.CharField(required=False, allow_blank=True, default="")
    group_window_seconds = serializers.IntegerField(required=False, default=30)


class NotificationDeliverySerializer(serializers.ModelSerializer):
    channel_name = serializers.CharField(source="channel.name", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Delivery
        fields = (
            "id",
            "message",
            "channel",
            "channel_name",
            "recipient",
            "kind",
            "sequence",
            "status",
            "attempts",
            "status_code",
            "reason",
            "next_attempt_at",
            "sent_at",
            "created_at",
        )
        read_only_fields = fields


MESSAGE_FIELDS: tuple[str, ...] = (
    "id",
    "rule",
    "subscription",
    "dedup_key",
    "count",
    "state",
    "maintenance",
    "muted",
    "opened_at",
    "last_event_at",
    "resolved_at",
    "repeats",
    "deliveries_pending",
    "deliveries_sending",
    "deliveries_sent",
    "deliveries_failed",
    "deliveries_dead",
)


class NotificationMessageSerializer(serializers.ModelSerializer):
    """A message with its deliveries counted by status (the event's page lists them: ``deliveries``)."""

    deliveries_pending = serializers.IntegerField(read_only=True)
    deliveries_sending = serializers.IntegerField(read_only=True)
    deliveries_sent = serializers.IntegerField(read_only=True)
    deliveries_failed = serializers.IntegerField(read_only=True)
    deliveries_dead = serializers.IntegerField(read_only=True)

    class Meta:
        model = Message
        fields = MESSAGE_FIELDS
        read_only_fields = fields


class NotificationMessageDetailSerializer(NotificationMessageSerializer):
    deliveries = NotificationDeliverySerializer(many=True, read_only=True)

    class Meta(NotificationMessageSerializer.Meta):
        fields = (*MESSAGE_FIELDS, "deliveries")
        read_only_fields = fields


class NotificationEventSerializer(serializers.ModelSerializer):
    messages = NotificationMessageSerializer(many=True, read_only=True)

    class Meta:
        model = Event
        fields = (
            "id",
            "kind",
            "severity",
            *SCOPE_FIELDS,
            "subject",
            "text",
            "link",
            "dedup_key",
            "resolves",
            "at",
            "maintenance",
            "messages",
        )
        read_only_fields = fields


class NotificationEventDetailSerializer(NotificationEventSerializer):
    messages = NotificationMessageDetailSerializer(many=True, read_only=True)


class ConfirmSerializer(StrictSerializer):
    confirm = serializers.CharField(required=False, allow_blank=True, default="")
