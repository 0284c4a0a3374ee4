"""Every input of a job, checked and named on error (a DomainError carries the field); nothing is stored here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from apps.clusters.models import Application, Cluster
from apps.core import outbound
from apps.core.errors import DomainError
from apps.core.yamlsafe import load_bounded
from apps.cron import schedule
from apps.cron.models import CatchUp, Concurrency, FreezePolicy, Job, TargetKind

NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
RESERVED_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "idempotency-key"}
RESERVED_PREFIX = "x-icc-"
MAX_HEADERS = 50
MAX_HEADER_VALUE = 4096
MAX_BODY = 64 * 1024
MAX_TEMPLATE = 128 * 1024

# (field, minimum, maximum) for the integer settings; None means "not set" where the model allows it.
BOUNDS: dict[str, tuple[int, int]] = {
    "starting_deadline_seconds": (1, 7 * 86400),
    "catch_up_limit": (1, 1000),
    "timeout_seconds": (1, 86400),
    "max_attempts": (1, 20),
    "backoff_seconds": (1, 3600),
    "max_backoff_seconds": (1, 86400),
    "keep_succeeded": (0, 1000),
    "keep_failed": (0, 1000),
    "grace_seconds": (0, 86400),
}
NULLABLE = {"starting_deadline_seconds"}
BOOLEANS = ("suspended", "spread")
CHOICES = {"concurrency": Concurrency, "catch_up": CatchUp, "target_kind": TargetKind, "freeze_policy": FreezePolicy}
TEXTS = {"description": 2000}
KNOWN = (
    set(BOUNDS)
    | set(BOOLEANS)
    | set(CHOICES)
    | set(TEXTS)
    | {"name", "application", "cluster", "namespace", "schedule", "timezone", "http_method", "http_url"}
    | {"http_headers", "http_secret_headers", "http_body", "http_expected_statuses", "job_template"}
)


def _integer(field: str, value: Any) -> int | None:
    if value is None and field in NULLABLE:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value.strip())
        else:
            raise DomainError(f"{field} must be a whole number", field=field)
    low, high = BOUNDS[field]
    if not low <= value <= high:
        raise DomainError(f"{field} must be between {low} and {high} (got {value})", field=field)
    return int(value)


def _headers(field: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DomainError(f"{field} must be a mapping of header names to values", field=field)
    if len(value) > MAX_HEADERS:
        raise DomainError(f"at most {MAX_HEADERS} headers", field=field)
    out: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not HEADER_NAME_RE.match(name):
            raise DomainError(f"{str(name)[:100]!r} is not a valid header name", field=field)
        lowered = name.lower()
        if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIX):
            raise DomainError(f"header {name} is set by ICC itself", field=field)
        if not isinstance(text, str) or len(text) > MAX_HEADER_VALUE or any(c in text for c in "\r\n\0"):
            raise DomainError(
                f"header {name}: a value is one line of at most {MAX_HEADER_VALUE} characters", field=field
            )
        out[name] = text
    return out


def _statuses(value: Any) -> list[int]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or len(value) > 20:
        raise DomainError(
            "expected statuses are a list of at most 20 HTTP status codes", field="http_expected_statuses"
        )
    out = []
    for item in value:
        try:
            code = int(item)
        except (TypeError, ValueError):
            raise DomainError(
                f"{str(item)[:20]!r} is not an HTTP status code", field="http_expected_statuses"
            ) from None
        if not 100 <= code <= 599:
            raise DomainError(f"{code} is not an HTTP status code", field="http_expected_statuses")
        out.append(code)
    return sorted(set(out))


def parse_template(value: Any) -> dict[str, Any]:
    """A Kubernetes Job manifest from YAML text or a mapping (bounded: size, no aliases, depth)."""
    if isinstance(value, str):
        value = load_bounded(value, field="job_template", what="a Job template", max_bytes=MAX_TEMPLATE)
    if not isinstance(value, dict):
        raise DomainError("a Job template is a mapping (a batch/v1 Job manifest)", field="job_template")
    if value.get("kind", "Job") != "Job" or value.get("apiVersion", "batch/v1") != "batch/v1":
        raise DomainError("a Job template is a batch/v1 Job (apiVersion: batch/v1, kind: Job)", field="job_template")
    spec = value.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("template"), dict):
        raise DomainError("a Job template needs spec.template (the pod template)", field="job_template")
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": dict(value.get("metadata") or {}), "spec": spec}


def _simple(key: str, value: Any) -> Any:
    if key in BOUNDS:
        return _integer(key, value)
    if key in BOOLEANS:
        if not isinstance(value, bool):
            raise DomainError(f"{key} must be true or false", field=key)
        return value
    if key in CHOICES:
        allowed: list[str] = [str(choice) for choice in CHOICES[key].values]
        if value not in allowed:
            raise DomainError(f"{key} must be one of {', '.join(allowed)}", field=key)
        return value
    if key in TEXTS:
        if not isinstance(value, str) or len(value) > TEXTS[key]:
            raise DomainError(f"{key} is text of at most {TEXTS[key]} characters", field=key)
        return value
    return value


def clean_job(values: Mapping[str, Any], job: Job | None) -> dict[str, Any]:
    """The checked values of a new job (``job`` None) or of a change to ``job``; whole-job rules use the
    merged result (an update may change the target kind and give its fields in the same call)."""
    unknown = sorted(set(values) - KNOWN)
    if unknown:
        raise DomainError(f"unknown field {unknown[0]!r}", field=unknown[0])
    cleaned: dict[str, Any] = {k: _simple(k, v) for k, v in values.items()}
    if "name" in cleaned or job is None:
        name = cleaned.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise DomainError(
                "a name is 1-100 letters, digits, '.', '_' or '-', starting and ending with a letter or digit",
                field="name",
            )
    if cleaned.get("application") is not None and not isinstance(cleaned["application"], Application):
        raise DomainError("unknown application", field="application")
    merged = {**_current(job), **cleaned}
    if "schedule" in cleaned or "timezone" in cleaned or job is None:
        merged_tz = merged.get("timezone") or "UTC"
        schedule.zone(merged_tz)
        cleaned["schedule"] = schedule.validate(str(merged.get("schedule") or ""), merged_tz)
        cleaned["timezone"] = merged_tz
    low, high = merged.get("backoff_seconds", 10), merged.get("max_backoff_seconds", 600)
    if high < low:
        raise DomainError("max_backoff_seconds must be at least backoff_seconds", field="max_backoff_seconds")
    if merged.get("target_kind", TargetKind.HTTP) == TargetKind.HTTP:
        _clean_http(cleaned, merged)
    else:
        _clean_kubernetes(cleaned, merged)
    return cleaned


def _current(job: Job | None) -> dict[str, Any]:
    if job is None:
        return {}
    return {
        "schedule": job.schedule,
        "timezone": job.timezone,
        "target_kind": job.target_kind,
        "http_url": job.http_url,
        "http_method": job.http_method,
        "application": job.application,
        "cluster": job.cluster,
        "namespace": job.namespace,
        "job_template": job.job_template,
        "backoff_seconds": job.backoff_seconds,
        "max_backoff_seconds": job.max_backoff_seconds,
    }


def _clean_http(cleaned: dict[str, Any], merged: dict[str, Any]) -> None:
    method = str(merged.get("http_method") or "POST").upper()
    if method not in METHODS:
        raise DomainError(f"http_method must be one of {', '.join(METHODS)}", field="http_method")
    cleaned["http_method"] = method
    url = merged.get("http_url")
    if not isinstance(url, str) or not url.strip():
        raise DomainError("an HTTP job needs a URL", field="http_url")
    if len(url) > 2000:
        raise DomainError("a URL is at most 2000 characters", field="http_url")
    if "http_url" in cleaned or "target_kind" in cleaned:
        outbound.check_outbound_url(url.strip(), field="http_url")
        cleaned["http_url"] = url.strip()
    for field in ("http_headers", "http_secret_headers"):
        if field in cleaned:
            cleaned[field] = _headers(field, cleaned[field])
    if "http_body" in cleaned:
        body = cleaned["http_body"] or ""
        if not isinstance(body, str) or len(body.encode()) > MAX_BODY:
            raise DomainError(f"a body is text of at most {MAX_BODY // 1024} KiB", field="http_body")
        cleaned["http_body"] = body
    if "http_expected_statuses" in cleaned:
        cleaned["http_expected_statuses"] = _statuses(cleaned["http_expected_statuses"])


def _clean_kubernetes(cleaned: dict[str, Any], merged: dict[str, Any]) -> None:
    application = merged.get("application")
    cluster = merged.get("cluster")
    namespace = merged.get("namespace") or ""
    if application is not None:
        if cluster is not None and cluster.pk != application.cluster_id:
            raise DomainError("a Job target runs in its application's cluster", field="cluster")
        if namespace and namespace != application.namespace:
            raise DomainError("a Job target runs in its application's namespace", field="namespace")
        cleaned["cluster"], cleaned["namespace"] = application.cluster, application.namespace
    else:
        if not isinstance(cluster, Cluster):
            raise DomainError("a Kubernetes Job target needs a registered cluster", field="cluster")
        if not isinstance(namespace, str) or not DNS_LABEL_RE.match(namespace):
            raise DomainError("a Kubernetes Job target needs a namespace (a DNS label)", field="namespace")
    if "job_template" in cleaned or "target_kind" in cleaned:
        cleaned["job_template"] = parse_template(merged.get("job_template"))
