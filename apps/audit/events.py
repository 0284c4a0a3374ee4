"""Live topics of the audit trail and their payloads: the one place their names are built."""

from __future__ import annotations

from typing import Any, TypedDict

from django.db.models import Model

from apps.core.events import TOPIC_RE

TAIL = "audit"  # the Audit page's live tail
HISTORY = "audit.history"  # prefix of one object's history panel: ``audit.history.<type>.<id>``


class TailPayload(TypedDict):
    seqs: list[int]  # the newest events appended (at most 50 per message)


class HistoryPayload(TypedDict):
    seq: int  # the newest event about the object


def history(target_type: str, target_id: str) -> str | None:
    """The live topic of one object's history panel, e.g. ``audit.history.users-user.42`` (None when the id
    cannot make a topic name)."""
    name = f"{HISTORY}.{target_type.replace('.', '-')}.{target_id}"
    return name if TOPIC_RE.match(name) and len(name) <= 90 else None


def history_target(name: str) -> tuple[str, str]:
    """(target type, target id) of a history topic name; ValueError when it is none."""
    prefix, _, rest = name.partition(f"{HISTORY}.")
    target_type, _, target_id = rest.partition(".")
    if prefix or not target_type or not target_id:
        raise ValueError(name)
    return target_type.replace("-", "."), target_id


def history_of(obj: Model | Any) -> str:
    """The history topic of a model instance ("" when it has none)."""
    meta = obj._meta
    return history(f"{meta.app_label}.{meta.model_name}", str(obj.pk)) or ""
