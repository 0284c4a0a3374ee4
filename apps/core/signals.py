"""Carry the request id from the web request into the tasks it enqueues, and into their logs."""

from __future__ import annotations

import contextlib
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun

from apps.core import context

_tokens: dict[str, object] = {}


@before_task_publish.connect
def _add_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None and "icc_request_id" not in headers:
        headers["icc_request_id"] = context.current().request_id


@task_prerun.connect
def _bind_task_context(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    request_id = getattr(task.request, "icc_request_id", None) or ""
    if not request_id:
        headers = getattr(task.request, "headers", None) or {}
        request_id = headers.get("icc_request_id", "") if isinstance(headers, dict) else ""
    _tokens[task_id or ""] = context.bind(request_id=request_id, source="task", task=getattr(task, "name", ""))


@task_postrun.connect
def _unbind_task_context(task_id: str | None = None, **_: Any) -> None:
    token = _tokens.pop(task_id or "", None)
    if token is not None:
        # reset from another context (threads pool) fails; that thread's context is discarded anyway
        with contextlib.suppress(ValueError):
            context.reset(token)
