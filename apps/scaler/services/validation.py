"""Validation of scaling policies: every input checked and named on error (the result holds only what was given)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import fields as dataclass_fields
from typing import Any

from apps.clusters.models import Application, Workload
from apps.core.errors import DomainError, ForbiddenError, UnavailableError
from apps.scaler import engine, prometheus, schedules
from apps.scaler.models import ConflictMode, Mode, ScalingPolicy

METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_REPLICAS = 10000
BEHAVIOR_FIELDS = {f.name for f in dataclass_fields(engine.Behavior)}
METRIC_KEYS = {"name", "source", "target", "kind", "query"}
WINDOW_KEYS = {"name", "rrule", "timezone", "duration_minutes", "min_replicas", "max_replicas", "priority"}


def _whole(value: Any, field: str, *, low: int = 0, high: int = MAX_REPLICAS) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DomainError(f"a whole number from {low} to {high}", field=field)
    return value


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise DomainError("1 to 100 characters", field=field)
    return value.strip()


def _one_of(choices: list[str]) -> Callable[[Any, str], Any]:
    def check(value: Any, field: str) -> Any:
        if value not in choices:
            raise DomainError(f"one of {', '.join(choices)}", field=field)
        return value

    return check


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise DomainError("true or false", field=field)
    return value


# The plain fields, checked in this order (the first wrong one is the one named).
FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "name": _name,
    "mode": _one_of(Mode.values),
    "conflict_mode": _one_of(ConflictMode.values),
    "enabled": _flag,
    "predictive": _flag,
    "min_replicas": _whole,
    "max_replicas": _whole,
}


def clean_metrics(raw: Any) -> list[dict[str, Any]]:
    """Metric targets: ``[{"name", "source"?, "target", "kind"? (custom), "query"? (custom)}]``."""
    if not isinstance(raw, list) or not raw or len(raw) > 10:
        raise DomainError("give 1 to 10 metric targets", field="metrics")
    cleaned: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        entry = _clean_metric(item, f"metrics[{index}]")
        if any(other["name"] == entry["name"] for other in cleaned):
            raise DomainError(f"metrics[{index}]: the name {entry['name']!r} is used twice", field="metrics")
        cleaned.append(entry)
    for index, entry in enumerate(cleaned):
        if entry["source"] == prometheus.CUSTOM:
            _check_promql(entry["query"], f"metrics[{index}]")
    return cleaned


def _clean_metric(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise DomainError(f"{where}: expected an object", field="metrics")
    unknown = set(item) - METRIC_KEYS
    if unknown:
        raise DomainError(f"{where}: unknown keys {', '.join(sorted(unknown))}", field="metrics")
    name = item.get("name")
    if not isinstance(name, str) or not METRIC_NAME.match(name):
        raise DomainError(f"{where}: name must match {METRIC_NAME.pattern}", field="metrics")
    source = item.get("source", name)
    if source not in prometheus.TEMPLATES and source != prometheus.CUSTOM:
        known = ", ".join([*prometheus.TEMPLATES, prometheus.CUSTOM])
        raise DomainError(f"{where}: unknown metric {source!r}; known: {known}", field="metrics")
    target = item.get("target")
    if not isinstance(target, (int, float)) or isinstance(target, bool) or not math.isfinite(target) or target <= 0:
        raise DomainError(f"{where}: target must be a number > 0", field="metrics")
    entry: dict[str, Any] = {"name": name, "source": source, "target": float(target)}
    if source == prometheus.CUSTOM:
        entry.update(_custom_metric(item, where))
    else:
        entry["kind"] = _template_kind(item, source, where)
    return entry


def _custom_metric(item: dict[str, Any], where: str) -> dict[str, Any]:
    kind = item.get("kind", "per_pod")
    if kind not in engine.METRIC_KINDS:
        raise DomainError(f"{where}: unknown kind {kind!r}; known: {', '.join(engine.METRIC_KINDS)}", field="metrics")
    query = item.get("query")
    if not isinstance(query, str) or not query.strip() or len(query) > 4000:
        raise DomainError(f"{where}: a custom metric needs its PromQL query", field="metrics")
    return {"kind": kind, "query": query.strip()}


def _template_kind(item: dict[str, Any], source: str, where: str) -> str:
    if "query" in item:
        raise DomainError(f"{where}: only custom metrics take a query", field="metrics")
    template_kind = prometheus.TEMPLATES[source].kind
    if item.get("kind", template_kind) != template_kind:
        raise DomainError(f"{where}: {source} is a {template_kind} metric", field="metrics")
    return template_kind


def _custom_key(item: Any) -> tuple[str, str] | None:
    if not isinstance(item, dict) or item.get("source") != prometheus.CUSTOM:
        return None
    query = item.get("query")
    return str(item.get("kind", "per_pod")), query.strip() if isinstance(query, str) else repr(query)


def _check_custom_allowed(raw: Any, current: ScalingPolicy | None) -> None:
    """Rule: storing a custom PromQL metric is configuring at global scope — an expression reads any series
    Prometheus holds, not only the application's. Others pick the templates (keyed on the application's pods);
    a custom metric a global admin already stored in this policy may stay as it is. A call outside any request
    (the shell, a task) is trusted."""
    from apps.core import context
    from apps.core.access import GLOBAL, Action, can_at

    if not isinstance(raw, list):
        return
    kept = {_custom_key(m) for m in (current.metrics if current is not None else [])} - {None}
    new = [index for index, item in enumerate(raw) if _custom_key(item) is not None and _custom_key(item) not in kept]
    user = context.current().user
    if new and user is not None and not can_at(user, Action.CONFIGURE, GLOBAL):
        raise ForbiddenError(
            f"metrics[{new[0]}]: a custom PromQL metric needs the admin role at global scope; choose one of the "
            f"templates ({', '.join(prometheus.TEMPLATES)}), which read only the application's pods",
            field="metrics",
        )


def _check_promql(query: str, where: str) -> None:
    if not prometheus.configured():
        raise DomainError(
            f"{where}: PROMETHEUS_URL is not set, so a custom PromQL query can be neither checked nor evaluated",
            field="metrics",
        )
    try:
        prometheus.validate(query)
    except prometheus.PromQLRejected as exc:
        raise DomainError(f"{where}: {exc.message}", field="metrics", code="promql_rejected") from None
    except prometheus.PrometheusUnavailable as exc:
        raise UnavailableError(f"{where}: cannot check the query now: {exc.message}", field="metrics") from None


def clean_behavior(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise DomainError("expected an object of behaviour settings", field="behavior")
    unknown = set(raw) - BEHAVIOR_FIELDS
    if unknown:
        raise DomainError(
            f"unknown settings {', '.join(sorted(unknown))}; known: {', '.join(sorted(BEHAVIOR_FIELDS))}",
            field="behavior",
        )
    for key, value in raw.items():
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise DomainError(f"{key}: expected a number or null", field="behavior")
    try:
        engine.Behavior(**raw)
    except (TypeError, ValueError) as exc:
        raise DomainError(str(exc), field="behavior") from None
    return dict(raw)


def clean_schedules(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > 50:
        raise DomainError("expected a list of at most 50 windows", field="schedules")
    return [_clean_window(item) for item in raw]


def _clean_window(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or set(item) - WINDOW_KEYS:
        raise DomainError(f"each window is an object with {', '.join(sorted(WINDOW_KEYS))}", field="schedules")
    window = {
        "name": item.get("name") or "",
        "rrule": item.get("rrule") or "",
        "timezone": item.get("timezone") or "UTC",
        "duration_minutes": item.get("duration_minutes"),
        "min_replicas": item.get("min_replicas"),
        "max_replicas": item.get("max_replicas"),
        "priority": item.get("priority", 0),
    }
    if not isinstance(window["name"], str) or not isinstance(window["rrule"], str):
        raise DomainError("name and rrule are strings", field="schedules")
    if not isinstance(window["priority"], int) or isinstance(window["priority"], bool):
        raise DomainError(f"window {window['name']!r}: priority must be a whole number", field="schedules")
    schedules.validate_window(
        rrule_text=window["rrule"],
        timezone=str(window["timezone"]),
        duration_minutes=window["duration_minutes"],
        min_replicas=window["min_replicas"],
        max_replicas=window["max_replicas"],
        name=window["name"],
    )
    return window


def _clean_workload(workload: Any, application: Application) -> Workload | None:
    if workload is None:
        return None
    if not isinstance(workload, Workload) or workload.application_id != application.pk:
        raise DomainError("not a workload of this application", field="workload")
    if workload.kind == "DaemonSet":
        raise DomainError("a DaemonSet runs one pod per node; it cannot be scaled", field="workload")
    return workload


def clean_policy(values: dict[str, Any], application: Application, current: ScalingPolicy | None) -> dict[str, Any]:
    """Validate the given fields (partial for updates); the result holds only what was given."""
    out = {name: check(values[name], name) for name, check in FIELDS.items() if name in values}
    low = out.get("min_replicas", current.min_replicas if current else 1)
    high = out.get("max_replicas", current.max_replicas if current else 10)
    if low > high:
        raise DomainError(f"max_replicas ({high}) is below min_replicas ({low})", field="max_replicas")
    if "workload" in values:
        out["workload"] = _clean_workload(values["workload"], application)
    if "metrics" in values:
        _check_custom_allowed(values["metrics"], current)
        out["metrics"] = clean_metrics(values["metrics"])
    if "behavior" in values:
        out["behavior"] = clean_behavior(values["behavior"])
    if "schedules" in values:
        out["schedules"] = clean_schedules(values["schedules"])
    return out
