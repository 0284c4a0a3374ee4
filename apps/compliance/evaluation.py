"""Evaluating observed workloads against the bound policies, and keeping one current result per check.

The workload is rebuilt from its observed row (kind, metadata, replicas and the stored pod template), so an
evaluation never calls the cluster. Every enabled binding whose scope covers the workload contributes its checks
(a check bound more than once is evaluated once, with the first binding's parameters, and carries the strictest
mode). Results are upserted: a status that changes gets a new ``since``; checks no longer bound are removed.

A watcher-reported change evaluates one workload (:func:`evaluate_workload`); the scan (:func:`scan`) reads the
workloads in chunks of only the columns it needs, judges a whole chunk in memory (bindings, exceptions and each
binding's resolved check parameters read once) and writes each chunk's results in one statement on PostgreSQL
(an upsert and the removal of unbound checks together), or through the ORM elsewhere (SQLite).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.db import connection, connections, transaction

from apps.clusters.models import Workload
from apps.compliance import cel, notify
from apps.compliance.checks import Check, Severity, checks_for_policy, evaluate
from apps.compliance.checks.engine import prepare, run, view_of
from apps.compliance.models import Binding, Mode, Policy, PolicyException, PolicyKind, Result, ResultStatus
from apps.compliance.scan_writes import UPDATED_FIELDS, WRITERS, Judged, Writer, write_orm

logger = logging.getLogger(__name__)

API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1"}
MODE_RANK = {Mode.AUDIT: 0, Mode.WARN: 1, Mode.ENFORCE: 2}
SCAN_WRITERS = 2  # chunks stored at once by a scan outside a transaction (PostgreSQL)
SCAN_CHUNK = 500  # workloads per read and per write (~16,000 result rows with the three built-in policies)
MESSAGE_MAX = 1024


@dataclass(frozen=True)
class Observed:
    """The columns of a workload row an evaluation reads: all a scan loads."""

    pk: int
    cluster_id: int
    namespace: str
    kind: str
    name: str
    application_id: int | None
    application: str
    labels: dict[str, str]
    annotations: dict[str, str]
    desired_replicas: int
    images: list[Any]
    pod_template: dict[str, Any]

    COLUMNS = (
        "pk",
        "cluster_id",
        "namespace",
        "kind",
        "name",
        "application_id",
        "application__name",
        "labels",
        "annotations",
        "desired_replicas",
        "images",
        "pod_template",
    )

    @classmethod
    def of(cls, workload: Workload) -> Observed:
        application = workload.application.name if workload.application_id else ""
        return cls(
            workload.pk,
            workload.cluster_id,
            workload.namespace,
            workload.kind,
            workload.name,
            workload.application_id,
            application,
            workload.labels or {},
            workload.annotations or {},
            workload.desired_replicas,
            workload.images or [],
            workload.pod_template or {},
        )

    def manifest(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"template": self.pod_template or {}}
        if self.kind != "DaemonSet":
            spec["replicas"] = self.desired_replicas
        return {
            "apiVersion": API_VERSIONS.get(self.kind, "apps/v1"),
            "kind": self.kind,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": self.labels or {},
                "annotations": self.annotations or {},
            },
            "spec": spec,
        }

    def image_names(self) -> list[str]:
        return [str(i.get("image", "")) for i in (self.images or []) if isinstance(i, dict)]


def manifest(workload: Workload) -> dict[str, Any]:
    """The workload as the checks read it, from what ICC observed."""
    return Observed.of(workload).manifest()


def active_bindings() -> list[Binding]:
    return list(Binding.objects.filter(enabled=True, policy__enabled=True).select_related("policy").order_by("id"))


@lru_cache(maxsize=256)
def _compiled(policy_id: int, version: int) -> cel.CompiledPolicy:
    policy = Policy.objects.get(pk=policy_id)
    return cel.compile_policy(
        policy.validations, variables=policy.variables, name=policy.key, severity=Severity(policy.severity)
    )


def verdicts(binding: Binding, obj: dict[str, Any]) -> list[Any]:
    policy = binding.policy
    if policy.kind == PolicyKind.BUILTIN:
        return evaluate(obj, _bound_checks(binding), binding.params or None)
    match = policy.match or {}
    if not cel.matches(obj, match.get("kinds") or None, match.get("namespaces") or None, match.get("labels") or None):
        return []
    results = _compiled(policy.pk, policy.version).evaluate(obj, params=binding.params or None)
    return [r for r in results if not binding.check_id or r.check_id == binding.check_id]


def _bound_checks(binding: Binding) -> list[Check]:
    return [c for c in checks_for_policy(binding.policy.key) if not binding.check_id or c.id == binding.check_id]


def active_exceptions(now: datetime | None = None) -> list[PolicyException]:
    """Approved, not revoked, not expired: the exceptions that apply now."""
    now = now or datetime.now(UTC)
    return list(
        PolicyException.objects.filter(approved_at__isnull=False, revoked_at__isnull=True, expires_at__gt=now)
        .select_related("policy")
        .order_by("expires_at", "id")
    )


def excepted_by(workload: Workload, verdict: Any, exceptions: Iterable[PolicyException]) -> PolicyException | None:
    """The first active exception covering a failing ``verdict`` on ``workload`` (None when none does)."""
    if str(verdict.status) != ResultStatus.FAIL:
        return None
    return _covering(Observed.of(workload), verdict, exceptions)


def _covering(observed: Observed, verdict: Any, exceptions: Iterable[PolicyException]) -> PolicyException | None:
    images: list[str] | None = None
    for exception in exceptions:
        if images is None:
            images = observed.image_names()
        if exception.covers(
            check_id=verdict.check_id,
            policy=verdict.policy,
            cluster_id=observed.cluster_id,
            namespace=observed.namespace,
            application=observed.application,
            name=observed.name,
            labels=observed.labels or {},
            images=images,
        ):
            return exception
    return None


# --- judging: which checks apply, their verdicts and the strictest mode ------------------------------------------


@dataclass
class _Bound:
    """One binding ready to run: a built-in one's checks with their parameters resolved once."""

    binding: Binding
    rank: int
    checks: list[tuple[Check, dict[str, Any] | Exception]] | None  # None: a CEL policy

    @classmethod
    def of(cls, binding: Binding) -> _Bound:
        checks = None
        if binding.policy.kind == PolicyKind.BUILTIN:
            params = binding.params or {}
            checks = [(check, prepare(check, params.get(check.id))) for check in _bound_checks(binding)]
        return cls(binding, MODE_RANK[Mode(binding.mode)], checks)


