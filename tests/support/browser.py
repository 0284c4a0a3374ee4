"""Debian's Chromium driven by Playwright: the ``page`` fixture (on ``icc_server``), ``chromium_page`` for
fixtures that need another server or set-up first, and helpers for the ORM while Playwright runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.components import require
from tests.support.server import RunningServer

T = TypeVar("T")

CHROMIUM_CANDIDATES = (Path("/usr/lib/chromium/chromium"), Path("/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    # Without these Chromium floods the closed network with connection attempts.
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_path() -> Path | None:
    return next((p for p in CHROMIUM_CANDIDATES if p.exists()), None)


@contextmanager
def chromium_page(height: int = 800) -> Iterator[Any]:
    """A fresh headless Chromium page (1280 x ``height``, 15 s default timeout); the browser closes after."""
    path = chromium_path()
    require(path is not None, "Chromium is not installed (apt-get install -y --no-install-recommends chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(path), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": height})
            context.set_default_timeout(15_000)
            yield context.new_page()
        finally:
            browser.close()


@pytest.fixture
def page(icc_server: RunningServer) -> Iterator[Any]:
    """A fresh Chromium page, for the duration of one test only.

    Playwright's sync API runs an asyncio event loop in this thread while it is started; in that window
    Django's ORM refuses to run here (SynchronousOnlyOperation). So the browser starts after the database
    fixtures and personas (request ``page`` after them) and stops before the database is flushed (this
    fixture depends on ``icc_server``, hence on ``transactional_db``, so it is torn down first). ORM calls
    in the test body go through :func:`outside_playwright`.
    """
    with chromium_page() as new_page:
        yield new_page


def outside_playwright(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread and return its result.

    Playwright's sync API keeps an asyncio event loop running in this (the main) thread, so in it Django's
    ORM raises SynchronousOnlyOperation and ``async_to_sync`` (used by ``send_now`` to publish the live
    update) refuses to run. A plain worker thread has no running loop: the write and its after-commit
    publish happen exactly as they would in a request. With ``transactional_db`` the thread's own database
    connection sees, and commits to, the test database.
    """
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        from django.db import connections

        try:
            result.append(fn())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, name="orm-outside-playwright")
    thread.start()
    thread.join(60)
    if errors:
        raise errors[0]
    assert result, "ORM thread did not finish"
    return result[0]


def log_in(page: Any, username: str, password: str) -> None:
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def record_frames(page: Any) -> list[str]:
    """The text of every websocket frame the page receives from now on (the list fills as they arrive)."""
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda p: frames.append(str(p))))
    return frames


def log_in_to(page: Any, server_url: str, path: str, persona: Any) -> None:
    """Log ``persona`` in through the form, asking for ``path``, and land there."""
    from playwright.sync_api import expect

    page.goto(f"{server_url}/accounts/login/?next={path}")
    log_in(page, persona.username, persona.password)
    expect(page).to_have_url(f"{server_url}{path}")


def wait_for_frame(page: Any, frames: list[str], marker: str, timeout: float = 15) -> None:
    """Let the page run until a frame containing ``marker`` arrived (the snapshot sent on subscribing: the
    socket is live)."""
    deadline = time.monotonic() + timeout
    while not any(marker in f for f in frames):
        assert time.monotonic() < deadline, f"no websocket frame with {marker!r} within {timeout} s: {frames[:3]}"
        page.wait_for_timeout(100)
