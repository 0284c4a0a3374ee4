"""Serializers of the scaler API (validation of meaning lives in apps.scaler.services)."""

from __future__ import annotations

from rest_framework import serializers

from apps.core.api.serializers import StrictSerializer
from apps.scaler.models import ConflictMode, Decision, Mode, ScalingPolicy, ScheduleWindow


class ScheduleWindowSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScheduleWindow
        fields = ("name", "rrule", "timezone", "duration_minutes", "min_replicas", "max_replicas", "priority")
        read_only_fields = fields


class PolicySerializer(serializers.ModelSerializer):
    schedules = ScheduleWindowSerializer(many=True, read_only=True)

    class Meta:
        model = ScalingPolicy
        fields = (
            "id",
            "application",
            "workload",
            "name",
            "enabled",
            "mode",
            "min_replicas",
            "max_replicas",
            "metrics",
            "behavior",
            "predictive",
            "conflict_mode",
            "kill_switch",
            "status",
            "status_message",
            "version",
            "last_evaluated_at",
            "schedules",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class PolicyWriteSerializer(StrictSerializer):
    """Types only; every rule (min <= max, known metrics, PromQL Prometheus accepts, valid RRULEs) is the service's."""

    application = serializers.IntegerField(required=False)
    workload = serializers.IntegerField(required=False, allow_null=True)
    name = serializers.CharField(required=False, max_length=100)
    enabled = serializers.BooleanField(required=False)
    mode = serializers.ChoiceField(choices=Mode.choices, required=False)
    min_replicas = serializers.IntegerField(required=False, min_value=0, max_value=10000)
    max_replicas = serializers.IntegerField(required=False, min_value=0, max_value=10000)
    metrics = serializers.JSONField(
        required=False,
        help_text='[{"name": "cpu", "target": 0.6}, {"name": "q", "source": "custom", "kind": "value", '
        '"query": "...", "target": 10}]',
    )
    behavior = serializers.JSONField(required=False)
    predictive = serializers.BooleanField(required=False)
    conflict_mode = serializers.ChoiceField(choices=ConflictMode.choices, required=False)
    schedules = serializers.JSONField(required=False)


class DecisionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Decision
        fields = (
            "id",
            "policy",
            "application",
            "at",
            "trigger",
            "current_replicas",
            "desired_replicas",
            "outcome",
            "reason",
            "reasons",
            "inputs",
            "forecast",
            "policy_version",
            "duration_ms",
        )
        read_only_fields = fields


class SwitchSerializer(StrictSerializer):
    on = serializers.BooleanField()
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class PauseSerializer(serializers.Serializer):
    paused = serializers.BooleanField(read_only=True)
    paused_reason = serializers.CharField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class SignalValueSerializer(serializers.Serializer):
    pod = serializers.CharField()
    value = serializers.FloatField()
    timestamp = serializers.CharField(required=False, help_text="ISO 8601 with offset, or Unix seconds")


class SignalBatchSerializer(serializers.Serializer):
    """Documentation only: the service checks every value itself (and counts refusals)."""

    application = serializers.IntegerField(required=False, help_text="Implied for a ServiceAccount token.")
    metric = serializers.CharField()
    values = SignalValueSerializer(many=True)


class AcceptedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()


class AlertsResultSerializer(serializers.Serializer):
    matched = serializers.IntegerField()
    evaluations = serializers.IntegerField()
    unmatched = serializers.IntegerField()
