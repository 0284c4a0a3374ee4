"""What every bench script shares: its PostgreSQL database and Redis db, a complete production-like environment
for the ICC processes it starts, ``manage.py``, in-process Django, server processes, and the JSON last line.

A bench runs as ``python bench/<name>.py`` from the repository root; each script puts the root on ``sys.path``
and imports this module as ``bench.harness``. Every script has ``--quick`` (small sizes, short durations), which
``tests/core/test_benches.py`` runs so that a bench cannot break unnoticed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
import requests

from tests.support.http import wait_http_ok

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE = "icc_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
QUICK_HELP = "smoke run: small sizes and short durations (what tests/core/test_benches.py runs; figures mean little)"
# Settings the parent environment must not leak into the bench's processes: the bench sets its own.
SETTINGS_PREFIXES = (
    "DATABASE_",
    "REDIS_",
    "CELERY_",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_COOKIES",
    "HSTS_",
    "TRUSTED_PROXIES",
    "OUTBOUND_",
    "METRICS_TOKEN",
    "ICC_",
    "CLUSTER_",
    "KUBE_",
    "PROMETHEUS_",
    "SCALER_",
    "AUDIT_",
    "OIDC_",
    "LOG_",
    "WEB_CONCURRENCY",
    "WORKER_",
    "SESSION_",
    "DJANGO_",
    "PYTEST_",
)


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """The bench's argument parser, with the ``--quick`` flag every bench has."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=QUICK_HELP)
    return parser


# --- PostgreSQL and Redis ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stores:
    """The bench's database and Redis db; both are dropped or emptied at the start of every run."""

    database_url: str
    redis_url: str

    @property
    def database(self) -> str:
        name = urlsplit(self.database_url).path.lstrip("/")
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise SystemExit(f"bench database name {name!r} must be a plain identifier")
        return name

    @property
    def admin_url(self) -> str:
        return urlunsplit(urlsplit(self.database_url)._replace(path="/postgres"))

    def describe(self) -> str:
        parts = urlsplit(self.database_url)
        return f"database {self.database} on {parts.hostname}:{parts.port or 5432}, Redis {self.redis_url}"

    def reset(self, *, synchronous_commit: bool = False) -> None:
        """Drop and create the database (optionally with ``synchronous_commit = on`` for every session); empty
        the Redis db."""
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.database}"')
            if synchronous_commit:
                conn.execute(f'ALTER DATABASE "{self.database}" SET synchronous_commit = on')
        self.flush_redis()

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def flush_redis(self) -> None:
        client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        try:
            client.flushdb()
        finally:
            client.close()

    def lock(self) -> psycopg.Connection[Any]:
        """Wait for, then hold until this process exits, a PostgreSQL advisory lock named after the Redis db.

        Two bench runs on one Redis db (a manual run and the test suite's, or two suites at once) would empty
        each other's sessions, channel groups and task queue; this makes the second one wait instead.
        """
        key = int.from_bytes(hashlib.sha256(f"icc-bench {self.redis_url}".encode()).digest()[:8], "big", signed=True)
        conn = psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5)
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            print(f"waiting for another bench run on Redis {self.redis_url} to finish", flush=True)
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        return conn  # the lock lives as long as this session


def stores(suffix: str = "") -> Stores:
    """The bench's stores: ``BENCH_DATABASE_URL`` (default ``icc_bench`` on PG*/127.0.0.1) with ``suffix``
    appended to the database name, and ``BENCH_REDIS_URL`` (default db 14)."""
    base = os.environ.get("BENCH_DATABASE_URL")
    if not base:
        host, port = os.environ.get("PGHOST", "127.0.0.1"), os.environ.get("PGPORT", "5432")
        user = os.environ.get("PGUSER", "postgres")
        base = f"postgres://{user}@{host}:{port}/{os.environ.get('BENCH_DATABASE', DEFAULT_DATABASE)}"
    parts = urlsplit(base)
    name = parts.path.lstrip("/") or DEFAULT_DATABASE
    url = urlunsplit(parts._replace(path=f"/{name}{suffix}"))
    return Stores(url, os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))


# --- the environment of ICC's processes ------------------------------------------------------------------------


def fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def bench_env(bench_stores: Stores, data_dir: Path, **extra: str) -> dict[str, str]:
    """A complete production-like environment (PostgreSQL, DEBUG off) for plain HTTP on 127.0.0.1.

    The parent's ICC settings are dropped, so a developer's shell or the test run cannot change what is
    measured; ``extra`` adds or overrides settings.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
    env.update(
        DJANGO_SETTINGS_MODULE="iccapp.settings",
        DATABASE_URL=bench_stores.database_url,
        REDIS_URL=bench_stores.redis_url,
        SECRET_KEY=secrets.token_urlsafe(48),
        ICC_ENCRYPTION_KEYS=fernet_key(),
        LOG_LEVEL="WARNING",
        LOG_FORMAT="text",
        ICC_DATA_DIR=str(data_dir),  # collectstatic and generated files land here, not in the repository's var/
        # Production settings redirect to HTTPS and refuse loopback outbound connections by default; benches
        # speak plain HTTP on 127.0.0.1 to servers (kube-apiserver, Prometheus) on loopback.
        SECURE_COOKIES="false",
        OUTBOUND_ALLOWED_CIDRS="127.0.0.0/8,::1/128",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 600) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, timeout=timeout)


def setup_django(env: dict[str, str]) -> None:
    """Django in this process, with the same settings as the processes the bench starts: the environment is
    replaced, not updated, so a parent's ICC_CACHE_PREFIX (say) cannot split this process from its children."""
    os.environ.clear()
    os.environ.update(env)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def close_django() -> None:
    """Close this process's database connections (and pool), e.g. before dropping the database."""
    from django.db import connection, connections

    connections.close_all()
    if hasattr(connection, "close_pool"):
        connection.close_pool()