@dataclass
class _Judge:
    """Judges workloads against a fixed set of bindings and exceptions; what depends only on a binding or on a
    workload's coordinates is worked out once."""

    bindings: list[_Bound]
    exceptions: list[PolicyException]
    now: datetime
    _by_place: dict[tuple[int, str, str], list[_Bound]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, bindings: Iterable[Binding], exceptions: Iterable[PolicyException], now: datetime | None = None
    ) -> _Judge:
        return cls([_Bound.of(b) for b in bindings], list(exceptions), now or datetime.now(UTC))

    def applicable(self, observed: Observed) -> list[_Bound]:
        place = (observed.cluster_id, observed.namespace, observed.application)
        found = self._by_place.get(place)
        if found is None:
            found = [b for b in self.bindings if b.binding.applies_to(*place)]
            self._by_place[place] = found
        return found

    def chosen(self, observed: Observed) -> dict[str, tuple[Any, str]]:
        """Check id -> (verdict, strictest mode): the first binding to bring a check evaluates it."""
        obj = observed.manifest()
        view = None
        chosen: dict[str, tuple[Any, str]] = {}
        for bound in self.applicable(observed):
            mode = bound.binding.mode
            if bound.checks is not None:
                for check, params in bound.checks:
                    known = chosen.get(check.id)
                    if known is None:
                        view = view_of(obj) if view is None else view
                        chosen[check.id] = (run(check, view, params), mode)
                    elif bound.rank > MODE_RANK[Mode(known[1])]:
                        chosen[check.id] = (known[0], mode)
                continue
            for verdict in verdicts(bound.binding, obj):
                known = chosen.get(verdict.check_id)
                if known is None:
                    chosen[verdict.check_id] = (verdict, mode)
                elif bound.rank > MODE_RANK[Mode(known[1])]:
                    chosen[verdict.check_id] = (known[0], mode)
        return chosen

    def values(self, observed: Observed) -> dict[str, dict[str, Any]]:
        """Check id -> the stored fields of its result (an approved exception turns a failure into excepted)."""
        rows = {}
        for check_id, (verdict, mode) in self.chosen(observed).items():
            excepted = None
            if self.exceptions and str(verdict.status) == ResultStatus.FAIL:
                excepted = _covering(observed, verdict, self.exceptions)
            message = verdict.message
            if excepted is not None:
                message = f"excepted until {excepted.expires_at:%Y-%m-%d %H:%M} UTC (owner {excepted.owner}): {message}"
            rows[check_id] = {
                "policy": verdict.policy,
                "severity": str(verdict.severity),
                "status": ResultStatus.EXCEPTED if excepted is not None else str(verdict.status),
                "message": message[:MESSAGE_MAX],
                "fix": verdict.fix,
                "mode": mode,
                "exception": excepted,
                "evaluated_at": self.now,
            }
        return rows


def evaluate_workload(
    workload: Workload,
    bindings: Iterable[Binding] | None = None,
    exceptions: Iterable[PolicyException] | None = None,
) -> list[Result]:
    """Evaluate one workload now and store its current results (returned)."""
    if not workload.pod_template:
        return []  # observed before templates were stored: the next sync fills it in
    judge = _Judge.of(
        active_bindings() if bindings is None else bindings,
        active_exceptions() if exceptions is None else exceptions,
    )
    return _store(workload, judge.values(Observed.of(workload)), judge.now)


