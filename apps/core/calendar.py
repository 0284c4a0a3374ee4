"""The change calendar as every automation asks it: is this scope in a freeze or a maintenance window now?

Core holds only the question. The calendar app (maintenance windows and change freezes as RRULE calendars at a
scope) registers the answer with :func:`provider_register` in its ``ready()``; until one is registered nothing is
ever frozen. Callers: the cron scheduler (jobs that skip inside a freeze), the scaler (holds scale-downs during a
freeze), compliance (``enforce`` held to ``warn`` in maintenance when a binding says so), notifications (muted or
marked in maintenance) and manual actions (scale, restart, fix, delete need an override with a reason during a
freeze).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from apps.core.access import Scope


class WindowKind(StrEnum):
    FREEZE = "freeze"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True)
class Window:
    """One occurrence of a calendar entry that covers the asked scope and moment."""

    kind: WindowKind
    starts: datetime
    ends: datetime
    reason: str
    owner: str
    entry_id: int
    scope: Scope


Provider = Callable[[Scope, datetime, WindowKind], "Window | None"]
_providers: dict[str, Provider] = {}


def provider_register(name: str, provider: Provider) -> None:
    _providers[name] = provider


def active(scope: Scope, kind: WindowKind, at: datetime | None = None) -> Window | None:
    """The window of ``kind`` covering ``scope`` at ``at`` (now), the one ending last when several do."""
    moment = at or datetime.now(UTC)
    found = [w for w in (p(scope, moment, kind) for p in _providers.values()) if w is not None]
    return max(found, key=lambda w: w.ends) if found else None


def frozen(scope: Scope, at: datetime | None = None) -> Window | None:
    return active(scope, WindowKind.FREEZE, at)


def in_maintenance(scope: Scope, at: datetime | None = None) -> Window | None:
    return active(scope, WindowKind.MAINTENANCE, at)
