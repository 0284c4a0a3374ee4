"""Serializers of the policy and binding API. Write serializers check types only; every rule (scope, mode, checks,
parameters, CEL compilation and limits) is the service's, which names the field at fault."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.compliance.dryrun import DryRun
from apps.compliance.models import Binding, Policy
from apps.compliance.policy_selectors import policy_checks
from apps.core.api.serializers import StrictSerializer


class CompliancePolicyCheckSerializer(serializers.Serializer):
    id = serializers.CharField()
    title = serializers.CharField()
    severity = serializers.CharField()
    category = serializers.CharField()
    description = serializers.CharField()
    remediation = serializers.CharField()
    parameters = serializers.JSONField(help_text="JSON Schema of the parameters a binding may set")


class CompliancePolicySerializer(serializers.ModelSerializer):
    kind = serializers.CharField(read_only=True, help_text="builtin or cel")
    severity = serializers.CharField(read_only=True)
    checks = serializers.SerializerMethodField()
    bindings_count = serializers.IntegerField(read_only=True, default=0, help_text="the bindings you may read")

    class Meta:
        model = Policy
        fields = (
            "id",
            "key",
            "name",
            "description",
            "kind",
            "severity",
            "validations",
            "variables",
            "match",
            "enabled",
            "version",
            "checks",
            "bindings_count",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    @extend_schema_field(CompliancePolicyCheckSerializer(many=True))
    def get_checks(self, policy: Policy) -> list[dict[str, Any]]:
        return [dict(c) for c in policy_checks(policy)]

    def to_representation(self, instance: Policy) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["bindings_count"] = getattr(instance, "bindings_count", None) or 0
        return data


class CompliancePolicyWriteSerializer(StrictSerializer):
    """A custom CEL policy (``key`` only on create); built-ins are enabled or disabled only."""

    key = serializers.CharField(required=False, max_length=100)
    name = serializers.CharField(required=False, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    severity = serializers.CharField(required=False, help_text="critical, high, medium, low or info")
    validations = serializers.JSONField(
        required=False, help_text='[{"expression", "message"?, "messageExpression"?}], as ValidatingAdmissionPolicy'
    )
    variables = serializers.JSONField(required=False, help_text='[{"name", "expression"}]')
    match = serializers.JSONField(required=False, help_text='{"kinds": [...], "namespaces": [...], "labels": {...}}')
    enabled = serializers.BooleanField(required=False)


class CompliancePolicyDeleteSerializer(StrictSerializer):
    confirm = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class CompliancePolicyTestSerializer(StrictSerializer):
    """An unsaved version of the policy (each field given replaces the stored one) against one workload."""

    workload = serializers.IntegerField(min_value=1)
    validations = serializers.JSONField(required=False)
    variables = serializers.JSONField(required=False)
    match = serializers.JSONField(required=False)
    params = serializers.JSONField(required=False)
    severity = serializers.CharField(required=False)


class ComplianceVerdictSerializer(serializers.Serializer):
    check_id = serializers.CharField()
    policy = serializers.CharField()
    severity = serializers.CharField()
    status = serializers.CharField(help_text="pass, fail, skip or error")
    message = serializers.CharField()
    fix = serializers.JSONField(allow_null=True)


class CompliancePolicyTestResultSerializer(serializers.Serializer):
    matched = serializers.BooleanField(help_text="whether the match rules select the workload")
    verdicts = ComplianceVerdictSerializer(many=True)


class ComplianceBindingSerializer(serializers.ModelSerializer):
    policy_key = serializers.CharField(source="policy.key", read_only=True)
    mode = serializers.CharField(read_only=True, help_text="audit, warn or enforce")
    scope_kind = serializers.CharField(read_only=True, help_text="global, cluster, namespace or application")

    class Meta:
        model = Binding
        fields = (
            "id",
            "policy",
            "policy_key",
            "check_id",
            "scope_kind",
            "scope_cluster",
            "scope_namespace",
            "scope_application",
            "mode",
            "params",
            "enabled",
            "warn_in_maintenance",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class ComplianceBindingWriteSerializer(StrictSerializer):
    policy = serializers.IntegerField(required=False, min_value=1, help_text="the policy's id (fixed once bound)")
    check_id = serializers.CharField(required=False, allow_blank=True, help_text="empty: every check")
    scope_kind = serializers.CharField(required=False)
    scope_cluster = serializers.CharField(required=False, allow_blank=True, help_text="a cluster id")
    scope_namespace = serializers.CharField(required=False, allow_blank=True)
    scope_application = serializers.CharField(required=False, allow_blank=True)
    mode = serializers.CharField(required=False, help_text="audit, warn or enforce")
    params = serializers.JSONField(required=False, help_text="built-ins: {check id: {parameter: value}}")
    enabled = serializers.BooleanField(required=False)
    warn_in_maintenance = serializers.BooleanField(
        required=False, help_text="answer enforce as warn while a maintenance window covers the workload"
    )


class ComplianceFailedCheckSerializer(serializers.Serializer):
    check_id = serializers.CharField()
    severity = serializers.CharField()
    message = serializers.CharField()
    mode = serializers.CharField()


class ComplianceFindingSerializer(serializers.Serializer):
    workload = serializers.IntegerField(source="workload.pk")
    workload_kind = serializers.CharField(source="workload.kind")
    workload_name = serializers.CharField(source="workload.name")
    cluster = serializers.IntegerField(source="workload.cluster_id")
    namespace = serializers.CharField(source="workload.namespace")
    application = serializers.IntegerField(source="workload.application_id", allow_null=True)
    outcome = serializers.CharField(help_text="deny (an enforce binding) or fail (audit or warn)")
    checks = ComplianceFailedCheckSerializer(many=True)


class ComplianceDryRunSerializer(serializers.Serializer):
    bindings = serializers.IntegerField(help_text="the bindings judged")
    evaluated = serializers.IntegerField(help_text="the workloads judged (those you may read, in scope)")
    failing = serializers.IntegerField(help_text="workloads that would fail or be denied, listed or not")
    denied = serializers.IntegerField()
    excepted = serializers.IntegerField(help_text="failures an active exception covers (not listed)")
    check_errors = serializers.IntegerField(source="errors", help_text="checks that could not be judged")
    complete = serializers.BooleanField(help_text="false when more workloads were in scope than one run judges")
    more = serializers.IntegerField(help_text="failing workloads not listed")
    findings = ComplianceFindingSerializer(many=True)

    @classmethod
    def of(cls, run: DryRun) -> dict[str, Any]:
        return dict(cls(run).data)