@dataclass
class Run:
    stores: Stores
    env: dict[str, str]
    data_dir: Path


@contextmanager
def bench_run(
    suffix: str = "",
    *,
    collectstatic: bool = False,
    synchronous_commit: bool = False,
    drop_at_end: bool = False,
    **extra_env: str,
) -> Iterator[Run]:
    """Lock, reset and migrate the bench's stores (and ``collectstatic`` for a bench that serves pages), then
    set Django up in this process. On exit: close Django's connections, remove the temporary data dir and,
    with ``drop_at_end``, drop the database."""
    run_stores = stores(suffix)
    lock = run_stores.lock()
    data_dir = Path(tempfile.mkdtemp(prefix=f"icc-bench{suffix.replace('_', '-')}-"))
    env = bench_env(run_stores, data_dir, **extra_env)
    django_ready = False
    try:
        print(f"preparing {run_stores.describe()}", flush=True)
        run_stores.reset(synchronous_commit=synchronous_commit)
        manage(env, "migrate", "--noinput", "-v0")
        if collectstatic:
            manage(env, "collectstatic", "--noinput", "-v0")
        setup_django(env)
        django_ready = True
        yield Run(run_stores, env, data_dir)
    finally:
        if django_ready:
            with suppress(Exception):
                close_django()
        shutil.rmtree(data_dir, ignore_errors=True)
        if drop_at_end:
            run_stores.drop()
            run_stores.flush_redis()
        lock.close()


# --- processes ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_process(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """A Python child (``python <args>``) in the repository, in its own session so it stops as one group."""
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, start_new_session=True)


def start_server(env: dict[str, str], port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    """The production web server: ``uvicorn iccapp.asgi:application`` on 127.0.0.1:``port``."""
    args = ["-m", "uvicorn", "iccapp.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--workers", str(workers), "--no-access-log", "--log-level", "warning", "--proxy-headers"]
    return start_process(env, *args)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, to the process group of a child this bench started (e.g. uvicorn + workers)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    wait_http_ok(f"{base}/readyz", proc, what="the server", timeout=timeout, interval=0.25, error=SystemExit)


def login(base: str, username: str, password: str) -> str:
    """Log in through the login form, as a browser does; return the session id."""
    with requests.Session() as http:
        page = http.get(f"{base}/accounts/login/", timeout=10)
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        if not match:
            raise SystemExit(f"login page ({page.status_code}) has no csrfmiddlewaretoken")
        form = {"csrfmiddlewaretoken": match.group(1), "username": username, "password": password}
        http.post(f"{base}/accounts/login/", data=form, timeout=30, allow_redirects=False)
        session_id = http.cookies.get("sessionid")
        if not session_id:
            raise SystemExit("login failed: no sessionid cookie")
        return str(session_id)


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll ``check`` until it is true; return the seconds it took. Exits the bench on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout} s waiting for {what}")


# --- a real Kubernetes control plane (tests/support/kube.py) ---------------------------------------------------------


@contextmanager
def kube_cluster(workdir: Path) -> Iterator[Any]:
    """etcd, kube-apiserver v1.20.2, controller-manager, scheduler and the simulated node of the tests; the
    binaries come from ``~/.cache/icc-kube`` (built by scripts/kube-binaries.sh when missing: ~7 minutes)."""
    from tests.support.kube import kube_bin_dir, new_cluster, start_cluster, start_node, stop_cluster

    workdir.mkdir(parents=True, exist_ok=True)
    cluster = new_cluster(kube_bin_dir(), workdir)
    try:
        start_cluster(cluster)
        start_node(cluster)
        yield cluster
    finally:
        stop_cluster(cluster)


def kube_session(cluster: Any) -> requests.Session:
    """HTTP to the cluster's API server as its admin."""
    http = requests.Session()
    http.trust_env = False  # REQUESTS_CA_BUNDLE would override the cluster CA
    http.headers["Authorization"] = f"Bearer {cluster.token}"
    http.verify = str(cluster.ca_path)
    return http


# --- figures --------------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def emit(summary: dict[str, Any]) -> None:
    """The bench's last line of output: one line of JSON (snake_case keys, units in the names)."""
    print(json.dumps(summary), flush=True)


class LoopbackReceiver:
    """A minimal HTTP/1.1 server on 127.0.0.1, on an asyncio loop in a thread, for the benches' webhook and cron
    targets: each request's headers (lower-cased names) go to :meth:`received`, a coroutine that may hold the
    answer, then 200 ``ok``; connections are kept alive until the client closes them."""

    thread_name = "bench-receiver"

    def __init__(self) -> None:
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def received(self, headers: dict[str, str], at: float) -> None:
        """One request, its headers read at ``at`` (``time.time()``) and its body read and dropped."""
        raise NotImplementedError

    def start(self) -> Any:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=4096, limit=1 << 16)
            )
            self.port = int(server.sockets[0].getsockname()[1])
            ready.set()
            loop.run_forever()

        threading.Thread(target=serve, name=self.thread_name, daemon=True).start()
        ready.wait(10)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                at = time.time()
                headers: dict[str, str] = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                if length:
                    await reader.readexactly(length)
                await self.received(headers, at)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # the client closed its connection (requests does after each call)
        writer.close()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
