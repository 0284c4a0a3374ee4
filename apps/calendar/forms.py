"""Portal forms of the calendar: shapes only (the services validate the rest, naming the field)."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.calendar.models import CalendarEntry, EntryKind
from apps.core.access import ScopeKind

FIELDS = (
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
)
PREVIEW = {
    "hx-get": "",
    "hx-trigger": "change delay:300ms",
    "hx-target": "#calendar-preview",
    "hx-include": "#calendar-form",
}


class EntryForm(forms.Form):
    kind = forms.ChoiceField(choices=EntryKind.choices)
    title = forms.CharField(max_length=200)
    rrule = forms.CharField(
        required=False,
        max_length=300,
        label="Repeat (RRULE)",
        help_text="RFC 5545, e.g. FREQ=WEEKLY;BYDAY=FR or FREQ=MONTHLY;BYDAY=1SA; empty for a one-off",
    )
    start_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="Starts on (local date)")
    start_time = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}), label="At (local wall time)")
    timezone = forms.CharField(max_length=64, initial="UTC", help_text="an IANA name such as Europe/Berlin")
    duration_minutes = forms.IntegerField(
        min_value=1, label="Duration (minutes)", help_text="elapsed time: a DST change inside does not alter it"
    )
    scope_kind = forms.ChoiceField(choices=ScopeKind.choices, initial=ScopeKind.GLOBAL, label="Scope")
    scope_cluster = forms.CharField(required=False, max_length=32, label="Cluster id")
    scope_namespace = forms.CharField(required=False, max_length=253, label="Namespace")
    scope_application = forms.CharField(required=False, max_length=253, label="Application")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    owner = forms.CharField(max_length=150, help_text="who answers for it")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, preview_url: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("rrule", "start_date", "start_time", "timezone", "duration_minutes"):
            self.fields[name].widget.attrs.update({**PREVIEW, "hx-get": preview_url})

    def values(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in FIELDS}


def initial_of(entry: CalendarEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in FIELDS}


class CalendarFilterForm(forms.Form):
    view = forms.ChoiceField(required=False, choices=[("month", "month"), ("week", "week")])
    date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    kind = forms.ChoiceField(required=False, choices=[("", "any kind"), *EntryKind.choices])


class DeleteForm(forms.Form):
    confirm = forms.BooleanField(label="Yes, delete this entry")
