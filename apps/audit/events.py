"""Live topics of the audit trail and their payloads: the one place their names are built."""

from __future__ import annotations

from typing import Any, TypedDict

from django.db.models import Model

from apps.core.events import TOPIC_RE

TAIL = "audit"  # the Audit page's live tail


class TailPayload(TypedDict):
    seqs: list[int]  # the newest events appended (at most 50 per message)


class HistoryPayload(TypedDict):
    seq: int  # the newest event about the object


def history(target_type: str, target_id: str) -> str | None:
    """The live topic of one object's history panel, e.g. ``history.users-user.42`` (None when the id
    cannot make a topic name)."""
    name = f"history.{target_type.replace('.', '-')}.{target_id}"
    return name if TOPIC_RE.match(name) and len(name) <= 90 else None


def history_of(obj: Model | Any) -> str:
    """The history topic of a model instance ("" when it has none)."""
    meta = obj._meta
    return history(f"{meta.app_label}.{meta.model_name}", str(obj.pk)) or ""
