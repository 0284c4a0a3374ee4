"""Prometheus as a metric source: its HTTP API (``query``, ``query_range``) and per-metric query templates.

Every call has an explicit timeout and passes the outbound address policy (:mod:`apps.core.outbound`, checked
when the connection is opened); a Prometheus that cannot be reached (or answers 5xx) raises
:class:`PrometheusUnavailable` (503), PromQL it rejects raises :class:`PromQLRejected`. Error messages say what
failed (refused, timeout, the HTTP status, Prometheus' error type and the parse position) and never repeat text
of the answer. Templates select the workload's pods with ``namespace="<ns>", pod=~"<their names>"``, and
results are kept only for the application's own pods (:func:`per_pod`, :func:`aggregate_range`).
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

from apps.core import outbound
from apps.core.errors import DomainError, UnavailableError

TIMEOUT_SECONDS = 3.0
# Prometheus' API error types: the only words of an error answer ICC repeats (a fixed list).
ERROR_TYPES = frozenset({"bad_data", "execution", "timeout", "canceled", "internal", "unavailable", "not_found"})
_PARSE_POSITION = re.compile(r"(\d{1,6}):(\d{1,6}): parse error: ")
# Problems Prometheus' parser names, repeated when its message starts with one (fixed words, never its text).
PARSE_PROBLEMS = (
    "unclosed left parenthesis",
    "unclosed left bracket",
    "unclosed left brace",
    "unexpected end of input",
    "unexpected right parenthesis",
    "unexpected right bracket",
    "unexpected right brace",
    "unexpected character",
    "unexpected identifier",
    "unexpected number",
    "unexpected string",
    "unknown function",
    "bad duration",
    "bad number or duration syntax",
    "unterminated quoted string",
    "expected type",
)


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


def _session() -> requests.Session:
    return outbound.checked_session()


def _rejection(body: dict[str, Any], status: int) -> str:
    """Why Prometheus refused a query, without its text: the error type and, for a parse error, where."""
    error_type = str(body.get("errorType") or "")
    error_type = error_type if error_type in ERROR_TYPES else "error"
    text = str(body.get("error") or "")
    position = _PARSE_POSITION.search(text)
    if position:
        rest = text[position.end() :]
        problem = next((f": {p}" for p in PARSE_PROBLEMS if rest.startswith(p)), "")
        where = f"line {int(position[1])}, column {int(position[2])}"
        return f"parse error at {where}{problem} ({error_type}, HTTP {status})"
    return f"{error_type}, HTTP {status}"


def _call(path: str, params: dict[str, Any], timeout: float | None) -> Any:
    base = str(settings.PROMETHEUS_URL or "").rstrip("/")
    if not base:
        raise PrometheusUnavailable("PROMETHEUS_URL is not set", field="metrics")
    try:
        with _session() as session:
            response = session.post(f"{base}{path}", data=params, timeout=timeout or TIMEOUT_SECONDS)
    except outbound.OutboundRefused as exc:
        raise PrometheusUnavailable(f"Prometheus at {base} is not reachable by policy: {exc.message}") from None
    except requests.Timeout:
        raise PrometheusUnavailable(
            f"Prometheus at {base} did not answer within {timeout or TIMEOUT_SECONDS}s"
        ) from None
    except requests.exceptions.SSLError:
        raise PrometheusUnavailable(f"Prometheus at {base} is unreachable: TLS verification failed") from None
    except requests.RequestException as exc:
        reason = "connection refused" if "refused" in str(exc).lower() else exc.__class__.__name__
        raise PrometheusUnavailable(f"Prometheus at {base} is unreachable: {reason}") from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    error_type = body.get("errorType") if isinstance(body.get("errorType"), str) else ""
    if response.status_code in (400, 422) and error_type in ("bad_data", "execution"):
        raise PromQLRejected(f"Prometheus rejected the query: {_rejection(body, response.status_code)}")
    if response.status_code >= 300 or body.get("status") != "success":
        detail = f"HTTP {response.status_code}" + (f", {error_type}" if error_type in ERROR_TYPES else "")
        raise PrometheusUnavailable(f"Prometheus at {base} failed: {detail}")
    data = body.get("data") or {}
    return data if isinstance(data, dict) else {}


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
        "/api/v1/query_range",
        {"query": promql, "start": start.timestamp(), "end": end.timestamp(), "step": step},
        timeout,
    )
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


def belongs(labels: Any, pods: Iterable[str] | None, *, unlabelled: bool) -> bool:
    """Rule: a series counts for an application only when its ``pod`` label names one of the application's
    pods; a series without a pod label only when ``unlabelled`` (a custom expression, which only global admins
    write, may aggregate the pods itself). ``pods=None`` keeps everything (no application in view)."""
    if pods is None:
        return True
    if not isinstance(labels, dict) or "pod" not in labels:
        return unlabelled
    return str(labels["pod"]) in pods


def per_pod(series: list[dict[str, Any]], *, pods: set[str] | None = None, unlabelled: bool = True) -> dict[str, float]:
    """``{pod: value}`` of an instant vector (series without a pod label are keyed by their labels); with
    ``pods``, only the series that :func:`belongs` to them."""
    values: dict[str, float] = {}
    for item in series:
        if not isinstance(item, dict) or not belongs(item.get("metric"), pods, unlabelled=unlabelled):
            continue
        value = _number((item.get("value") or [None, None])[1])
        if value is None:
            continue
        labels = item.get("metric") or {}
        key = str(labels.get("pod") or ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "value")
        values[key] = value
    return values


def aggregate_range(
    series: list[dict[str, Any]], *, mean: bool, pods: set[str] | None = None, unlabelled: bool = True
) -> list[tuple[float, float]]:
    """One point per timestamp over every series (the mean across pods, or the sum); with ``pods``, only the
    series that :func:`belongs` to them."""
    buckets: dict[float, list[float]] = {}
    for item in series:
        if not isinstance(item, dict) or not belongs(item.get("metric"), pods, unlabelled=unlabelled):
            continue
        for t, text in item.get("values") or []:
            value = _number(text)
            if value is not None:
                buckets.setdefault(float(t), []).append(value)
    return [(t, (sum(v) / len(v)) if mean else sum(v)) for t, v in sorted(buckets.items())]


_PLACEHOLDER = re.compile(r"\$(selector|namespace|pods)\b")


def uses_placeholders(promql: str) -> bool:
    return bool(_PLACEHOLDER.search(promql))
