"""Carry the request id from the web request into the tasks it enqueues, and into their logs."""

from __future__ import annotations

from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.dispatch import Signal

from apps.core import context


@before_task_publish.connect
def _add_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None and "icc_request_id" not in headers:
        headers["icc_request_id"] = context.current().request_id


@task_prerun.connect
def _start_task_context(task: Any = None, **_: Any) -> None:
    request_id = getattr(task.request, "icc_request_id", None) or ""
    context.start(request_id=request_id, source="task", task=getattr(task, "name", ""))


@task_postrun.connect
def _end_task_context(**_: Any) -> None:
    context.start()


# Sent by the API when a request is refused (403/404 for lack of rights); the audit app records it.
access_denied = Signal()