def _store(workload: Workload, values: dict[str, dict[str, Any]], now: datetime) -> list[Result]:
    with transaction.atomic():
        existing = {r.check_id: r for r in Result.objects.select_for_update().filter(workload=workload)}
        failing = {
            (workload.pk, check_id)
            for check_id, row in existing.items()
            if row.status == ResultStatus.FAIL and row.severity == notify.CRITICAL
        }
        Result.objects.filter(workload=workload).exclude(check_id__in=list(values)).delete()
        created, changed = [], []
        for check_id, fields in values.items():
            row = existing.get(check_id)
            if row is None:
                created.append(
                    Result(
                        workload=workload,
                        cluster_id=workload.cluster_id,
                        namespace=workload.namespace,
                        application_id=workload.application_id,
                        check_id=check_id,
                        since=now,
                        **fields,
                    )
                )
                continue
            if row.status != fields["status"]:
                row.since = now
            for key, value in fields.items():
                setattr(row, key, value)
            changed.append(row)
        Result.objects.bulk_create(created)
        Result.objects.bulk_update(changed, [*UPDATED_FIELDS, "since"])
        notify.critical_changed([(workload, values)], failing)
    return [*created, *changed]


# --- the scan ------------------------------------------------------------------------------------------------------


@dataclass
class ScanStats:
    """What one scan did: workloads read, workloads judged (those with a stored template), results written."""

    workloads: int = 0
    judged: int = 0
    results: int = 0
    failed_chunks: int = 0

    def tally(self, stored: tuple[int, int] | None) -> None:
        if stored is None:
            self.failed_chunks += 1
            return
        self.judged += stored[0]
        self.results += stored[1]


def scan(batch: int = SCAN_CHUNK, stats: ScanStats | None = None) -> int:
    """Evaluate every observed workload (the periodic and on-demand scan); returns how many.

    On PostgreSQL, when no transaction encloses the scan (a task, a command), writer threads with their own
    connections store chunks while the next ones are judged: the database's work and Python's overlap, and two
    chunks (disjoint workloads) are stored at once. ``stats``, when given, is filled in (the benchmark reports
    evaluations per second from it)."""
    stats = stats if stats is not None else ScanStats()
    judge = _Judge.of(active_bindings(), active_exceptions())
    write = WRITERS.get(connection.vendor, write_orm)
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        for judged, now in _judged_chunks(judge, batch, stats):
            stats.tally(_commit(write, judged, now))
        return stats.workloads
    with ThreadPoolExecutor(SCAN_WRITERS, thread_name_prefix="compliance-scan") as writers:
        pending: deque[Future[tuple[int, int] | None]] = deque()
        for judged, now in _judged_chunks(judge, batch, stats):
            if len(pending) >= SCAN_WRITERS:
                stats.tally(pending.popleft().result())  # a few chunks in flight at most: memory stays bounded
            pending.append(writers.submit(_commit_closing, write, judged, now))
        while pending:
            stats.tally(pending.popleft().result())
    return stats.workloads


def _judged_chunks(judge: _Judge, batch: int, stats: ScanStats) -> Iterator[tuple[Judged, datetime]]:
    """The workloads in primary-key order, ``batch`` at a time, each chunk judged, with the time it was read: its
    results' ``evaluated_at`` (a result evaluated later than that, by the watcher, is fresher and is kept)."""
    last = 0
    while True:
        judge.now = datetime.now(UTC)  # before the read: anything evaluated after it saw newer data
        chunk = [
            Observed(*row)
            for row in Workload.objects.filter(pk__gt=last).order_by("pk").values_list(*Observed.COLUMNS)[:batch]
        ]
        if not chunk:
            return
        stats.workloads += len(chunk)
        last = chunk[-1].pk
        judged: list[tuple[Observed, dict[str, dict[str, Any]]]] = []
        for observed in chunk:
            if not observed.pod_template:
                continue  # observed before templates were stored: the next sync fills it in
            try:
                judged.append((observed, judge.values(observed)))
            except Exception:  # one odd workload must not stop the scan
                logger.exception("compliance evaluation of workload %s failed", observed.pk)
        yield judged, judge.now


def _commit(write: Writer, judged: Judged, now: datetime) -> tuple[int, int] | None:
    """Store one chunk in its own transaction: (workloads, results) stored, or None when the database refused it
    (logged; the next scan tries again)."""
    if not judged:
        return 0, 0
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # Results are derived data the next scan rewrites: a crash may lose a chunk's commit, never
                # corrupt it, so the chunk does not wait for its WAL flush.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            failing = notify.critical_failing(judged)  # before the write: which critical checks failed
            write(judged, now)
            notify.critical_changed(judged, failing)
    except Exception:
        logger.exception("storing compliance results of workloads %s-%s failed", judged[0][0].pk, judged[-1][0].pk)
        return None
    return len(judged), sum(len(values) for _, values in judged)


def _commit_closing(write: Writer, judged: Judged, now: datetime) -> tuple[int, int] | None:
    """:func:`_commit` in a writer thread, which then gives its connection back."""
    try:
        return _commit(write, judged, now)
    finally:
        connections.close_all()
