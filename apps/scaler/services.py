"""Writes of the scaler: policies (with schedules), the kill switch, the global pause and pushed signals.

Configuration changes are audited in the same transaction and bump the policy's version (decisions record the
version they were made under). Pushed signals are telemetry: validated strictly (refusals counted in
``/metrics``), stored briefly, not audited one by one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.audit.services import Actor, audit_record
from apps.clusters.models import Application, Pod, Workload
from apps.core.access import GLOBAL, Action, can, can_at
from apps.core.errors import DomainError, ForbiddenError, UnavailableError
from apps.scaler import engine, metrics, prometheus, schedules
from apps.scaler.models import ConflictMode, Mode, ScalerSettings, ScalingPolicy, ScheduleWindow, Signal
from apps.scaler.topics import publish_application

METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_REPLICAS = 10000
SIGNAL_FUTURE_SECONDS = 60
SIGNAL_PAST_SECONDS = 600
MAX_SIGNAL_VALUES = 1000
DEBOUNCE_SECONDS = 0.2  # signals arriving this close together share one evaluation
BEHAVIOR_FIELDS = {f.name for f in dataclass_fields(engine.Behavior)}


def _scope(application: Application) -> dict[str, str]:
    return {"cluster": str(application.cluster_id), "namespace": application.namespace, "application": application.name}


def _whole(value: Any, field: str, *, low: int = 0, high: int = MAX_REPLICAS) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DomainError(f"a whole number from {low} to {high}", field=field)
    return value


# --- validation -------------------------------------------------------------------------------------------------


def clean_metrics(raw: Any) -> list[dict[str, Any]]:  # noqa: PLR0912 - one check per rule
    """Metric targets: ``[{"name", "source"?, "target", "kind"? (custom), "query"? (custom)}]``."""
    known = ", ".join([*prometheus.TEMPLATES, prometheus.CUSTOM])
    if not isinstance(raw, list) or not raw or len(raw) > 10:
        raise DomainError("give 1 to 10 metric targets", field="metrics")
    cleaned: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        where = f"metrics[{index}]"
        if not isinstance(item, dict):
            raise DomainError(f"{where}: expected an object", field="metrics")
        unknown = set(item) - {"name", "source", "target", "kind", "query"}
        if unknown:
            raise DomainError(f"{where}: unknown keys {', '.join(sorted(unknown))}", field="metrics")
        name = item.get("name")
        if not isinstance(name, str) or not METRIC_NAME.match(name):
            raise DomainError(f"{where}: name must match {METRIC_NAME.pattern}", field="metrics")
        source = item.get("source", name)
        if source not in prometheus.TEMPLATES and source != prometheus.CUSTOM:
            raise DomainError(f"{where}: unknown metric {source!r}; known: {known}", field="metrics")
        target = item.get("target")
        if not isinstance(target, (int, float)) or isinstance(target, bool) or not math.isfinite(target) or target <= 0:
            raise DomainError(f"{where}: target must be a number > 0", field="metrics")
        entry: dict[str, Any] = {"name": name, "source": source, "target": float(target)}
        if source == prometheus.CUSTOM:
            kind = item.get("kind", "per_pod")
            if kind not in engine.METRIC_KINDS:
                raise DomainError(f"{where}: unknown kind {kind!r}; known: {', '.join(engine.METRIC_KINDS)}",
                                  field="metrics")  # fmt: skip
            query = item.get("query")
            if not isinstance(query, str) or not query.strip() or len(query) > 4000:
                raise DomainError(f"{where}: a custom metric needs its PromQL query", field="metrics")
            entry.update(kind=kind, query=query.strip())
        else:
            if "query" in item:
                raise DomainError(f"{where}: only custom metrics take a query", field="metrics")
            template_kind = prometheus.TEMPLATES[source].kind
            if item.get("kind", template_kind) != template_kind:
                raise DomainError(f"{where}: {source} is a {template_kind} metric", field="metrics")
            entry["kind"] = template_kind
        if any(other["name"] == name for other in cleaned):
            raise DomainError(f"{where}: the name {name!r} is used twice", field="metrics")
        cleaned.append(entry)
    for index, entry in enumerate(cleaned):
        if entry["source"] == prometheus.CUSTOM:
            _check_promql(entry["query"], f"metrics[{index}]")
    return cleaned


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
        raise DomainError(f"{where}: PROMETHEUS_URL is not set, so a custom PromQL query can be neither checked "
                          "nor evaluated", field="metrics")  # fmt: skip
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
        raise DomainError(f"unknown settings {', '.join(sorted(unknown))}; known: {', '.join(sorted(BEHAVIOR_FIELDS))}",
                          field="behavior")  # fmt: skip
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
    cleaned = []
    allowed = {"name", "rrule", "timezone", "duration_minutes", "min_replicas", "max_replicas", "priority"}
    for item in raw:
        if not isinstance(item, dict) or set(item) - allowed:
            raise DomainError(f"each window is an object with {', '.join(sorted(allowed))}", field="schedules")
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
            rrule_text=window["rrule"], timezone=str(window["timezone"]), duration_minutes=window["duration_minutes"],
            min_replicas=window["min_replicas"], max_replicas=window["max_replicas"], name=window["name"],
        )  # fmt: skip
        cleaned.append(window)
    return cleaned


def _clean(  # noqa: PLR0912 - one check per field
    values: dict[str, Any], application: Application, current: ScalingPolicy | None
) -> dict[str, Any]:
    """Validate the given fields (partial for updates); the result holds only what was given."""
    out: dict[str, Any] = {}
    if "name" in values:
        name = values["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise DomainError("1 to 100 characters", field="name")
        out["name"] = name.strip()
    if "mode" in values:
        if values["mode"] not in Mode.values:
            raise DomainError(f"one of {', '.join(Mode.values)}", field="mode")
        out["mode"] = values["mode"]
    if "conflict_mode" in values:
        if values["conflict_mode"] not in ConflictMode.values:
            raise DomainError(f"one of {', '.join(ConflictMode.values)}", field="conflict_mode")
        out["conflict_mode"] = values["conflict_mode"]
    for flag in ("enabled", "predictive"):
        if flag in values:
            if not isinstance(values[flag], bool):
                raise DomainError("true or false", field=flag)
            out[flag] = values[flag]
    for bound in ("min_replicas", "max_replicas"):
        if bound in values:
            out[bound] = _whole(values[bound], bound)
    low = out.get("min_replicas", current.min_replicas if current else 1)
    high = out.get("max_replicas", current.max_replicas if current else 10)
    if low > high:
        raise DomainError(f"max_replicas ({high}) is below min_replicas ({low})", field="max_replicas")
    if "workload" in values:
        workload = values["workload"]
        if workload is not None:
            if not isinstance(workload, Workload) or workload.application_id != application.pk:
                raise DomainError("not a workload of this application", field="workload")
            if workload.kind == "DaemonSet":
                raise DomainError("a DaemonSet runs one pod per node; it cannot be scaled", field="workload")
        out["workload"] = workload
    if "metrics" in values:
        _check_custom_allowed(values["metrics"], current)
        out["metrics"] = clean_metrics(values["metrics"])
    if "behavior" in values:
        out["behavior"] = clean_behavior(values["behavior"])
    if "schedules" in values:
        out["schedules"] = clean_schedules(values["schedules"])
    return out


def _snapshot(policy: ScalingPolicy) -> dict[str, Any]:
    return {
        "name": policy.name, "enabled": policy.enabled, "mode": policy.mode, "min_replicas": policy.min_replicas,
        "max_replicas": policy.max_replicas, "metrics": policy.metrics, "behavior": policy.behavior,
        "predictive": policy.predictive, "conflict_mode": policy.conflict_mode, "workload": policy.workload_id,
        "schedules": list(policy.schedules.order_by("name").values(
            "name", "rrule", "timezone", "duration_minutes", "min_replicas", "max_replicas", "priority")),
    }  # fmt: skip


def _replace_schedules(policy: ScalingPolicy, windows: Sequence[Mapping[str, Any]]) -> None:
    policy.schedules.all().delete()
    ScheduleWindow.objects.bulk_create([ScheduleWindow(policy=policy, **window) for window in windows])


# --- policies ---------------------------------------------------------------------------------------------------


def policy_create(*, application: Application, metrics: Any, by: Any = None, **values: Any) -> ScalingPolicy:
    """A scaling policy for an application; every input is validated and named on error."""
    cleaned = _clean({**values, "metrics": metrics}, application, None)
    windows = cleaned.pop("schedules", [])
    name = cleaned.setdefault("name", "default")
    if ScalingPolicy.objects.filter(application=application, name=name).exists():
        raise DomainError(f"application {application} already has a policy named {name!r}", field="name")
    try:
        with transaction.atomic():
            policy = ScalingPolicy.objects.create(
                application=application, created_by=by if getattr(by, "is_authenticated", False) else None, **cleaned
            )
            _replace_schedules(policy, windows)
            audit_record(action="scaler.policy.create", target=policy, scope=_scope(application),
                         changes={k: [None, v] for k, v in _snapshot(policy).items()})  # fmt: skip
    except IntegrityError:
        raise DomainError(f"application {application} already has a policy named {name!r}", field="name") from None
    request_evaluation(policy, trigger="manual")
    return policy


def policy_update(policy: ScalingPolicy, **values: Any) -> ScalingPolicy:
    """Change some fields (and replace the schedules when given); the version goes up by one."""
    cleaned = _clean(values, policy.application, policy)
    renamed = "name" in cleaned and cleaned["name"] != policy.name
    if renamed and ScalingPolicy.objects.filter(application=policy.application, name=cleaned["name"]).exists():
        raise DomainError(f"a policy named {cleaned['name']!r} already exists", field="name")
    windows = cleaned.pop("schedules", None)
    with transaction.atomic():
        locked = ScalingPolicy.objects.select_for_update().get(pk=policy.pk)
        before = _snapshot(locked)
        for key, value in cleaned.items():
            setattr(locked, key, value)
        if windows is not None:
            _replace_schedules(locked, windows)
        locked.version = F("version") + 1
        locked.save()
        locked.refresh_from_db()
        after = _snapshot(locked)
        changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        audit_record(action="scaler.policy.update", target=locked, scope=_scope(locked.application), changes=changes,
                     metadata={"version": locked.version})  # fmt: skip
    request_evaluation(locked, trigger="manual")
    return locked


def policy_delete(policy: ScalingPolicy) -> None:
    with transaction.atomic():
        audit_record(action="scaler.policy.delete", target=policy, scope=_scope(policy.application),
                     changes={k: [v, None] for k, v in _snapshot(policy).items()})  # fmt: skip
        policy.delete()


def kill_switch_set(*, application: Application, on: bool, reason: str = "", by: Any) -> int:
    """Stop (or allow again) every scaler write for the application at once; returns the policies affected.

    Rule: operators of the application (act) flip it; open pages update after commit, whoever flipped it."""
    if not can(by, Action.ACT, application):
        raise ForbiddenError("the kill switch needs the operator role on the application")
    if not isinstance(on, bool):
        raise DomainError("true or false", field="on")
    with transaction.atomic():
        count = (
            ScalingPolicy.objects.filter(application=application)
            .exclude(kill_switch=on)
            .update(kill_switch=on, version=F("version") + 1, updated_at=timezone.now())
        )
        audit_record(action="scaler.kill_switch." + ("on" if on else "off"), target=application,
                     scope=_scope(application), message=reason[:500], changes={"kill_switch": [not on, on]},
                     metadata={"policies": count})  # fmt: skip
        publish_application(application.pk, "kill_switch")  # update() sends no post_save: publish here
    return count


def kill_switch_on(application_id: int) -> bool:
    return ScalingPolicy.objects.filter(application_id=application_id, kill_switch=True).exists()


def global_pause_set(*, on: bool, reason: str = "", by: Any) -> ScalerSettings:
    """Stop (or resume) every scaler write everywhere at once. Rule: global admins only."""
    if not can_at(by, Action.CONFIGURE, GLOBAL):
        raise ForbiddenError("pausing the scaler everywhere needs the admin role at global scope")
    if not isinstance(on, bool):
        raise DomainError("true or false", field="on")
    with transaction.atomic():
        row, _ = ScalerSettings.objects.select_for_update().get_or_create(pk=1)
        before = row.paused
        row.paused, row.paused_reason = on, reason[:1000] if on else ""
        row.save()
        audit_record(action="scaler.global_pause." + ("on" if on else "off"), target=row, message=reason[:500],
                     changes={"paused": [before, on]})  # fmt: skip
    return row


def globally_paused() -> bool:
    return ScalerSettings.objects.filter(pk=1, paused=True).exists()


# --- pushed signals ---------------------------------------------------------------------------------------------


class SignalRejected(DomainError):
    """A pushed signal batch ICC refuses (400); ``reason`` labels the refusal in /metrics."""

    def __init__(self, message: str, *, field: str, reason: str) -> None:
        super().__init__(message, field=field, code="signal_rejected")
        self.reason = reason


def _reject(message: str, *, field: str, reason: str) -> SignalRejected:
    metrics.SIGNALS_REJECTED.labels(reason=reason).inc()
    return SignalRejected(message, field=field, reason=reason)


def reject_signal(message: str, *, field: str, reason: str) -> SignalRejected:
    """For interfaces refusing a batch before the service sees it (another application's identity)."""
    return _reject(message, field=field, reason=reason)


def _timestamp(value: Any, index: int, now: datetime) -> datetime:
    field = f"values[{index}].timestamp"
    if value is None:
        return now
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        try:
            at = datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise _reject("not a valid time", field=field, reason="bad_timestamp") from None
    elif isinstance(value, str):
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise _reject("an ISO 8601 time with its offset, or Unix seconds", field=field,
                          reason="bad_timestamp")  # fmt: skip
        at = parsed
    else:
        raise _reject("an ISO 8601 time with its offset, or Unix seconds", field=field, reason="bad_timestamp")
    if at > now + timedelta(seconds=SIGNAL_FUTURE_SECONDS):
        raise _reject(f"{at.isoformat()} is more than {SIGNAL_FUTURE_SECONDS} s in the future", field=field,
                      reason="future")  # fmt: skip
    if at < now - timedelta(seconds=SIGNAL_PAST_SECONDS):
        raise _reject(f"{at.isoformat()} is more than {SIGNAL_PAST_SECONDS // 60} minutes old", field=field,
                      reason="stale")  # fmt: skip
    return at


def record_signals(*, application: Application, metric: Any, values: Any) -> int:
    """Store a batch of per-pod values of one metric and ask for an immediate (debounced) evaluation.

    The whole batch is refused (and never moves replicas) when any value is bad: an unknown metric, a pod that is
    not one of the application's pods in ICC's observed state, a negative or non-numeric value, or a time more
    than 60 s ahead or 10 min behind."""
    now = timezone.now()
    if not isinstance(metric, str) or not METRIC_NAME.match(metric):
        raise _reject(f"a metric name matching {METRIC_NAME.pattern}", field="metric", reason="bad_metric")
    policies = list(ScalingPolicy.objects.filter(application=application, enabled=True))
    if not any(m.get("name") == metric for p in policies for m in p.metrics):
        raise _reject(f"no enabled scaling policy of {application} uses a metric named {metric!r}", field="metric",
                      reason="unknown_metric")  # fmt: skip
    if not isinstance(values, list) or not values or len(values) > MAX_SIGNAL_VALUES:
        raise _reject(f"a list of 1 to {MAX_SIGNAL_VALUES} values", field="values", reason="bad_values")
    pods = set(Pod.objects.filter(application=application, deleting=False).values_list("name", flat=True))
    rows = []
    for index, item in enumerate(values):
        if not isinstance(item, dict) or set(item) - {"pod", "value", "timestamp"}:
            raise _reject("an object with pod, value and optionally timestamp", field=f"values[{index}]",
                          reason="bad_values")  # fmt: skip
        pod = item.get("pod")
        if not isinstance(pod, str) or pod not in pods:
            raise _reject(f"{pod!r} is not a pod of application {application} (as ICC observes it)",
                          field=f"values[{index}].pod", reason="unknown_pod")  # fmt: skip
        value = item.get("value")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise _reject("a finite number", field=f"values[{index}].value", reason="not_numeric")
        if value < 0:
            raise _reject("must not be negative", field=f"values[{index}].value", reason="negative")
        rows.append(Signal(application=application, metric=metric, pod=pod, value=float(value),
                           at=_timestamp(item.get("timestamp"), index, now)))  # fmt: skip
    with transaction.atomic():
        Signal.objects.bulk_create(rows)
        for policy in policies:
            if any(m.get("name") == metric for m in policy.metrics):
                request_evaluation(policy, trigger="signal")
    metrics.SIGNALS_ACCEPTED.inc(len(rows))
    return len(rows)


def prune_signals(older_than_seconds: int = 3600) -> int:
    deleted, _ = Signal.objects.filter(received_at__lt=timezone.now() - timedelta(seconds=older_than_seconds)).delete()
    return int(deleted)


# --- evaluation requests ------------------------------------------------------------------------------------------


def debounce_key(policy_id: int) -> str:
    return f"icc:scaler:pending:{policy_id}"


def request_evaluation(policy: ScalingPolicy, *, trigger: str) -> bool:
    """Enqueue one evaluation on the ``decisions`` queue after commit, unless one is already pending (debounce:
    the pending one starts within DEBOUNCE_SECONDS and reads every signal stored until then)."""
    from apps.scaler.tasks import evaluate_policy

    if not policy.enabled:
        return False
    if not cache.add(debounce_key(policy.pk), trigger, timeout=30):
        return False
    policy_id = policy.pk
    transaction.on_commit(lambda: evaluate_policy.apply_async(args=(policy_id, trigger), countdown=DEBOUNCE_SECONDS))
    return True


def system_actor() -> Actor:
    from apps.audit.models import ActorKind

    return Actor(ActorKind.SYSTEM, "scaler", "ICC scaler")
