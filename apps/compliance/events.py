"""Live topics of the compliance pages and their payloads: the one place their names are built.

* ``compliance``: the compliance page (every result the viewer may read);
* ``compliance.application.<id>``: the page filtered to one application (its Compliance tab).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

from apps.core.events import publish_many

RESULTS = "compliance"  # the compliance page; prefix of the per-application topics
APPLICATION = f"{RESULTS}.application"


def application(application_id: int) -> str:
    """One application's compliance (the Compliance tab of its page)."""
    return f"{APPLICATION}.{application_id}"


class ResultsChanged(TypedDict):
    kind: str  # "workload" (one workload re-evaluated) or "scan"
    application: int  # 0: several or none


def results_changed(application_ids: Iterable[int], kind: str) -> None:
    """After commit: the compliance page and the pages of ``application_ids`` re-render."""
    ids = sorted({int(pk) for pk in application_ids if pk})
    first: ResultsChanged = {"kind": kind, "application": ids[0] if len(ids) == 1 else 0}
    items: list[tuple[str, dict[str, object]]] = [(RESULTS, dict(first))]
    for pk in ids:
        payload: ResultsChanged = {"kind": kind, "application": pk}
        items.append((application(pk), dict(payload)))
    publish_many(items)
