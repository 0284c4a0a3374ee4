from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from apps.audit.admin_mixins import AuditedModelAdmin
from apps.users.models import User


@admin.register(User)
class UserAdmin(AuditedModelAdmin, DjangoUserAdmin):
    fieldsets = (*DjangoUserAdmin.fieldsets, ("ICC", {"fields": ("display_name",)}))  # type: ignore[misc]
    list_display = ("username", "email", "display_name", "is_staff", "is_active", "last_login")
    audit_secret_fields = ("password", "password1", "password2")
