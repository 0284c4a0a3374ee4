"""The embedded default: ``scripts/run.sh`` in a fresh copy of the repository, with an empty environment.

No DATABASE_URL, no REDIS_URL, no SECRET_KEY: the script creates its own virtualenv, installs the
pinned requirements, migrates SQLite, bootstraps the administrator and starts one process serving the
portal with an embedded Celery worker and scheduler. Ctrl-C (SIGINT) must stop it cleanly.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.components import ARTIFACTS, ROOT, free_port
from tests.support.server import wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

READY_TIMEOUT_S = 600  # the first run creates a virtualenv and installs requirements.txt
HEARTBEAT_TIMEOUT_S = 45  # the embedded beat sends core.heartbeat every ICC_HEARTBEAT_SECONDS (15 s)
STOP_TIMEOUT_S = 30
COUNTER_RE = r'id="counter-{key}">\s*([^<]*?)\s*</p>'


def repository_files() -> list[str]:
    """Tracked files plus untracked files that are not ignored (what a fresh checkout would hold, and then some)."""
    listed: list[str] = []
    for extra in ([], ["--others", "--exclude-standard"]):
        out = subprocess.run(["git", "ls-files", "-z", *extra], cwd=ROOT, check=True, capture_output=True).stdout
        listed += [name for name in out.decode().split("\0") if name]
    return sorted(set(listed))


def copy_repository(dest: Path) -> None:
    for name in repository_files():
        source = ROOT / name
        if not source.is_file():  # deleted in the working tree, or a submodule
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


def empty_environment(port: int) -> dict[str, str]:
    """What a user's shell would minimally have: PATH, HOME, LANG (plus pip's own settings, if any)."""
    venv_bin = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != venv_bin)
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/root"), "LANG": os.environ.get("LANG", "C.UTF-8")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    env["PORT"] = str(port)
    return env


def counter(html: str, key: str) -> str | None:
    found = re.search(COUNTER_RE.format(key=key), html)
    return found.group(1) if found else None


def interrupt(process: subprocess.Popen[bytes]) -> int | None:
    """Ctrl-C: SIGINT to the process group this test started (``start_new_session``), then wait."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    copy = tmp_path / "icc"
    copy_repository(copy)
    assert (copy / "scripts" / "run.sh").is_file()
    assert not (copy / ".venv").exists()
    assert not (copy / "var").exists()
    return copy


@pytest.fixture
def embedded_run(checkout: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=checkout,
            env=empty_environment(port),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGINT reaches it and only it
        )
    try:
        yield f"http://127.0.0.1:{port}", process, log_path
    finally:
        if process.poll() is None and interrupt(process) is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, ARTIFACTS / "embedded-run.log")


def test_run_sh_serves_everything_from_one_process_and_stops_on_ctrl_c(
    embedded_run: tuple[str, subprocess.Popen[bytes], Path], checkout: Path
) -> None:
    url, process, log_path = embedded_run
    try:
        wait_ready(url, process, timeout=READY_TIMEOUT_S)
        ready = requests.get(f"{url}/readyz", timeout=5).json()
        assert ready["status"] == "ok", ready
        assert ready["checks"]["database"] == "ok", ready
        assert ready["checks"]["redis"] == "ok (not configured: in-memory)", ready
        assert ready["checks"]["broker"] == "ok", ready

        log = log_path.read_text(errors="replace")
        password_file = checkout / "var" / "initial_admin_password"
        assert f"Its password is in {password_file}" in log, log[-3000:]
        assert (password_file.stat().st_mode & 0o777) == 0o600
        password = password_file.read_text().strip()
        assert password
        assert password not in log

        session = requests.Session()
        login = session.get(f"{url}/accounts/login/", timeout=10)
        assert login.status_code == 200
        assert "csrftoken" in session.cookies
        answer = session.post(
            f"{url}/accounts/login/",
            data={
                "username": "admin",
                "password": password,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
                "next": "/",
            },
            headers={"Referer": f"{url}/accounts/login/"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.status_code
        assert answer.url == f"{url}/", f"login did not redirect to the dashboard: {answer.url}"
        dashboard = session.get(f"{url}/", timeout=10)
        assert dashboard.status_code == 200
        assert dashboard.url == f"{url}/"
        assert "<h1>Dashboard</h1>" in dashboard.text
        assert counter(dashboard.text, "users") == "1", dashboard.text  # the bootstrapped admin

        # The embedded scheduler sends core.heartbeat; the embedded worker runs it and records the time.
        deadline = time.monotonic() + HEARTBEAT_TIMEOUT_S
        heartbeat = counter(dashboard.text, "worker")
        while heartbeat in (None, "never"):
            assert time.monotonic() < deadline, f"no worker heartbeat within {HEARTBEAT_TIMEOUT_S} s"
            assert process.poll() is None, "ICC exited while waiting for the heartbeat"
            time.sleep(1)
            heartbeat = counter(session.get(f"{url}/", timeout=10).text, "worker")
        assert re.fullmatch(r"\d+ s ago", heartbeat), heartbeat

        # Ctrl-C: `exec` made the Python process the script's process; a clean stop exits with 0.
        started = time.monotonic()
        returncode = interrupt(process)
        stopped_after = time.monotonic() - started
        log = log_path.read_text(errors="replace")
        assert returncode is not None, f"ICC did not stop within {STOP_TIMEOUT_S} s of SIGINT"
        assert returncode == 0, f"exit code {returncode} after SIGINT"
        assert "Traceback" not in log
        assert "embedded worker and scheduler stopped" in log
        print(f"stopped {stopped_after:.1f} s after SIGINT", file=sys.stderr)
    except BaseException:
        print("---- run.sh log (tail) ----", file=sys.stderr)
        print(log_path.read_text(errors="replace")[-8000:], file=sys.stderr)
        raise
