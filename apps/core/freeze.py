"""Manual actions during a change freeze: refused unless overridden, with a reason, by someone allowed to.

Used by the services of manual actions (scale, restart, a compliance fix) before they touch a cluster; the
answer goes into the action's audit metadata (``override``), so every overridden freeze is on the record.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from apps.core import calendar
from apps.core.access import Action, Scope, can
from apps.core.errors import ConflictError, DomainError, ForbiddenError


def freeze_check(asked: Scope, target: models.Model, *, override: bool, reason: str, by: Any) -> dict[str, Any]:
    """Rule: inside a freeze covering ``asked`` (coordinates of ``target``), an action needs ``override=True``, a
    reason, and the ``override_freeze`` action on ``target``. Returns the audit metadata to add ({} outside a
    freeze); raises ConflictError naming ``override`` when not overridden, ForbiddenError without the right."""
    window = calendar.frozen(asked)
    if window is None:
        return {}
    until = window.ends.isoformat()
    if not override:
        raise ConflictError(
            f"a change freeze is on until {until} ({window.reason}); set override with a reason to act anyway",
            field="override",
        )
    if not isinstance(reason, str) or not reason.strip():
        raise DomainError("overriding a change freeze needs a reason", field="reason")
    if by is not None and not can(by, Action.OVERRIDE_FREEZE, target):
        raise ForbiddenError("your role does not allow overriding the change freeze here")
    return {"override": {"freeze_entry": window.entry_id, "freeze_ends_at": until, "reason": reason.strip()[:500]}}
