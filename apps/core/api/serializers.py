from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictFieldsMixin(serializers.Serializer):
    """Reject unknown input fields instead of silently ignoring them (a typo must not go unnoticed)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            known = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - known)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class StrictModelSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """A ModelSerializer that refuses unknown fields by name."""


StrictSerializer = StrictFieldsMixin


class ReasonSerializer(StrictSerializer):
    """An action's optional reason (recorded in the audit trail)."""

    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
