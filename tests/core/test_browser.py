"""The portal in a real browser: Debian's Chromium driven by Playwright against a real ICC server process.

The server (``icc_server``) runs uvicorn on the test PostgreSQL database and the Redis channel layer; a
write made by this test process reaches the browser through Redis and the server's websocket consumer.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import log_in, log_in_to, outside_playwright, record_frames, wait_for_frame
from tests.support.components import ARTIFACTS, ROOT
from tests.support.personas import Persona
from tests.support.server import RunningServer, server_env, stop_process, wait_ready

pytestmark = pytest.mark.browser


def test_login_then_dashboard_counter_updates_live(
    icc_server: RunningServer, admin_persona: Persona, page: Any
) -> None:
    from playwright.sync_api import expect

    from apps.users.models import User
    from apps.users.services import user_create

    frames: list[str] = []

    def on_websocket(ws: Any) -> None:
        ws.on("framereceived", lambda payload: frames.append(payload if isinstance(payload, str) else payload.decode()))

    page.on("websocket", on_websocket)
    try:
        users_before = outside_playwright(lambda: User.objects.filter(is_active=True).count())

        page.goto(f"{icc_server.url}/")
        expect(page).to_have_url(f"{icc_server.url}/accounts/login/?next=/")
        expect(page.locator("h1")).to_have_text("Log in to ICC")

        log_in(page, admin_persona.username, admin_persona.password)
        expect(page).to_have_url(f"{icc_server.url}/")
        expect(page.locator("h1")).to_have_text("Dashboard")
        counter = page.locator("#counter-users")
        expect(counter).to_have_text(str(users_before))

        # The consumer pushes the counters fragment right after subscribing: then the socket is live.
        deadline = time.monotonic() + 15
        while not any("dashboard-counters" in f for f in frames):
            assert time.monotonic() < deadline, f"no websocket snapshot within 15 s; frames: {frames}"
            page.wait_for_timeout(100)

        outside_playwright(lambda: user_create(username="new-live-user", password="pw-new-live-user-Horse-42"))

        # No reload: the update travels test -> Redis channel layer -> server consumer -> browser.
        expect(counter).to_have_text(str(users_before + 1), timeout=10_000)
        assert page.locator("h1").count() == 1  # the page itself was not replaced
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"), full_page=True)
    except Exception:
        print(icc_server.log()[-5000:], file=sys.stderr)
        raise


def test_logged_out_visit_lands_on_login_and_wrong_password_is_refused(
    icc_server: RunningServer, admin_persona: Persona, page: Any
) -> None:
    from playwright.sync_api import expect

    response = page.goto(f"{icc_server.url}/")
    assert response is not None
    assert response.status == 200
    expect(page).to_have_url(f"{icc_server.url}/accounts/login/?next=/")
    expect(page.locator("h1")).to_have_text("Log in to ICC")
    expect(page.locator("#counter-users")).to_have_count(0)

    with page.expect_response(lambda r: r.request.method == "POST" and "/accounts/login/" in r.url) as posted:
        log_in(page, admin_persona.username, "definitely-not-the-password")
    assert posted.value.status == 200, f"login POST answered {posted.value.status}"
    error = page.locator("form .icc-error[role=alert]")
    expect(error).to_be_visible()
    expect(error).to_contain_text("correct username and password")
    expect(page.locator("h1")).to_have_text("Log in to ICC")
    expect(page.locator("input[name=username]")).to_have_value(admin_persona.username)
    assert "Traceback" not in icc_server.log()


def test_dashboard_reconnects_and_catches_up_after_a_server_restart(
    icc_server: RunningServer, admin_persona: Persona, tmp_path: Path, page: Any
) -> None:
    """The server goes away and comes back: the page's websocket reconnects by itself, re-subscribes (the
    topics are in its URL) and the snapshot sent on subscribing shows what changed while it was down."""
    from playwright.sync_api import expect

    from apps.users.models import User
    from apps.users.services import user_create

    sockets: list[Any] = []
    frames: list[tuple[int, str]] = []

    def on_websocket(ws: Any) -> None:
        index = len(sockets)
        sockets.append(ws)
        ws.on("framereceived", lambda p: frames.append((index, p if isinstance(p, str) else p.decode())))

    def wait_for_snapshot(socket_index: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(i == socket_index and "dashboard-counters" in f for i, f in frames):
            assert time.monotonic() < deadline, f"no snapshot on websocket #{socket_index} within {timeout} s"
            page.wait_for_timeout(100)

    page.on("websocket", on_websocket)
    port = icc_server.url.rsplit(":", 1)[1]
    restarted: subprocess.Popen[bytes] | None = None
    log_path = tmp_path / "server-restarted.log"
    try:
        users_before = outside_playwright(lambda: User.objects.filter(is_active=True).count())
        page.goto(f"{icc_server.url}/accounts/login/")
        log_in(page, admin_persona.username, admin_persona.password)
        expect(page.locator("h1")).to_have_text("Dashboard")
        counter = page.locator("#counter-users")
        expect(counter).to_have_text(str(users_before))
        wait_for_snapshot(0, 15)
        page.evaluate("window.__iccSamePage = true")

        assert stop_process(icc_server.process) is not None
        # Written while no server runs: the live update is lost, the snapshot on reconnect must catch up.
        outside_playwright(lambda: user_create(username="while-down", password="pw-while-down-Horse-42"))
        with log_path.open("wb") as log:
            restarted = subprocess.Popen(
                [sys.executable, "manage.py", "run", "--port", port],
                cwd=ROOT,
                env=server_env(ICC_DATA_DIR=str(tmp_path / "data")),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_ready(icc_server.url, restarted)

        # htmx's ws extension retries with exponential "full jitter" back-off (up to 2^n s per attempt).
        expect(counter).to_have_text(str(users_before + 1), timeout=30_000)
        assert len(sockets) >= 2, "the page did not open a new websocket"
        wait_for_snapshot(len(sockets) - 1, 5)
        assert page.evaluate("window.__iccSamePage") is True, "the page was reloaded"

        # And the new connection receives live updates again.
        outside_playwright(lambda: user_create(username="after-restart", password="pw-after-restart-Horse-42"))
        expect(counter).to_have_text(str(users_before + 2), timeout=10_000)
    except Exception:
        print(icc_server.log()[-3000:], file=sys.stderr)
        if log_path.exists():
            print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        if restarted is not None:
            stop_process(restarted)


def test_audit_page_tails_new_events_live(icc_server: RunningServer, admin_persona: Persona, page: Any) -> None:
    from playwright.sync_api import expect

    from apps.users.services import user_create

    frames = record_frames(page)
    log_in_to(page, icc_server.url, "/audit/", admin_persona)
    expect(page.locator("h1")).to_have_text("Audit trail")
    expect(page.locator("#audit-rows")).to_contain_text("users.session.login")
    wait_for_frame(page, frames, "audit-live-status")

    outside_playwright(lambda: user_create(username="audited-live", password="pw-audited-live-Horse-42"))

    first_row = page.locator("#audit-rows tr").first
    expect(first_row).to_contain_text("users.user.create", timeout=10_000)
    expect(first_row).to_contain_text("audited-live")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "audit-live.png"), full_page=True)
