"""Structured JSON logging: one object per line, carrying the request id of the current context."""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from apps.core import context

_base_factory = logging.getLogRecordFactory()


def _record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    ctx = context.current()
    record.request_id = ctx.request_id or "-"
    return record


def install_record_factory() -> None:
    """Stamp every log record, whichever handler gets it, with the current request id."""
    if logging.getLogRecordFactory() is not _record_factory:
        logging.setLogRecordFactory(_record_factory)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (and the task name, inside a task) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = context.current()
        if not hasattr(record, "request_id"):
            record.request_id = ctx.request_id or "-"
        if ctx.task and not hasattr(record, "task"):
            record.task = ctx.task
        return True


class JsonFormatter(_BaseJsonFormatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)
