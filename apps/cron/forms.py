"""Portal forms of the cron pages. They check shapes only (numbers are numbers); the services validate the job
(cron syntax, time zone, outbound URL, bounds, the Job template) and name the field at fault.

Headers are typed one per line as ``Name: value``; secret header values are write-only: the editor never
shows them, an empty box keeps the stored ones and "remove" clears them.
"""

from __future__ import annotations

from typing import Any

from django import forms

from apps.clusters.models import Application, Cluster
from apps.cron.models import (
    HTTP_FIELDS,
    KUBE_FIELDS,
    TIMING_FIELDS,
    CatchUp,
    Concurrency,
    FreezePolicy,
    Job,
    RunState,
    TargetKind,
)
from apps.cron.services.validation import METHODS

COMMON = ("name", "description", *TIMING_FIELDS, "target_kind")


class JobFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=100,
        label="Search",
        widget=forms.TextInput(attrs={"placeholder": "job, description or application"}),
    )
    state = forms.ChoiceField(
        required=False, label="Last run", choices=[("", "any"), ("never", "never ran"), *RunState.choices]
    )
    target_kind = forms.ChoiceField(required=False, label="Target", choices=[("", "any target"), *TargetKind.choices])
    application = forms.IntegerField(required=False, min_value=1)
    suspended = forms.TypedChoiceField(
        required=False,
        choices=[("", "any"), ("yes", "suspended"), ("no", "active")],
        coerce=lambda v: v == "yes",
        empty_value=None,
    )
    page = forms.IntegerField(required=False, min_value=1)


