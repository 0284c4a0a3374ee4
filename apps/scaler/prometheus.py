"""Prometheus as a metric source: its HTTP API (``query``, ``query_range``) and per-metric query templates.

Every call has an explicit timeout; a Prometheus that cannot be reached (or answers 5xx) raises
:class:`PrometheusUnavailable` (503), PromQL it rejects raises :class:`PromQLRejected` carrying Prometheus' own
message. Templates select the workload's pods with ``namespace="<ns>", pod=~"<their names>"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from django.conf import settings

from apps.core.errors import DomainError, UnavailableError

TIMEOUT_SECONDS = 3.0


class PrometheusUnavailable(UnavailableError):
    code = "prometheus_unavailable"


class PromQLRejected(DomainError):
    code = "promql_rejected"


@dataclass(frozen=True)
class Template:
    """A metric ICC knows how to query: the PromQL (``$selector`` = namespace and pods) and the engine kind."""

    kind: str  # engine.MetricKind
    promql: str
    help: str


# Rule: each template answers one series per pod (a ``pod`` label); the engine averages or sums them by kind.
TEMPLATES: dict[str, Template] = {
    "cpu": Template(
        "utilization",
        'sum by (pod) (rate(container_cpu_usage_seconds_total{$selector,container!=""}[1m]))'
        ' / sum by (pod) (kube_pod_container_resource_requests{$selector,resource="cpu"})',
        "CPU utilisation of requests (ratio, 0.7 = 70 %)",
    ),
    "memory": Template(
        "utilization",
        'sum by (pod) (container_memory_working_set_bytes{$selector,container!=""})'
        ' / sum by (pod) (kube_pod_container_resource_requests{$selector,resource="memory"})',
        "memory working set over requests (ratio)",
    ),
    "event_loop": Template(
        "utilization",
        "max by (pod) (nodejs_eventloop_utilization{$selector})",
        "Node.js event-loop utilisation (ratio)",
    ),
    "heap": Template(
        "utilization",
        "max by (pod) (nodejs_heap_size_used_bytes{$selector})"
        " / max by (pod) (nodejs_heap_size_total_bytes{$selector})",
        "Node.js heap used over heap total (ratio)",
    ),
    "rps": Template(
        "per_pod", "sum by (pod) (rate(http_requests_total{$selector}[1m]))", "HTTP requests per second per pod"
    ),
    "latency_p95": Template(
        "latency",
        "histogram_quantile(0.95, sum by (pod, le) (rate(http_request_duration_seconds_bucket{$selector}[1m])))",
        "p95 request latency in seconds (an objective)",
    ),
}
CUSTOM = "custom"  # any PromQL with $selector / $namespace / $pods placeholders and an engine kind


def configured() -> bool:
    return bool(settings.PROMETHEUS_URL)


def pods_regex(pod_names: Iterable[str], workload_names: Iterable[str] = ()) -> str:
    """A Prometheus (RE2, fully anchored) regex for the pods: their names, else ``<workload>-…`` prefixes.

    Pod names are DNS labels ([a-z0-9.-]), so a dot is the only character needing care (``[.]``, no
    backslashes to double inside a PromQL string)."""
    names = sorted({n.replace(".", "[.]") for n in pod_names if n})
    if names:
        return "|".join(names)
    prefixes = sorted({f"{n.replace('.', '[.]')}-[a-z0-9]+(-[a-z0-9]+)?" for n in workload_names if n})
    return "|".join(prefixes) or "$^"


def render(promql: str, *, namespace: str, pods: str) -> str:
    """Fill ``$selector``, ``$namespace`` and ``$pods`` in a template or a custom expression."""
    selector = f'namespace="{namespace}",pod=~"{pods}"'
    return promql.replace("$selector", selector).replace("$namespace", namespace).replace("$pods", pods)


def _call(path: str, params: dict[str, Any], timeout: float | None) -> Any:
    base = str(settings.PROMETHEUS_URL or "").rstrip("/")
    if not base:
        raise PrometheusUnavailable("PROMETHEUS_URL is not set", field="metrics")
    try:
        response = requests.post(f"{base}{path}", data=params, timeout=timeout or TIMEOUT_SECONDS)
    except requests.Timeout:
        raise PrometheusUnavailable(
            f"Prometheus at {base} did not answer within {timeout or TIMEOUT_SECONDS}s"
        ) from None
    except requests.RequestException as exc:
        reason = "connection refused" if "refused" in str(exc).lower() else exc.__class__.__name__
        raise PrometheusUnavailable(f"Prometheus at {base} is unreachable: {reason}") from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code in (400, 422) and body.get("errorType") in ("bad_data", "execution"):
        raise PromQLRejected(f"Prometheus rejected the query: {body.get('error') or response.status_code}")
    if response.status_code >= 300 or body.get("status") != "success":
        detail = body.get("error") or f"HTTP {response.status_code}"
        raise PrometheusUnavailable(f"Prometheus at {base} failed: {str(detail)[:300]}")
    return body.get("data") or {}


def query(promql: str, *, at: datetime | None = None, timeout: float | None = None) -> list[dict[str, Any]]:
    """An instant query; the vector's series as ``{"metric": labels, "value": [t, "v"]}``."""
    params: dict[str, Any] = {"query": promql}
    if at is not None:
        params["time"] = at.timestamp()
    data = _call("/api/v1/query", params, timeout)
    if data.get("resultType") == "scalar":
        return [{"metric": {}, "value": data.get("result")}]
    result: list[dict[str, Any]] = data.get("result") or []
    return result


def query_range(
    promql: str, *, start: datetime, end: datetime, step: float, timeout: float | None = None
) -> list[dict[str, Any]]:
    """A range query; each series as ``{"metric": labels, "values": [[t, "v"], ...]}``."""
    data = _call(
        "/api/v1/query_range", {"query": promql, "start": start.timestamp(), "end": end.timestamp(), "step": step},
        timeout,
    )  # fmt: skip
    result: list[dict[str, Any]] = data.get("result") or []
    return result


def validate(promql: str) -> None:
    """Raise PromQLRejected (Prometheus' message) when it refuses the expression; PrometheusUnavailable when down."""
    query(render(promql, namespace="icc-validate", pods="icc-validate"), timeout=TIMEOUT_SECONDS)


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def per_pod(series: list[dict[str, Any]]) -> dict[str, float]:
    """``{pod: value}`` of an instant vector (series without a pod label are keyed by their labels)."""
    values: dict[str, float] = {}
    for item in series:
        value = _number((item.get("value") or [None, None])[1])
        if value is None:
            continue
        labels = item.get("metric") or {}
        key = str(labels.get("pod") or ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value")
        values[key] = value
    return values


def aggregate_range(series: list[dict[str, Any]], *, mean: bool) -> list[tuple[float, float]]:
    """One point per timestamp over every series (the mean across pods, or the sum)."""
    buckets: dict[float, list[float]] = {}
    for item in series:
        for t, text in item.get("values") or []:
            value = _number(text)
            if value is not None:
                buckets.setdefault(float(t), []).append(value)
    return [(t, (sum(v) / len(v)) if mean else sum(v)) for t, v in sorted(buckets.items())]


_PLACEHOLDER = re.compile(r"\$(selector|namespace|pods)\b")


def uses_placeholders(promql: str) -> bool:
    return bool(_PLACEHOLDER.search(promql))
