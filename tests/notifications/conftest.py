"""Fixtures of the notification tests: events routed in the emitting process (as the tests drive deliveries
themselves; test_routing_task.py routes through the task), Celery tasks run inline (eager) with a short backoff, a
real SMTP server and a real HTTP receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.receiver import Receiver
from tests.support.smtp import SmtpServer


@pytest.fixture(autouse=True)
def route_inline(settings) -> None:  # type: ignore[no-untyped-def]
    settings.NOTIFICATIONS_ROUTE_INLINE = True


@pytest.fixture
def eager(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    from celery import current_app

    settings.NOTIFICATIONS_BACKOFF_SECONDS = 0.01
    settings.NOTIFICATIONS_MAX_BACKOFF_SECONDS = 0.05
    current_app.conf.task_always_eager = True
    try:
        yield
    finally:
        current_app.conf.task_always_eager = False


@pytest.fixture
def smtp(settings) -> Iterator[SmtpServer]:  # type: ignore[no-untyped-def]
    with SmtpServer() as server:
        for name, value in server.settings().items():
            setattr(settings, name, value)
        yield server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r
