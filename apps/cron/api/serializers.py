"""Serializers of the cron API. Answers never carry a secret header's value (its name only) nor the signing
secret, which only the create and rotate answers carry, once. Write serializers check types only; every rule
is the service's (:mod:`apps.cron.services.validation`), which names the field at fault."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.core.api.serializers import StrictSerializer
from apps.cron import schedule
from apps.cron.models import HTTP_FIELDS, KUBE_FIELDS, TIMING_FIELDS, Attempt, Job, Run

JOB_FIELDS: tuple[str, ...] = (
    "id",
    "name",
    "description",
    "application",
    "schedule_description",
    "suspended",
    *TIMING_FIELDS,
    "target_kind",
    *HTTP_FIELDS,
    "http_secret_header_names",
    *KUBE_FIELDS,
    "declared",
    "version",
    "next_slot_at",
    "next_due_at",
    "last_state",
    "last_slot",
    "created_at",
    "updated_at",
)


class JobSerializer(serializers.ModelSerializer):
    schedule_description = serializers.SerializerMethodField()
    last_state = serializers.CharField(read_only=True, allow_null=True, help_text="the latest started run's state")
    last_slot = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = JOB_FIELDS
        read_only_fields = fields

    def get_schedule_description(self, job: Job) -> str:
        return schedule.explain(job.schedule)


class JobCreatedSerializer(JobSerializer):
    signing_secret = serializers.CharField(read_only=True, help_text="shown once: receivers verify signatures")

    class Meta(JobSerializer.Meta):
        fields = (*JOB_FIELDS, "signing_secret")
        read_only_fields = fields


class JobWriteSerializer(StrictSerializer):
    """Types only; the application and the cluster by id."""

    name = serializers.CharField(required=False, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    application = serializers.IntegerField(required=False, allow_null=True)
    cluster = serializers.IntegerField(required=False, allow_null=True)
    namespace = serializers.CharField(required=False, allow_blank=True)
    schedule = serializers.CharField(required=False, allow_blank=True)
    timezone = serializers.CharField(required=False, allow_blank=True)
    suspended = serializers.BooleanField(required=False)
    concurrency = serializers.CharField(required=False)
    starting_deadline_seconds = serializers.IntegerField(required=False, allow_null=True)
    catch_up = serializers.CharField(required=False)
    catch_up_limit = serializers.IntegerField(required=False)
    timeout_seconds = serializers.IntegerField(required=False)
    max_attempts = serializers.IntegerField(required=False)
    backoff_seconds = serializers.IntegerField(required=False)
    max_backoff_seconds = serializers.IntegerField(required=False)
    keep_succeeded = serializers.IntegerField(required=False)
    keep_failed = serializers.IntegerField(required=False)
    spread = serializers.BooleanField(required=False)
    grace_seconds = serializers.IntegerField(required=False)
    freeze_policy = serializers.CharField(required=False, help_text="run or skip during a change freeze")
    target_kind = serializers.CharField(required=False)
    http_method = serializers.CharField(required=False)
    http_url = serializers.CharField(required=False, allow_blank=True)
    http_headers = serializers.JSONField(required=False)
    http_secret_headers = serializers.JSONField(
        required=False, write_only=True, help_text="{name: value}; write-only (answers show the names only)"
    )
    http_body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    http_expected_statuses = serializers.JSONField(required=False)
    job_template = serializers.JSONField(required=False, help_text="a batch/v1 Job: a mapping or YAML text")


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = (
            "number",
            "worker",
            "started_at",
            "finished_at",
            "outcome",
            "status_code",
            "response_headers",
            "body_excerpt",
            "error",
            "duration_ms",
        )
        read_only_fields = fields


RUN_FIELDS: tuple[str, ...] = (
    "id",
    "job",
    "slot",
    "due_at",
    "state",
    "reason",
    "skip_reason",
    "manual",
    "requested_by",
    "attempts",
    "started_at",
    "finished_at",
    "lateness_ms",
    "duration_ms",
    "late",
    "kube_job",
    "created_at",
)


class RunSerializer(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = RUN_FIELDS
        read_only_fields = fields


class RunDetailSerializer(RunSerializer):
    attempt_rows = AttemptSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = (*RUN_FIELDS, "attempt_rows")
        read_only_fields = fields


class DeleteSerializer(StrictSerializer):
    confirm = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class SecretSerializer(serializers.Serializer):
    signing_secret = serializers.CharField(read_only=True)


class PreviewSlotSerializer(serializers.Serializer):
    utc = serializers.DateTimeField()
    local = serializers.CharField()
    dst_shift = serializers.BooleanField(help_text="the zone's UTC offset changed since the previous run")


class PreviewSerializer(serializers.Serializer):
    schedule = serializers.CharField()
    timezone = serializers.CharField()
    description = serializers.CharField()
    runs = PreviewSlotSerializer(many=True)

    @staticmethod
    def of(expression: str, tz: str, slots: list[Any]) -> dict[str, Any]:
        return {
            "schedule": expression,
            "timezone": tz,
            "description": schedule.explain(expression),
            "runs": [{"utc": s.utc, "local": s.local.isoformat(), "dst_shift": s.offset_changed} for s in slots],
        }
