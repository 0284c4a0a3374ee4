from __future__ import annotations

from rest_framework import serializers

from apps.audit.chain import HASHED_FIELDS
from apps.audit.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = (*HASHED_FIELDS, "hash")
        read_only_fields = fields
