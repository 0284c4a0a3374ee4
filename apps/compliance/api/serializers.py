"""Serializers of the compliance API (read-only for now)."""

from __future__ import annotations

from rest_framework import serializers

from apps.compliance.models import Result


class ResultSerializer(serializers.ModelSerializer):
    workload_kind = serializers.CharField(source="workload.kind", read_only=True)
    workload_name = serializers.CharField(source="workload.name", read_only=True)

    class Meta:
        model = Result
        fields = (
            "id",
            "workload",
            "workload_kind",
            "workload_name",
            "cluster",
            "namespace",
            "application",
            "policy",
            "check_id",
            "severity",
            "status",
            "message",
            "fix",
            "mode",
            "since",
            "evaluated_at",
        )
        read_only_fields = fields


class SummarySerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField())
    failing_by_severity = serializers.DictField(child=serializers.IntegerField())
    score = serializers.FloatField(allow_null=True, help_text="percent of passes among passes and fails")