def _header_lines(value: str, field: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, line in enumerate(value.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, text = line.partition(":")
        if not sep:
            raise forms.ValidationError(f"line {number}: write a header as 'Name: value'", code=field)
        out[name.strip()] = text.strip()
    return out


def headers_text(headers: dict[str, str] | None) -> str:
    return "\n".join(f"{k}: {v}" for k, v in (headers or {}).items())


class JobForm(forms.Form):
    """One job: the fields of ``job_create`` / ``job_update``."""

    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    application = forms.ModelChoiceField(
        queryset=Application.objects.none(),
        required=False,
        empty_label="none (a global job)",
        help_text="its scope for access control; fixed once created",
    )
    schedule = forms.CharField(
        max_length=120,
        initial="*/5 * * * *",
        help_text="minute hour day-of-month month day-of-week, or @hourly, @daily, @weekly …",
        widget=forms.TextInput(attrs={"data-cron-preview": "schedule", "autocomplete": "off"}),
    )
    timezone = forms.CharField(
        max_length=64,
        initial="UTC",
        help_text="an IANA name such as Europe/Berlin",
        widget=forms.TextInput(attrs={"data-cron-preview": "timezone", "autocomplete": "off"}),
    )
    concurrency = forms.ChoiceField(choices=Concurrency.choices, initial=Concurrency.ALLOW)
    starting_deadline_seconds = forms.IntegerField(required=False, label="Starting deadline (s)")
    catch_up = forms.ChoiceField(choices=CatchUp.choices, initial=CatchUp.LATEST, label="After downtime")
    catch_up_limit = forms.IntegerField(initial=10, label="Catch-up limit (runs)")
    timeout_seconds = forms.IntegerField(initial=60, label="Timeout (s)")
    max_attempts = forms.IntegerField(initial=1, label="Max attempts")
    backoff_seconds = forms.IntegerField(initial=10, label="Backoff (s)")
    max_backoff_seconds = forms.IntegerField(initial=600, label="Max backoff (s)")
    keep_succeeded = forms.IntegerField(initial=20, label="Keep succeeded runs")
    keep_failed = forms.IntegerField(initial=20, label="Keep failed runs")
    spread = forms.BooleanField(required=False, label="Spread: fire at a stable second of the minute")
    freeze_policy = forms.ChoiceField(
        required=False, choices=FreezePolicy.choices, initial=FreezePolicy.RUN, label="During a change freeze"
    )
    grace_seconds = forms.IntegerField(initial=60, label="Grace before late (s)")
    target_kind = forms.ChoiceField(choices=TargetKind.choices, initial=TargetKind.HTTP, label="Target")
    http_method = forms.ChoiceField(choices=[(m, m) for m in METHODS], initial="POST", label="Method")
    http_url = forms.CharField(required=False, max_length=2000, label="URL")
    http_headers = forms.CharField(
        required=False, label="Headers", widget=forms.Textarea(attrs={"rows": 2}), help_text="one 'Name: value' a line"
    )
    http_secret_headers = forms.CharField(
        required=False,
        label="Secret headers",
        widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off"}),
        help_text="write-only, encrypted at rest; empty keeps the stored ones",
    )
    remove_secret_headers = forms.BooleanField(required=False, label="Remove the stored secret headers")
    http_body = forms.CharField(required=False, label="Body", widget=forms.Textarea(attrs={"rows": 3}))
    http_expected_statuses = forms.CharField(
        required=False, label="Expected statuses", help_text="comma-separated; empty means any 2xx"
    )
    cluster = forms.ModelChoiceField(queryset=Cluster.objects.none(), required=False, empty_label="—")
    namespace = forms.CharField(required=False, max_length=253)
    job_template = forms.CharField(
        required=False,
        label="Job template (YAML)",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        help_text="a batch/v1 Job; checked by the API server (dry-run) when saved",
    )

    def __init__(
        self,
        *args: Any,
        applications: Any = None,
        clusters: Any = None,
        job: Job | None = None,
        read_only: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.job = job
        app_field: Any = self.fields["application"]
        cluster_field: Any = self.fields["cluster"]
        app_field.queryset = applications if applications is not None else Application.objects.none()
        cluster_field.queryset = clusters if clusters is not None else Cluster.objects.none()
        if job is not None:
            app_field.disabled = True
        if read_only:
            for item in self.fields.values():
                item.disabled = True

    def clean_freeze_policy(self) -> str:
        return str(self.cleaned_data.get("freeze_policy") or FreezePolicy.RUN)

    def clean_http_headers(self) -> dict[str, str]:
        return _header_lines(self.cleaned_data.get("http_headers") or "", "http_headers")

    def clean_http_secret_headers(self) -> dict[str, str]:
        return _header_lines(self.cleaned_data.get("http_secret_headers") or "", "http_secret_headers")

    def values(self) -> dict[str, Any]:
        """The service's keyword arguments: the common fields and those of the chosen target kind."""
        data = self.cleaned_data
        values = {key: data.get(key) for key in COMMON}
        if self.job is None:
            values["application"] = data.get("application")
        if data.get("target_kind") == TargetKind.KUBERNETES:
            values.update({key: data.get(key) for key in KUBE_FIELDS})
            values["namespace"] = values["namespace"] or ""
        else:
            values.update({key: data.get(key) for key in HTTP_FIELDS})
            if data.get("remove_secret_headers"):
                values["http_secret_headers"] = {}
            elif data.get("http_secret_headers"):
                values["http_secret_headers"] = data["http_secret_headers"]
        return values


def job_initial(job: Job) -> dict[str, Any]:
    """The editor's initial values for ``job`` (secret header values never: they are write-only)."""
    import yaml

    initial: dict[str, Any] = {key: getattr(job, key) for key in COMMON}
    initial.update(
        application=job.application_id,
        http_method=job.http_method,
        http_url=job.http_url,
        http_headers=headers_text(job.http_headers),
        http_body=job.http_body,
        http_expected_statuses=", ".join(str(s) for s in job.http_expected_statuses or []),
        cluster=job.cluster_id,
        namespace=job.namespace,
        job_template=yaml.safe_dump(job.job_template, sort_keys=False) if job.job_template else "",
    )
    return initial


class ReasonForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500)


class DeleteForm(forms.Form):
    confirm = forms.CharField(max_length=100, label="Type the job's name to confirm")


class PreviewForm(forms.Form):
    schedule = forms.CharField(required=False, max_length=200)
    timezone = forms.CharField(required=False, max_length=100)
    after = forms.DateTimeField(required=False, help_text="ISO 8601; empty means now")
