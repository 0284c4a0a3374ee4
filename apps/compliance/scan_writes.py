"""How a compliance scan stores one chunk of judged workloads: every result upserted (``since`` moves only when
the status changes) and the results of checks no longer bound deleted, in one transaction the caller opens.

PostgreSQL gets one statement per chunk; other databases (SQLite, the embedded default) go through the ORM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import orjson
from django.db import connection

from apps.compliance.models import Result

# What a result row takes from its verdict (besides ``since``, which only a status change moves).
UPDATED_FIELDS = ("policy", "severity", "status", "message", "fix", "mode", "exception", "evaluated_at")


class Located(Protocol):
    """The workload coordinates a result row copies."""

    @property
    def pk(self) -> int: ...

    @property
    def cluster_id(self) -> int: ...

    @property
    def namespace(self) -> str: ...

    @property
    def application_id(self) -> int | None: ...


# Each judged workload with its results: check id -> the stored fields (UPDATED_FIELDS).
Judged = Sequence[tuple[Located, dict[str, dict[str, Any]]]]
Writer = Callable[[Judged, datetime], None]


POSTGRESQL_UPSERT = """
WITH workloads AS (
    SELECT * FROM json_to_recordset(%(workloads)s::json) AS w(w bigint, c bigint, n text, a bigint)
),
details AS (
    SELECT * FROM json_to_recordset(%(details)s::json) AS d(
        i integer, check_id text, policy text, severity text, message text, fix jsonb
    )
),
given AS (
    SELECT w.w AS workload_id, w.c AS cluster_id, w.n AS namespace, w.a AS application_id, d.policy, d.check_id,
        d.severity, x.s AS status, d.message, d.fix, x.m AS mode, x.e AS exception_id
    FROM json_to_recordset(%(rows)s::json) AS x(w bigint, d integer, s text, m text, e bigint)
    JOIN workloads AS w ON w.w = x.w
    JOIN details AS d ON d.i = x.d
),
upserted AS (
    INSERT INTO {table} AS r (
        workload_id, cluster_id, namespace, application_id, policy, check_id,
        severity, status, message, fix, mode, exception_id, since, evaluated_at
    )
    SELECT workload_id, cluster_id, namespace, application_id, policy, check_id,
        severity, status, message, fix, mode, exception_id, %(now)s, %(now)s
    FROM given ORDER BY workload_id, check_id
    ON CONFLICT (workload_id, check_id) DO UPDATE SET
        policy = EXCLUDED.policy, severity = EXCLUDED.severity, status = EXCLUDED.status,
        message = EXCLUDED.message, fix = EXCLUDED.fix, mode = EXCLUDED.mode, exception_id = EXCLUDED.exception_id,
        evaluated_at = EXCLUDED.evaluated_at,
        since = CASE WHEN r.status = EXCLUDED.status THEN r.since ELSE EXCLUDED.since END
    WHERE r.evaluated_at <= EXCLUDED.evaluated_at
    RETURNING r.id
)
DELETE FROM {table} AS old
WHERE old.workload_id = ANY(%(ids)s) AND old.evaluated_at <= %(now)s AND old.id NOT IN (SELECT id FROM upserted)
"""


def write_postgresql(judged: Judged, now: datetime) -> None:
    """One statement per chunk: upsert every result (``since`` moves only with the status) and delete the judged
    workloads' results of checks no longer bound (the delete sees the rows as they were, minus those upserted).
    A result evaluated after ``now`` (when the chunk was read: the watcher's evaluation of a newer change) is
    fresher than the chunk's and stays as it is.

    The chunk travels as three JSON documents: the workloads, the distinct (check, message, fix) details, and one
    small row per result pointing at both; workloads of one shape share most details, so PostgreSQL parses a
    fraction of what one document per result would make it parse."""
    if not judged:
        return
    workloads = []
    details: dict[tuple[str, str, bytes], dict[str, Any]] = {}
    rows = []
    for observed, values in judged:
        workloads.append(
            {"w": observed.pk, "c": observed.cluster_id, "n": observed.namespace, "a": observed.application_id}
        )
        for check_id, fields in values.items():
            key = (check_id, fields["message"], orjson.dumps(fields["fix"]))
            detail = details.get(key)
            if detail is None:
                detail = details[key] = {
                    "i": len(details),
                    "check_id": check_id,
                    "policy": fields["policy"],
                    "severity": fields["severity"],
                    "message": fields["message"],
                    "fix": fields["fix"],
                }
            exception = fields["exception"]
            rows.append(
                {
                    "w": observed.pk,
                    "d": detail["i"],
                    "s": fields["status"],
                    "m": fields["mode"],
                    "e": exception and exception.pk,
                }
            )
    sql = POSTGRESQL_UPSERT.format(table=connection.ops.quote_name(Result._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "workloads": orjson.dumps(workloads).decode(),
                "details": orjson.dumps(list(details.values())).decode(),
                "rows": orjson.dumps(rows).decode(),
                "ids": [observed.pk for observed, _ in judged],
                "now": now,
            },
        )


def write_orm(judged: Judged, now: datetime) -> None:
    """The same writes through the ORM (any database Django supports): read the current statuses, delete the
    unbound checks' rows, then one upsert per 500 rows with ``since`` decided here (results evaluated after
    ``now`` are left alone, as on PostgreSQL)."""
    ids = [observed.pk for observed, _ in judged]
    current: dict[tuple[int, str], tuple[int, str, datetime]] = {}
    fresher: set[tuple[int, str]] = set()
    for pk, workload_id, check_id, status, since, evaluated_at in Result.objects.filter(
        workload_id__in=ids
    ).values_list("pk", "workload_id", "check_id", "status", "since", "evaluated_at"):
        if evaluated_at > now:
            fresher.add((workload_id, check_id))
        else:
            current[(workload_id, check_id)] = (pk, status, since)
    wanted = {(observed.pk, check_id) for observed, values in judged for check_id in values}
    gone = [pk for key, (pk, _, _) in current.items() if key not in wanted]
    for start in range(0, len(gone), 500):
        Result.objects.filter(pk__in=gone[start : start + 500]).delete()
    rows = []
    for observed, values in judged:
        for check_id, fields in values.items():
            if (observed.pk, check_id) in fresher:
                continue
            known = current.get((observed.pk, check_id))
            since = known[2] if known is not None and known[1] == fields["status"] else now
            rows.append(
                Result(
                    workload_id=observed.pk,
                    cluster_id=observed.cluster_id,
                    namespace=observed.namespace,
                    application_id=observed.application_id,
                    check_id=check_id,
                    since=since,
                    **fields,
                )
            )
    Result.objects.bulk_create(
        rows,
        batch_size=500,
        update_conflicts=True,
        unique_fields=["workload", "check_id"],
        update_fields=[*UPDATED_FIELDS, "since"],
    )


# The chunk writer per database vendor (others use the ORM's).
WRITERS: dict[str, Writer] = {"postgresql": write_postgresql}
