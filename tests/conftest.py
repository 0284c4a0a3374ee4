"""Shared fixtures: real components, personas, and a real ICC server process.

A test that needs a real component (PostgreSQL, Redis, Chromium) and cannot reach it fails when
CI=true, and is skipped with the reason printed on a developer's machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(ok: bool, reason: str) -> None:
    """Fail in CI, skip (printing why) elsewhere, when a real component is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"required component missing in CI: {reason}")
    print(f"SKIP: {reason}", file=sys.stderr)
    pytest.skip(reason)


def tcp_reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), 2).close()
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session", autouse=True)
def _real_services() -> None:
    """The suite runs on PostgreSQL and Redis, never silently on SQLite."""
    require(settings.ICC_DATABASE_VENDOR == "postgresql", "DATABASE_URL must point to PostgreSQL for the tests")
    db = settings.DATABASES["default"]
    db_url = f"pg://{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    require(tcp_reachable(db_url, 5432), f"PostgreSQL is unreachable at {db_url}")
    require(bool(settings.REDIS_URL) and tcp_reachable(settings.REDIS_URL, 6379), "Redis (REDIS_URL) is unreachable")


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):  # type: ignore[no-untyped-def]
    """In-process tests render templates without a collectstatic manifest (servers we start collect one)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _clean_redis_db() -> Iterator[None]:
    """Each test starts with an empty Redis test database (cache, channel layer, broker)."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield
    client.close()


@pytest.fixture(autouse=True)
def _fresh_request_context() -> None:
    """Each test starts outside any request: the request context (user, request id) is kept after a
    response on purpose (for logging), so a test calling services directly after another test's request
    would otherwise act as that request's user."""
    from apps.core import context

    context.start()


@dataclass
class Persona:
    username: str
    password: str
    user: object


@pytest.fixture
def make_user(db):  # type: ignore[no-untyped-def]
    from apps.users.services import user_create

    def make(username: str, *, staff: bool = False, superuser: bool = False, role: str | None = None) -> Persona:
        """A user; ``role`` adds a global role binding (viewer, operator, admin)."""
        from apps.users.models import RoleBinding

        password = f"pw-{username}-Correct-Horse-42"
        user = user_create(username=username, password=password, is_staff=staff, is_superuser=superuser)
        if role:
            RoleBinding.objects.create(user=user, role=role)
        return Persona(username, password, user)

    return make


@pytest.fixture
def admin_persona(make_user) -> Persona:  # type: ignore[no-untyped-def]
    return make_user("ada-admin", superuser=True)


@pytest.fixture
def viewer_persona(make_user) -> Persona:  # type: ignore[no-untyped-def]
    """Reads everything (a global viewer binding), may change nothing."""
    return make_user("vic-viewer", role="viewer")


@pytest.fixture
def outsider_persona(make_user) -> Persona:  # type: ignore[no-untyped-def]
    """Logged in, no role binding at all."""
    return make_user("olga-outsider")


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


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready")
        try:
            response = requests.get(f"{url}/readyz", timeout=2)
            if response.status_code == 200:
                return
            last = response.text
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.3)
    raise RuntimeError(f"server not ready after {timeout}s: {last}")


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
        timeout=120,
    )
    return data_dir / "static"


@contextmanager
def running_icc(
    tmp_path: Path, static: Path, port: int, *, data_name: str | None = None, **extra: str
) -> Iterator[RunningServer]:
    """A real ICC web process (uvicorn via ``manage.py run``) on the test database and Redis, with
    ``extra`` environment; its data dir links the session's collected static files."""
    data_dir = tmp_path / (data_name or f"data-{port}")
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (data_dir / "static").exists():
        (data_dir / "static").symlink_to(static, target_is_directory=True)
    log_path = tmp_path / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run", "--port", str(port)],
            cwd=ROOT,
            env=server_env(ICC_DATA_DIR=str(data_dir), **extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_ready(server.url, process)
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
