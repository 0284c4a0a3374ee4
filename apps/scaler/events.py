"""Live topics of the scaler and their payloads: the one place their names are built."""

from __future__ import annotations

from typing import TypedDict

from apps.core.events import publish_many

FLEET = "scaler"  # the fleet page; prefix of one application's scaling page, ``scaler.<id>``


def application(application_id: int) -> str:
    """One application's scaling page."""
    return f"{FLEET}.{application_id}"


class ScalingChanged(TypedDict):
    kind: str  # decision, policy, pause, kill_switch


def scaling_changed(application_id: int | None, kind: str = "") -> None:
    """After commit: the fleet page and (when given) the application's scaling page re-render."""
    payload: ScalingChanged = {"kind": kind}
    items: list[tuple[str, dict[str, object]]] = [(FLEET, dict(payload))]
    if application_id:
        items.append((application(application_id), dict(payload)))
    publish_many(items)
