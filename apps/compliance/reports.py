"""Compliance reports: the current results as OpenReports ``Report`` objects (JSON or YAML) and as CSV.

The OpenReports shape (``openreports.io/v1alpha1``, github.com/openreports/reports-api): one ``Report`` per
cluster and namespace (scope: the Namespace), in a ``ReportList``; ``summary`` counts pass, fail, warn, error and
skip; each result names its ``policy``, ``rule`` (the check id), ``result``, ``severity``, ``category``,
``message``, ``scored``, ``source`` ("icc"), ``timestamp`` (when the status last changed) and ``resources`` (the
workload). OpenReports has no "excepted": a failure an approved exception covers is reported as ``skip`` (as
Kyverno reports its policy exceptions), with ``properties.icc-status: excepted``. ICC's own status and mode are in
``properties``.

CSV: one row per result; text cells that a spreadsheet would run as a formula get a leading ``'``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import yaml
from django.db.models import QuerySet

from apps.audit.exports import spreadsheet_safe
from apps.compliance.checks import check_get
from apps.compliance.models import Result, ResultStatus

API_VERSION = "openreports.io/v1alpha1"
SOURCE = "icc"
MAX_RESULTS = 50_000  # one JSON/YAML report holds at most this many results (narrow it by scope otherwise)
OPENREPORTS_RESULT = {
    ResultStatus.PASS: "pass",
    ResultStatus.FAIL: "fail",
    ResultStatus.ERROR: "error",
    ResultStatus.SKIP: "skip",
    ResultStatus.EXCEPTED: "skip",
}
SUMMARY_KEYS = ("pass", "fail", "warn", "error", "skip")
FIELDS = (
    "cluster__name",
    "namespace",
    "application__name",
    "workload__kind",
    "workload__name",
    "workload__uid",
    "policy",
    "check_id",
    "severity",
    "status",
    "mode",
    "message",
    "exception_id",
    "since",
    "evaluated_at",
)
CSV_COLUMNS = (
    ("cluster", "cluster__name"),
    ("namespace", "namespace"),
    ("application", "application__name"),
    ("kind", "workload__kind"),
    ("workload", "workload__name"),
    ("policy", "policy"),
    ("check", "check_id"),
    ("severity", "severity"),
    ("status", "status"),
    ("mode", "mode"),
    ("message", "message"),
    ("since", "since"),
    ("evaluated_at", "evaluated_at"),
)
API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1"}


def _rows(results: QuerySet[Result]) -> Iterator[dict[str, Any]]:
    ordered = results.order_by("cluster__name", "namespace", "workload__name", "check_id", "id")
    yield from ordered.values(*FIELDS).iterator(chunk_size=2000)


def _category(check_id: str) -> str:
    try:
        return check_get(check_id).category
    except KeyError:  # a custom (CEL) policy's validation
        return ""


def _name(cluster: str) -> str:
    """A Kubernetes object name for the report of ``cluster`` (lowercase alphanumerics and dashes)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", cluster.lower()).strip("-")
    return f"icc-compliance-{slug}"[:253].rstrip("-")


def _timestamp(moment: datetime) -> dict[str, int]:
    return {"seconds": int(moment.timestamp()), "nanos": moment.microsecond * 1000}


def _result(row: dict[str, Any]) -> dict[str, Any]:
    status = row["status"]
    properties = {"icc-status": status, "mode": row["mode"], "cluster": row["cluster__name"]}
    if row["application__name"]:
        properties["application"] = row["application__name"]
    if row["exception_id"]:
        properties["exception"] = str(row["exception_id"])
    entry: dict[str, Any] = {
        "source": SOURCE,
        "policy": row["policy"],
        "rule": row["check_id"],
        "severity": row["severity"],
        "timestamp": _timestamp(row["since"]),
        "result": OPENREPORTS_RESULT[ResultStatus(status)],
        "scored": status in (ResultStatus.PASS, ResultStatus.FAIL),
        "resources": [
            {
                "apiVersion": API_VERSIONS.get(row["workload__kind"], "apps/v1"),
                "kind": row["workload__kind"],
                "name": row["workload__name"],
                "namespace": row["namespace"],
                "uid": row["workload__uid"],
            }
        ],
        "message": row["message"],
        "properties": properties,
    }
    category = _category(row["check_id"])
    if category:
        entry["category"] = category
    return entry


def _report(cluster: str, namespace: str, now: datetime) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Report",
        "metadata": {
            "name": _name(cluster),
            "namespace": namespace,
            "creationTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "labels": {"app.kubernetes.io/managed-by": SOURCE},
            "annotations": {"icc.io/cluster": cluster},
        },
        "source": SOURCE,
        "scope": {"apiVersion": "v1", "kind": "Namespace", "name": namespace},
        "summary": dict.fromkeys(SUMMARY_KEYS, 0),
        "results": [],
    }


def openreports(results: QuerySet[Result], now: datetime | None = None) -> dict[str, Any]:
    """The results as a ``ReportList``: one ``Report`` per cluster and namespace, in name order."""
    now = now or datetime.now(UTC)
    reports: dict[tuple[str, str], dict[str, Any]] = {}
    for row in _rows(results):
        key = (row["cluster__name"], row["namespace"])
        report = reports.get(key)
        if report is None:
            report = reports[key] = _report(*key, now)
        entry = _result(row)
        report["results"].append(entry)
        report["summary"][entry["result"]] += 1
    return {"apiVersion": API_VERSION, "kind": "ReportList", "metadata": {}, "items": list(reports.values())}


def as_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def as_csv(results: QuerySet[Result]) -> Iterator[bytes]:
    """The results as CSV, streamed in chunks; formula-like text cells are made inert."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([column for column, _ in CSV_COLUMNS])
    for count, row in enumerate(_rows(results), start=1):
        cells = []
        for _, field in CSV_COLUMNS:
            value = row[field]
            cells.append(value.isoformat() if isinstance(value, datetime) else spreadsheet_safe(value or ""))
        writer.writerow(cells)
        if count % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
