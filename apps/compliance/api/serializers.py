"""Serializers of the compliance API's reads: results, the summary, the history and the overview."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.compliance import selectors
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


class ComplianceTrendPointSerializer(serializers.Serializer):
    taken_at = serializers.DateTimeField()
    passed = serializers.IntegerField()
    failed = serializers.IntegerField()
    score = serializers.FloatField(allow_null=True)


class ComplianceReleaseSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="the application version (rollout) id")
    observed_at = serializers.DateTimeField(help_text="when the rollout was seen")
    new_failures = serializers.IntegerField(help_text="failing results that began with this release or after it")


class SummarySerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField())
    failing_by_severity = serializers.DictField(child=serializers.IntegerField())
    score = serializers.FloatField(allow_null=True, help_text="percent of passes among passes and fails")
    weighted_score = serializers.FloatField(
        allow_null=True,
        help_text="the same, each check weighted by severity: critical 8, high 4, medium 2, low 1, info 0",
    )
    trend = ComplianceTrendPointSerializer(many=True, help_text="the score at the last scans, oldest first")
    release = ComplianceReleaseSerializer(
        allow_null=True, help_text="with an application filter: its latest release and the failures new since"
    )


class ComplianceHistoryPointSerializer(serializers.Serializer):
    """One scan's counts over the selected scope (what the caller may read)."""

    taken_at = serializers.DateTimeField()
    passed = serializers.IntegerField(source="n_passed")
    failed = serializers.IntegerField(source="n_failed")
    errored = serializers.IntegerField(source="n_errored")
    skipped = serializers.IntegerField(source="n_skipped")
    excepted = serializers.IntegerField(source="n_excepted")
    score = serializers.FloatField(
        allow_null=True, read_only=True, help_text="percent of passes among passes and fails"
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        data["score"] = selectors.score(data["passed"], data["failed"])
        return data


class ComplianceHistoryPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ComplianceHistoryPointSerializer(many=True)


class ComplianceScopeCountsSerializer(serializers.Serializer):
    cluster = serializers.IntegerField()
    cluster_name = serializers.CharField()
    namespace = serializers.CharField(help_text='"" in the per-cluster list')
    passed = serializers.IntegerField()
    failed = serializers.IntegerField()
    errored = serializers.IntegerField()
    skipped = serializers.IntegerField()
    excepted = serializers.IntegerField()
    total = serializers.IntegerField()
    score = serializers.FloatField(allow_null=True)


class ComplianceOverviewSerializer(serializers.Serializer):
    clusters = ComplianceScopeCountsSerializer(many=True)
    namespaces = ComplianceScopeCountsSerializer(many=True)
