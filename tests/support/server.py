"""A real ICC server process on this test run's database and Redis (fixtures ``collected_static`` and
``icc_server``; ``running_icc`` for a server with its own environment), and ``manage.py check`` in a clean
environment (``start_up_check``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from tests.support.components import ROOT, free_port
from tests.support.http import wait_http_ok


def server_env(**extra: str) -> dict[str, str]:
    """The environment of a child ICC process that shares this test run's database and Redis."""
    db = settings.DATABASES["default"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = f"{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    env.update(
        DATABASE_URL=f"postgres://{user}{password}@{host}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        SECRET_KEY=settings.SECRET_KEY,
        ICC_ENCRYPTION_KEYS=",".join(settings.ICC_ENCRYPTION_KEYS),
        LOG_FORMAT="text",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def start_up_check(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py check`` in a clean environment plus ``env``: ICC's start-up path."""
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "ICC_DATA_DIR": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start_celery_worker(log_path: Path, *, queue: str, hostname: str, **extra: str) -> subprocess.Popen[bytes]:
    """A real Celery worker process (solo pool) consuming ``queue``, on the test database and Redis; its output
    goes to ``log_path``. Stop it with :func:`stop_process`."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "iccapp", "worker", "--pool", "solo", "-Q", queue),
                *("--hostname", f"{hostname}@%h", "--without-mingle", "--without-gossip", "--loglevel", "INFO"),
            ],
            cwd=ROOT,
            env=server_env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60, verify: str | bool = True) -> None:
    wait_http_ok(f"{url}/readyz", process, what="server", timeout=timeout, interval=0.3, verify=verify)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``collectstatic`` once per session: served pages use the manifest storage, which needs it."""
    data_dir = tmp_path_factory.mktemp("static-data")
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=server_env(ICC_DATA_DIR=str(data_dir)),
        check=True,
        timeout=600,
    )
    return data_dir / "static"


@contextmanager
def running_icc(
    tmp_path: Path,
    static: Path,
    port: int,
    *,
    data_name: str | None = None,
    tls: tuple[Path, Path, Path] | None = None,
    **extra: str,
) -> Iterator[RunningServer]:
    """A real ICC web process (uvicorn via ``manage.py run``) on the test database and Redis, with
    ``extra`` environment; its data dir links the session's collected static files. ``tls``: (certificate,
    key, CA) to serve HTTPS."""
    data_dir = tmp_path / (data_name or f"data-{port}")
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (data_dir / "static").exists():
        (data_dir / "static").symlink_to(static, target_is_directory=True)
    log_path = tmp_path / f"server-{port}.log"
    tls_args = ["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])] if tls else []
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run", "--port", str(port), *tls_args],
            cwd=ROOT,
            env=server_env(ICC_DATA_DIR=str(data_dir), **extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(f"{'https' if tls else 'http'}://127.0.0.1:{port}", process, log_path)
    try:
        wait_ready(server.url, process, verify=str(tls[2]) if tls else True)
        yield server
    except Exception:
        print(server.log(), file=sys.stderr)
        raise
    finally:
        stop_process(process)


@pytest.fixture
def icc_server(transactional_db, tmp_path, collected_static) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    """A real ICC web process on the test database and Redis."""
    with running_icc(tmp_path, collected_static, free_port(), data_name="data") as server:
        yield server


@pytest.fixture
def watching_server(transactional_db, tmp_path, collected_static) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    """A real ICC web process with the cluster watcher embedded (ICC_WATCHER_EMBEDDED=true)."""
    with running_icc(tmp_path, collected_static, free_port(), ICC_WATCHER_EMBEDDED="true") as server:
        yield server
