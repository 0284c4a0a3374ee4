"""Admin changes go through the audit trail, with field-level diffs."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.forms import ModelForm
from django.http import HttpRequest

from apps.audit.redaction import diff
from apps.audit.services import audit_record
from apps.core.access import GLOBAL, Action, can, can_at, is_platform_superuser, restrict, scopes_for


def _model_action(obj: Model, verb: str) -> str:
    return f"{obj._meta.app_label}.{obj._meta.model_name}.{verb}"


class AuditedModelAdmin(admin.ModelAdmin):
    """Record admin adds, changes and deletions (inside the admin's own transaction)."""

    audit_secret_fields: tuple[str, ...] = ()

    def get_queryset(self, request: HttpRequest) -> Any:
        """The admin lists only what the user may read (the same restrict() as everywhere)."""
        return restrict(request.user, Action.READ, super().get_queryset(request))

    # Rule: in the admin (open to staff), ICC roles decide, not Django's model permissions: reading
    # needs a read grant somewhere; adding needs configure at global; changing or deleting an object
    # needs configure on that object.
    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_platform_superuser(request.user) or bool(scopes_for(request.user, Action.READ))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return self.has_module_permission(request)
        return can(request.user, Action.READ, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return can_at(request.user, Action.CONFIGURE, GLOBAL)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return bool(scopes_for(request.user, Action.CONFIGURE)) or is_platform_superuser(request.user)
        return can(request.user, Action.CONFIGURE, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        before = {name: form.initial.get(name) for name in form.changed_data} if change else {}
        super().save_model(request, obj, form, change)
        after = {name: form.cleaned_data.get(name) for name in form.changed_data}
        audit_record(
            action=_model_action(obj, "update" if change else "create"),
            target=obj,
            changes=diff(before, after, secret_fields=self.audit_secret_fields),
            message="changed in the admin" if change else "added in the admin",
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        audit_record(action=_model_action(obj, "delete"), target=obj, message="deleted in the admin")
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset:
            audit_record(action=_model_action(obj, "delete"), target=obj, message="deleted in the admin (bulk)")
        super().delete_queryset(request, queryset)


class ReadOnlyAdmin(AuditedModelAdmin):
    """Rows that change only through ICC's services (observed state, decisions, the trail itself): the
    admin lists and shows them to whoever may read them, and offers no add, change or delete."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
