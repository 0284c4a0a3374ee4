"""Clusters on the dashboard: failing pods (CrashLoopBackOff and other container failures, phase Failed, or not
ready) the viewer may read, in "Needs attention", the worst first, each linking to its application (or cluster).

Live: the pods kind announces each row a sync, relist or watch event wrote (``Kind.on_change``, after commit);
when a pod starts or stops failing, the dashboard topic is published — at most once per ``COALESCE_SECONDS`` per
process, after the burst, so a rollout of a thousand pods re-renders open dashboards once, with its final state.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from typing import Any

from django.db.models import Count, Q
from django.urls import reverse

from apps.clusters.models import Pod
from apps.core.access import Action, restrict
from apps.core.selectors import ATTENTION_SHOWN, AttentionCount, AttentionItem, AttentionSection

CONTAINER_FAILURES = (
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "OOMKilled",
)
COALESCE_SECONDS = 1.0


def failing_q() -> Q:
    """Rule: a pod needs attention when a container keeps failing (CrashLoopBackOff, image pulls, OOMKilled, bad
    configuration), its phase is Failed, or it is not ready (a completed pod, phase Succeeded, is fine); a pod
    being deleted is not counted."""
    return Q(deleting=False) & (
        Q(reason__in=CONTAINER_FAILURES) | Q(phase="Failed") | (Q(ready=False) & ~Q(phase="Succeeded"))
    )


def is_failing(row: Mapping[str, Any]) -> bool:
    """:func:`failing_q` for one row as the sync writes it."""
    if row.get("deleting"):
        return False
    return (
        row.get("reason") in CONTAINER_FAILURES
        or row.get("phase") == "Failed"
        or (not row.get("ready") and row.get("phase") != "Succeeded")
    )


def _state(reason: str, phase: str) -> str:
    if reason in CONTAINER_FAILURES or phase == "Failed":
        return "error"
    return "warning"


def attention(viewer: Any) -> AttentionSection:
    """Two queries: the counts, then the first few (the most restarted, then by cluster, namespace, name)."""
    pods = restrict(viewer, Action.READ, Pod.objects.filter(failing_q()))
    counted = pods.aggregate(
        total=Count("id"),
        crashing=Count("id", filter=Q(reason__in=CONTAINER_FAILURES)),
        failed=Count("id", filter=Q(phase="Failed")),
    )
    total = int(counted["total"] or 0)
    items: tuple[AttentionItem, ...] = ()
    if total:
        rows = pods.order_by("-restarts", "cluster__name", "namespace", "name").values(
            "name", "namespace", "phase", "reason", "restarts", "cluster_id", "cluster__name", "application_id"
        )[:ATTENTION_SHOWN]
        items = tuple(
            AttentionItem(
                label=f"{row['cluster__name']} / {row['namespace']} / {row['name']}",
                url=reverse("clusters:application", args=[row["application_id"]])
                if row["application_id"]
                else reverse("clusters:detail", args=[row["cluster_id"]]),
                detail=" · ".join(
                    part
                    for part in (
                        row["reason"] or ("" if row["phase"] == "Failed" else "not ready"),
                        f"phase {row['phase']}" if row["phase"] else "",
                        f"{row['restarts']} restarts" if row["restarts"] else "",
                    )
                    if part
                ),
                state=_state(row["reason"], row["phase"]),
            )
            for row in rows
        )
    crashing, failed = int(counted["crashing"] or 0), int(counted["failed"] or 0)
    url = reverse("clusters:applications")
    return AttentionSection(
        key="clusters",
        title="Failing pods",
        url=url,
        counts=(
            AttentionCount("container failures", crashing, "error"),
            AttentionCount("failed", failed, "error"),
            AttentionCount("not ready", max(0, total - crashing - failed), "warning"),
        ),
        items=items,
        total=total,
        calm="Every pod you may read is ready.",
    )


class _Coalescer:
    """Publish the dashboard topic once, ``COALESCE_SECONDS`` after the first of a burst of pod changes; the pods
    known to fail (in this process) tell a change that matters (starts or stops failing) from one that does not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._failing: set[tuple[int, str, str]] = set()

    def pod_changed(self, cluster_id: int, row: Mapping[str, Any], deleted: bool) -> None:
        key = (int(cluster_id), str(row.get("namespace", "")), str(row.get("name", "")))
        failing = not deleted and is_failing(row)
        with self._lock:
            was = key in self._failing
            if failing:
                self._failing.add(key)
            else:
                self._failing.discard(key)
            if failing == was or self._timer is not None:
                return
            self._timer = threading.Timer(COALESCE_SECONDS, self._publish)
            self._timer.daemon = True
            self._timer.start()

    def _publish(self) -> None:
        from apps.core.events import DASHBOARD, send_now

        with self._lock:
            self._timer = None
        send_now(DASHBOARD, {"reason": "clusters.pods"})


coalescer = _Coalescer()


def _chained(
    first: Callable[[int, Mapping[str, Any], bool], None] | None,
) -> Callable[[int, Mapping[str, Any], bool], None]:
    def changed(cluster_id: int, row: Mapping[str, Any], deleted: bool) -> None:
        if first is not None:
            first(cluster_id, row, deleted)
        coalescer.pod_changed(cluster_id, row, deleted)

    return changed


def register() -> None:
    """Add "Failing pods" to the dashboard and follow the pods kind's changes (keeping any other listener)."""
    from apps.clusters.kinds import KINDS
    from apps.core.selectors import register_attention

    register_attention(attention, order=20)
    pods = KINDS["pods"]
    if not getattr(pods.on_change, "dashboard_follows", False):
        follower = _chained(pods.on_change)
        follower.dashboard_follows = True  # type: ignore[attr-defined]
        KINDS["pods"] = dataclasses.replace(pods, on_change=follower)
