"""Portal forms of the scaling pages. They check shapes only (numbers are numbers); the services validate the
policy itself (min <= max, known metrics, PromQL Prometheus accepts, RRULEs) and name the field at fault.

The policy editor has repeated rows (metric targets, schedule windows) as numbered fields; an "add a row"
button re-shows the form with one more empty row, without saving.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from typing import Any

from django import forms

from apps.scaler import engine, prometheus
from apps.scaler.models import ConflictMode, Mode, PolicyStatus, ScalingPolicy

MAX_METRIC_ROWS = 10
MAX_SCHEDULE_ROWS = 50
METRIC_SOURCES = [*prometheus.TEMPLATES, prometheus.CUSTOM]
INTEGER_BEHAVIOUR = {"max_step_up_pods", "max_step_down_pods", "flap_guard_max_reversals"}
BEHAVIOUR_LABELS = {
    "scale_up_stabilization_s": "Scale-up stabilisation window (s)",
    "scale_down_stabilization_s": "Scale-down stabilisation window (s)",
    "max_step_up_pods": "Max step up (pods)",
    "max_step_up_percent": "Max step up (%)",
    "max_step_down_pods": "Max step down (pods)",
    "max_step_down_percent": "Max step down (%)",
    "cooldown_up_s": "Cooldown before scaling up (s)",
    "cooldown_down_s": "Cooldown before scaling down (s)",
    "tolerance": "Tolerance (0.1 = ±10 %)",
    "flap_guard_window_s": "Flap guard window (s)",
    "flap_guard_max_reversals": "Flap guard: reversals allowed in the window",
    "max_metric_age_s": "Ignore samples older than (s)",
}
BEHAVIOUR_FIELDS = [f.name for f in dataclass_fields(engine.Behavior)]
SCHEDULE_PARTS = ("name", "rrule", "timezone", "duration_minutes", "min_replicas", "max_replicas", "priority")
GROUPS = ("metrics", "behavior", "schedules")


class FleetFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "any status"), *PolicyStatus.choices])
    mode = forms.ChoiceField(required=False, choices=[("", "any mode"), *Mode.choices])
    cluster = forms.IntegerField(required=False, min_value=1)
    q = forms.CharField(
        required=False,
        max_length=100,
        label="Search",
        widget=forms.TextInput(attrs={"placeholder": "application, namespace or policy"}),
    )
    page = forms.IntegerField(required=False, min_value=1)


class ReasonForm(forms.Form):
    on = forms.TypedChoiceField(choices=[("on", "on"), ("off", "off")], coerce=lambda v: v == "on")
    reason = forms.CharField(max_length=500, help_text="goes into the audit trail")


class PauseForm(ReasonForm):
    confirm = forms.BooleanField(label="Yes, change it for every application")


class ReplayForm(forms.Form):
    TRACES = [
        ("ramp", "Ramp (low → high over 5 minutes)"),
        ("spike", "Spike (5 times the base for 5 minutes)"),
        ("daily", "Daily cycle with ±20 % noise (compressed to 1 h)"),
        ("recorded_24h", "Recorded: the last 24 h of this application's decisions"),
        ("recorded_7d", "Recorded: the last 7 days of this application's decisions"),
    ]
    trace = forms.ChoiceField(choices=TRACES, initial="spike")
    policy = forms.IntegerField(required=False, widget=forms.HiddenInput)


def _number(label: str, *, integer: bool = False, required: bool = False) -> forms.Field:
    if integer:
        return forms.IntegerField(required=required, label=label)
    return forms.FloatField(required=required, label=label)


class PolicyForm(forms.Form):
    """One scaling policy: the fields of ``policy_create`` / ``policy_update``."""

    name = forms.CharField(max_length=100, initial="default")
    workload = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        label="Workload",
        help_text="empty: the application's only Deployment or StatefulSet",
    )
    enabled = forms.BooleanField(required=False, initial=True)
    mode = forms.ChoiceField(choices=Mode.choices, initial=Mode.RECOMMEND)
    min_replicas = forms.IntegerField(initial=1, label="Min replicas")
    max_replicas = forms.IntegerField(initial=10, label="Max replicas")
    predictive = forms.BooleanField(required=False, label="Predictive (scale for the forecast over pod start-up)")
    conflict_mode = forms.ChoiceField(
        choices=ConflictMode.choices,
        initial=ConflictMode.REFUSE,
        label="When another controller owns the replica count",
    )

    def __init__(
        self,
        *args: Any,
        workloads: list[tuple[int, str]] = (),  # type: ignore[assignment]
        metric_rows: int = 1,
        schedule_rows: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.group_errors: dict[str, list[str]] = {g: [] for g in GROUPS}
        if self.is_bound:
            metric_rows = _rows(self.data.get("metric_rows"), metric_rows, MAX_METRIC_ROWS)
            schedule_rows = _rows(self.data.get("schedule_rows"), schedule_rows, MAX_SCHEDULE_ROWS)
            if "add_metric" in self.data:
                metric_rows = min(metric_rows + 1, MAX_METRIC_ROWS)
            if "add_schedule" in self.data:
                schedule_rows = min(schedule_rows + 1, MAX_SCHEDULE_ROWS)
        self.metric_count, self.schedule_count = metric_rows, schedule_rows
        workload_field = self.fields["workload"]
        assert isinstance(workload_field, forms.TypedChoiceField)
        workload_field.choices = [("", "automatic"), *workloads]
        for key in BEHAVIOUR_FIELDS:
            self.fields[f"behavior_{key}"] = _number(BEHAVIOUR_LABELS.get(key, key), integer=key in INTEGER_BEHAVIOUR)
        for i in range(metric_rows):
            sources = [("", "—"), *[(s, s) for s in METRIC_SOURCES]]
            posted = self.data.get(f"metric_{i}_source") if self.is_bound else None
            if posted and posted not in METRIC_SOURCES:
                sources.append((posted, posted))  # keep what was sent; the service names it unknown
            self.fields[f"metric_{i}_source"] = forms.CharField(
                required=False, label="Metric", widget=forms.Select(choices=sources)
            )
            self.fields[f"metric_{i}_name"] = forms.CharField(required=False, max_length=63, label="Name")
            self.fields[f"metric_{i}_target"] = forms.FloatField(required=False, label="Target")
            self.fields[f"metric_{i}_kind"] = forms.ChoiceField(
                required=False, label="Kind (custom)", choices=[("", "—"), *[(k, k) for k in engine.METRIC_KINDS]]
            )
            self.fields[f"metric_{i}_query"] = forms.CharField(
                required=False,
                max_length=4000,
                label="PromQL (custom)",
                widget=forms.Textarea(
                    attrs={
                        "rows": 2,
                        "spellcheck": "false",
                        "placeholder": "sum by (pod) (rate(x_total{$selector}[1m]))",
                    }
                ),
            )
        for i in range(schedule_rows):
            self.fields[f"schedule_{i}_name"] = forms.CharField(required=False, max_length=100, label="Name")
            self.fields[f"schedule_{i}_rrule"] = forms.CharField(
                required=False,
                max_length=1000,
                label="RRULE",
                widget=forms.TextInput(attrs={"placeholder": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8;BYMINUTE=0"}),
            )
            self.fields[f"schedule_{i}_timezone"] = forms.CharField(
                required=False, max_length=64, label="Time zone", initial="UTC"
            )
            self.fields[f"schedule_{i}_duration_minutes"] = forms.IntegerField(required=False, label="Minutes")
            self.fields[f"schedule_{i}_min_replicas"] = forms.IntegerField(required=False, label="Floor")
            self.fields[f"schedule_{i}_max_replicas"] = forms.IntegerField(required=False, label="Ceiling")
            self.fields[f"schedule_{i}_priority"] = forms.IntegerField(required=False, label="Priority", initial=0)

    # --- rows for the template --------------------------------------------------------------------------------

    def metric_row_fields(self) -> list[dict[str, Any]]:
        parts = ("source", "name", "target", "kind", "query")
        return [{p: self[f"metric_{i}_{p}"] for p in parts} for i in range(self.metric_count)]

    def schedule_row_fields(self) -> list[dict[str, Any]]:
        return [{p: self[f"schedule_{i}_{p}"] for p in SCHEDULE_PARTS} for i in range(self.schedule_count)]

    def behaviour_fields(self) -> list[Any]:
        return [self[f"behavior_{key}"] for key in BEHAVIOUR_FIELDS]

    # --- values for the services ------------------------------------------------------------------------------

    def metrics(self) -> list[dict[str, Any]]:
        data, out = self.cleaned_data, []
        for i in range(self.metric_count):
            source = data.get(f"metric_{i}_source") or ""
            if not source:
                continue
            item: dict[str, Any] = {
                "name": data.get(f"metric_{i}_name") or source,
                "source": source,
                "target": data.get(f"metric_{i}_target"),
            }
            if source == prometheus.CUSTOM:
                item["kind"] = data.get(f"metric_{i}_kind") or "per_pod"
                item["query"] = data.get(f"metric_{i}_query") or ""
            out.append(item)
        return out

    def behavior(self) -> dict[str, Any]:
        return {
            k: self.cleaned_data[f"behavior_{k}"]
            for k in BEHAVIOUR_FIELDS
            if self.cleaned_data.get(f"behavior_{k}") is not None
        }

    def schedules(self) -> list[dict[str, Any]]:
        data, out = self.cleaned_data, []
        for i in range(self.schedule_count):
            row = {p: data.get(f"schedule_{i}_{p}") for p in SCHEDULE_PARTS}
            if not row["name"] and not row["rrule"]:
                continue
            row["timezone"] = row["timezone"] or "UTC"
            row["priority"] = row["priority"] or 0
            out.append(row)
        return out

    def values(self) -> dict[str, Any]:
        """Everything the services take (the workload as its id; the view resolves it)."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "enabled": bool(data.get("enabled")),
            "mode": data["mode"],
            "min_replicas": data["min_replicas"],
            "max_replicas": data["max_replicas"],
            "predictive": bool(data.get("predictive")),
            "conflict_mode": data["conflict_mode"],
            "metrics": self.metrics(),
            "behavior": self.behavior(),
            "schedules": self.schedules(),
        }

    def add_service_error(self, field: str | None, message: str) -> None:
        """Show a service's error on the field it names (a group of rows, or a plain field)."""
        if field in self.group_errors:
            self.group_errors[field].append(message)
        elif field and field in self.fields:
            self.add_error(field, message)
        else:
            self.add_error(None, message)

    @property
    def has_group_errors(self) -> bool:
        return any(self.group_errors.values())


