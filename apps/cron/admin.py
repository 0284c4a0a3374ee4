"""Cron in the admin: a job's settings may be changed here, through the same services as the portal and the
API (validated, versioned, audited, the scheduler woken); jobs are created in the portal or the API (the
signing secret is shown once there). Secret header values and the signing secret are never shown; declared
jobs are read-only (their application declares them) except for suspending. Runs and attempts are read-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from apps.audit.admin_mixins import AuditedModelAdmin, ReadOnlyAdmin
from apps.core.errors import DomainError
from apps.cron.models import TIMING_FIELDS, Attempt, Job, Run
from apps.cron.services import jobs as job_services
from apps.cron.services.validation import clean_job

EDITABLE = ("description", "suspended", *TIMING_FIELDS, "http_method", "http_url", "http_body")
SHOWN = (
    "name",
    "application",
    "cluster",
    "namespace",
    "target_kind",
    "declared",
    "version",
    "http_headers",
    "http_secret_header_names",
    "http_expected_statuses",
    "job_template",
    "next_slot_at",
    "next_due_at",
    "created_by",
    "created_at",
    "updated_at",
)


class JobAdminForm(forms.ModelForm):
    """The changed settings are checked by the service's own validation, each error on its field."""

    class Meta:
        model = Job
        fields = EDITABLE

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        changed = {k: cleaned.get(k) for k in self.changed_data if k in EDITABLE and k != "suspended"}
        if changed and self.instance.pk:
            try:
                clean_job(changed, self.instance)
            except DomainError as exc:
                self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return cleaned


@admin.register(Job)
class JobAdmin(AuditedModelAdmin):
    form = JobAdminForm
    list_display = ("name", "application", "schedule", "timezone", "target_kind", "suspended", "declared", "version")
    list_filter = ("target_kind", "suspended", "declared", "concurrency")
    search_fields = ("name", "description", "application__name")
    list_select_related = ("application",)
    fields = (*SHOWN[:5], *EDITABLE, *SHOWN[5:])

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is not None and obj.declared:
            return tuple(f for f in self.fields if f != "suspended")
        return SHOWN

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # create in the portal or the API: the signing secret is shown once there

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Through the services (audited there, so the admin's own audit record is not written twice)."""
        current = Job.objects.get(pk=obj.pk)
        changed = {k: form.cleaned_data.get(k) for k in form.changed_data if k in EDITABLE and k != "suspended"}
        if changed and not current.declared:
            job_services.job_update(job=current, by=request.user, **changed)
        if "suspended" in form.changed_data:
            job_services.job_set_suspended(
                job=Job.objects.get(pk=obj.pk),
                suspended=bool(obj.suspended),
                reason="changed in the admin",
                by=request.user,
            )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        job_services.job_delete(job=obj, confirm=obj.name, by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for job in queryset:
            job_services.job_delete(job=job, confirm=job.name, by=request.user)


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ("job", "slot", "state", "skip_reason", "manual", "attempts", "lateness_ms", "duration_ms", "late")
    list_filter = ("state", "manual", "late")
    search_fields = ("job__name", "kube_job")
    list_select_related = ("job",)
    exclude = ("claim_token",)


@admin.register(Attempt)
class AttemptAdmin(ReadOnlyAdmin):
    list_display = ("run", "number", "outcome", "status_code", "duration_ms", "started_at")
    list_filter = ("outcome",)
    list_select_related = ("run__job",)
