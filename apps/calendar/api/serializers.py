"""Calendar API serializers: types only; the services validate (naming the field)."""

from __future__ import annotations

from rest_framework import serializers

from apps.calendar.models import CalendarEntry
from apps.core.api.serializers import StrictSerializer


class CalendarEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = CalendarEntry
        fields = (
            "id",
            "kind",
            "title",
            "rrule",
            "start_date",
            "start_time",
            "timezone",
            "duration_minutes",
            "scope_kind",
            "scope_cluster",
            "scope_namespace",
            "scope_application",
            "reason",
            "owner",
            "enabled",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class CalendarEntryWriteSerializer(StrictSerializer):
    kind = serializers.CharField(required=False, help_text="freeze or maintenance")
    title = serializers.CharField(required=False, allow_blank=True)
    rrule = serializers.CharField(
        required=False, allow_blank=True, help_text="an RFC 5545 RRULE value (FREQ=WEEKLY;BYDAY=FR); empty: one-off"
    )
    start_date = serializers.DateField(required=False, help_text="the first occurrence's local date")
    start_time = serializers.TimeField(required=False, help_text="its local wall time (HH:MM)")
    timezone = serializers.CharField(required=False, help_text="an IANA time zone such as Europe/Berlin")
    duration_minutes = serializers.IntegerField(required=False, help_text="elapsed minutes (DST does not change it)")
    scope_kind = serializers.CharField(required=False)
    scope_cluster = serializers.CharField(required=False, allow_blank=True)
    scope_namespace = serializers.CharField(required=False, allow_blank=True)
    scope_application = serializers.CharField(required=False, allow_blank=True)
    reason = serializers.CharField(required=False, allow_blank=True)
    owner = serializers.CharField(required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class CalendarScopeSerializer(serializers.Serializer):
    kind = serializers.CharField()
    cluster = serializers.CharField()
    namespace = serializers.CharField()
    application = serializers.CharField()


class CalendarOccurrenceSerializer(serializers.Serializer):
    entry = serializers.IntegerField()
    kind = serializers.CharField()
    title = serializers.CharField()
    reason = serializers.CharField()
    owner = serializers.CharField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    scope = CalendarScopeSerializer()


class CalendarStatusSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    frozen = serializers.BooleanField()
    in_maintenance = serializers.BooleanField()
    freeze = CalendarOccurrenceSerializer(allow_null=True, help_text="the active freeze (ends_at: until when)")
    maintenance = CalendarOccurrenceSerializer(allow_null=True)
    next = CalendarOccurrenceSerializer(many=True, help_text="the next windows, within 90 days")