def _rows(raw: Any, default: int, most: int) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = default
    return max(1, min(value, most))


def policy_initial(policy: ScalingPolicy | None) -> tuple[dict[str, Any], int, int]:
    """The editor's initial values for a policy (or a new one), with its row counts (one spare row each)."""
    if policy is None:
        initial: dict[str, Any] = {"metric_0_source": "cpu", "metric_0_target": 0.7}
        return initial, 2, 1
    initial = {
        "name": policy.name,
        "workload": policy.workload_id or "",
        "enabled": policy.enabled,
        "mode": policy.mode,
        "min_replicas": policy.min_replicas,
        "max_replicas": policy.max_replicas,
        "predictive": policy.predictive,
        "conflict_mode": policy.conflict_mode,
    }
    for key, value in (policy.behavior or {}).items():
        initial[f"behavior_{key}"] = value
    for i, metric in enumerate(policy.metrics):
        initial.update(
            {
                f"metric_{i}_source": metric.get("source") or metric.get("name"),
                f"metric_{i}_name": metric.get("name"),
                f"metric_{i}_target": metric.get("target"),
                f"metric_{i}_kind": metric.get("kind") if metric.get("source") == prometheus.CUSTOM else "",
                f"metric_{i}_query": metric.get("query") or "",
            }
        )
    windows = list(policy.schedules.all())
    for i, window in enumerate(windows):
        for part in SCHEDULE_PARTS:
            initial[f"schedule_{i}_{part}"] = getattr(window, part)
    metric_rows = min(len(policy.metrics) + 1, MAX_METRIC_ROWS)
    return initial, metric_rows, min(len(windows) + 1, MAX_SCHEDULE_ROWS)
