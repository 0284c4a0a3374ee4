"""Admin changes go through the audit trail, with field-level diffs."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.forms import ModelForm
from django.http import HttpRequest

from apps.audit.redaction import diff
from apps.audit.services import audit_record
from apps.core.access import Action, restrict


def _model_action(obj: Model, verb: str) -> str:
    return f"{obj._meta.app_label}.{obj._meta.model_name}.{verb}"


class AuditedModelAdmin(admin.ModelAdmin):
    """Record admin adds, changes and deletions (inside the admin's own transaction)."""

    audit_secret_fields: tuple[str, ...] = ()

    def get_queryset(self, request: HttpRequest) -> Any:
        """The admin lists only what the user may read (the same restrict() as everywhere)."""
        return restrict(request.user, Action.READ, super().get_queryset(request))

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
