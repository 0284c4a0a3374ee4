"""Run built-in checks over one object: find its pod, resolve parameters, and never let one check crash the rest."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from apps.compliance.checks.base import Check, Result, Status, check_get, checks_all
from apps.compliance.checks.workload import UnsupportedKind, Workload

logger = logging.getLogger(__name__)


def evaluate(
    obj: dict[str, Any],
    checks: Iterable[Check | str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Result]:
    """One result per check for ``obj`` (a Pod or an object with a pod template), in the order of ``checks``.

    ``checks`` are Check objects or ids (default: every built-in check); ``params`` maps a check id to its
    parameters. An object that carries no pod skips every check; a check that raises, or is given bad parameters,
    becomes an ``error`` result naming the exception.
    """
    chosen = checks_all() if checks is None else [c if isinstance(c, Check) else check_get(c) for c in checks]
    params = params or {}
    view = view_of(obj)
    return [run(check, view, prepare(check, params.get(check.id))) for check in chosen]


def view_of(obj: dict[str, Any]) -> Workload | UnsupportedKind:
    """The checks' view of ``obj``, or why it has none (every check then skips)."""
    try:
        return Workload.from_object(obj)
    except UnsupportedKind as exc:
        return exc


def prepare(check: Check, given: Mapping[str, Any] | None) -> dict[str, Any] | Exception:
    """The check's parameters resolved (defaults overlaid with ``given``), or the error that makes its verdict an
    ``error``: a scan resolves them once per binding, not once per workload."""
    try:
        return check.resolve_parameters(given)
    except Exception as exc:
        return exc


def run(check: Check, view: Workload | UnsupportedKind, params: Mapping[str, Any] | Exception) -> Result:
    """One check's verdict on one object's view, with parameters from :func:`prepare`."""
    if isinstance(view, UnsupportedKind):
        return _result(check, Status.SKIP, str(view))
    if isinstance(params, Exception):
        logger.warning("check %s has bad parameters on %s: %s", check.id, _name(view.obj), params)
        return _result(check, Status.ERROR, f"{type(params).__name__}: {params}")
    try:
        outcome = check.function(view, params)
    except Exception as exc:
        # One faulty check, or one odd object, must not hide the other checks' verdicts.
        logger.warning("check %s raised on %s", check.id, _name(view.obj), exc_info=True)
        return _result(check, Status.ERROR, f"{type(exc).__name__}: {exc}")
    return Result(check.id, check.policy, check.severity, outcome.status, outcome.message, outcome.fix or None)


def _result(check: Check, status: Status, message: str) -> Result:
    return Result(check.id, check.policy, check.severity, status, message)


def _name(obj: Any) -> str:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(metadata, dict):
        return "an object without metadata"
    return f"{obj.get('kind')} {metadata.get('namespace', '')}/{metadata.get('name', '')}"
