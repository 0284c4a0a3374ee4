from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.core.api.serializers import StrictModelSerializer
from apps.users import services
from apps.users.models import User


class UserSerializer(StrictModelSerializer):
    password = serializers.CharField(
        write_only=True, required=False, allow_null=True, max_length=256, style={"input_type": "password"}
    )

    class Meta:
        model = User
        fields = ("id", *services.AUDITED_FIELDS, "date_joined", "last_login", "password")
        read_only_fields = ("id", "is_superuser", "date_joined", "last_login")

    def create(self, validated_data: dict[str, Any]) -> User:
        return services.user_create(by=self.context["request"].user, **validated_data)

    def update(self, instance: User, validated_data: dict[str, Any]) -> User:
        if "username" in validated_data or "password" in validated_data:
            field = "username" if "username" in validated_data else "password"
            raise serializers.ValidationError({field: ["Cannot be changed here."]})
        return services.user_update(user=instance, by=self.context["request"].user, **validated_data)
