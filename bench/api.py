"""Benchmark of ICC's web role: Django hello-world vs. an authenticated, paginated API list.

Starts ``uvicorn iccapp.asgi:application --workers N`` (the production server configuration) against a
dedicated PostgreSQL database and Redis db, loads it with wrk and prints requests/s, p99 latency, the
list/hello throughput ratio and the SQL queries per list request, then one line of JSON.
Targets are printed, not asserted. Run: ``.venv/bin/python bench/api.py`` (see bench/README.md).
"""

from __future__ import annotations

import argparse
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
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
HELLO_PATH = "/healthz"
LIST_PATH = "/api/v1/users/?limit=100"
LIST_ITEMS = 100
USERS = 150
STAFF_USERNAME = "bench-staff"
STAFF_PASSWORD = secrets.token_urlsafe(16)
TARGET_RATIO = 0.4
TARGET_LIST_P99_MS = 50.0
TARGET_LIST_SQL_QUERIES = 3
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def database_url() -> str:
    if url := os.environ.get("BENCH_DATABASE_URL"):
        return url
    host, port = os.environ.get("PGHOST", "127.0.0.1"), os.environ.get("PGPORT", "5432")
    user = os.environ.get("PGUSER", "postgres")
    return f"postgres://{user}@{host}:{port}/{os.environ.get('BENCH_DATABASE', 'icc_bench')}"


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def bench_env(workers: int, data_dir: Path) -> dict[str, str]:
    """The parent environment minus ICC settings that would change the setup, plus the bench settings."""
    drop = ("DATABASE_", "REDIS_", "CELERY_", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "SECURE_COOKIES", "ICC_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        DJANGO_SETTINGS_MODULE="iccapp.settings",
        DATABASE_URL=database_url(),
        REDIS_URL=redis_url(),
        SECRET_KEY=secrets.token_urlsafe(48),
        LOG_LEVEL="WARNING",
        WEB_CONCURRENCY=str(workers),
        ICC_DATA_DIR=str(data_dir),  # collectstatic goes here, not into the repository's var/
        PYTHONUNBUFFERED="1",
    )
    return env


def reset_stores() -> None:
    """Drop and create the bench database; empty the bench Redis db."""
    parts = urlsplit(database_url())
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise SystemExit(f"bench database name {name!r} must be a plain identifier")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    client = redis.Redis.from_url(redis_url(), socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, timeout=300)


def seed_and_count_queries() -> int:
    """In this process: create the users, then count the SQL queries of one list request (test Client)."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection, connections
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user_model = get_user_model()
    unusable = make_password(None)
    user_model.objects.bulk_create(
        user_model(username=f"user{i:04d}", email=f"user{i:04d}@example.test", password=unusable, display_name=f"U{i}")
        for i in range(USERS)
    )
    staff = user_model.objects.create_user(STAFF_USERNAME, "staff@example.test", STAFF_PASSWORD, is_staff=True)
    client = Client()
    client.force_login(staff)
    client.get(LIST_PATH)  # first request: warm caches that a long-running server has warm too
    with CaptureQueriesContext(connection) as captured:
        response = client.get(LIST_PATH)
    if response.status_code != 200:
        raise SystemExit(f"test Client: GET {LIST_PATH} returned {response.status_code}")
    for query in captured.captured_queries:
        print(f"  sql: {query['sql'][:150]}")
    connections.close_all()
    if hasattr(connection, "close_pool"):
        connection.close_pool()
    return len(captured.captured_queries)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(env: dict[str, str], port: int, workers: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "uvicorn", "iccapp.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers), "--no-access-log", "--log-level", "warning", "--proxy-headers"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)  # the group of the process this script started (uvicorn + its workers)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"uvicorn exited with status {proc.returncode} before it was ready")
        try:
            if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet: poll again until the timeout
        time.sleep(0.25)
    raise SystemExit(f"{base}/readyz did not return 200 within {timeout:.0f} s")


def login(base: str) -> str:
    """Log the staff user in through the login form; return the session id."""
    with requests.Session() as http:
        page = http.get(f"{base}/accounts/login/", timeout=10)
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        if not match:
            raise SystemExit("login page has no csrfmiddlewaretoken")
        form = {"csrfmiddlewaretoken": match.group(1), "username": STAFF_USERNAME, "password": STAFF_PASSWORD}
        http.post(f"{base}/accounts/login/", data=form, timeout=30, allow_redirects=False)
        session_id = http.cookies.get("sessionid")
        if not session_id:
            raise SystemExit("login failed: no sessionid cookie")
        check = http.get(f"{base}{LIST_PATH}", timeout=10)
        items = len(check.json().get("results", [])) if check.status_code == 200 else 0
        if items != LIST_ITEMS:
            raise SystemExit(f"GET {LIST_PATH}: status {check.status_code}, {items} items, expected {LIST_ITEMS}")
        return str(session_id)


def wrk(url: str, *, duration: int, connections: int, threads: int, cookie: str | None) -> dict[str, Any]:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "--latency"]
    if cookie:
        cmd += ["-H", f"Cookie: sessionid={cookie}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p50 and p99 and total):
        raise SystemExit(f"cannot parse wrk output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": float(p50.group(1)) * UNITS_MS[p50.group(2)],
        "p99_ms": float(p99.group(1)) * UNITS_MS[p99.group(2)],
        "requests": int(total.group(1)),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found: installing the Debian package")
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, timeout=300)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is required: sudo apt-get install -y wrk")


def measure(base: str, path: str, args: argparse.Namespace, cookie: str | None) -> dict[str, Any]:
    opts = {"connections": args.connections, "threads": args.threads, "cookie": cookie}
    wrk(base + path, duration=args.warmup, **opts)
    result = wrk(base + path, duration=args.duration, **opts)
    if result["non_2xx"] or result["socket_errors"]:
        print(f"WARNING {path}: {result['non_2xx']} non-2xx responses, {result['socket_errors']} socket errors")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of measured load per endpoint")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load before each")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (WEB_CONCURRENCY)")
    args = parser.parse_args()
    ensure_wrk()

    data_dir = Path(tempfile.mkdtemp(prefix="icc-bench-"))
    env = bench_env(args.workers, data_dir)
    os.environ.update(env)  # the in-process Django (seeding, query count) uses the same settings
    proc: subprocess.Popen[bytes] | None = None
    try:
        db = urlsplit(database_url())
        print(f"preparing database {db.path.lstrip('/')} on {db.hostname}:{db.port or 5432}, Redis {redis_url()}")
        reset_stores()
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "collectstatic", "--noinput", "-v0")
        queries = seed_and_count_queries()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(env, port, args.workers)
        wait_ready(base, proc)
        cookie = login(base)
        load_before = os.getloadavg()[0]  # the host is shared: other load skews both figures
        print(f"measuring: wrk -t{args.threads} -c{args.connections}, {args.warmup} s warm-up + {args.duration} s each")
        hello = measure(base, HELLO_PATH, args, None)
        listing = measure(base, LIST_PATH, args, cookie)
    finally:
        if proc is not None:
            stop_server(proc)
        shutil.rmtree(data_dir, ignore_errors=True)

    ratio = listing["rps"] / hello["rps"] if hello["rps"] else 0.0
    print()
    rows = [
        ("endpoint", "req/s", "p50 ms", "p99 ms", "requests"),
        (f"GET {HELLO_PATH}", *(f"{hello[k]:.1f}" for k in ("rps", "p50_ms", "p99_ms")), str(hello["requests"])),
        (f"GET {LIST_PATH}", *(f"{listing[k]:.1f}" for k in ("rps", "p50_ms", "p99_ms")), str(listing["requests"])),
    ]
    for row in rows:
        print(f"{row[0]:<34}{row[1]:>10}{row[2]:>10}{row[3]:>10}{row[4]:>10}")
    p99 = listing["p99_ms"]
    checks = [
        ("ratio list/hello req/s", f"{ratio:.3f}", f">= {TARGET_RATIO}", ratio >= TARGET_RATIO),
        ("list p99 latency", f"{p99:.1f} ms", f"<= {TARGET_LIST_P99_MS:.0f} ms", p99 <= TARGET_LIST_P99_MS),
        ("SQL queries per list", str(queries), f"<= {TARGET_LIST_SQL_QUERIES}", queries <= TARGET_LIST_SQL_QUERIES),
    ]
    print()
    for name, value, target, ok in checks:
        print(f"{name:<34}{value:>12}   target {target:<10} {'met' if ok else 'MISSED'}")
    print()
    summary = {
        "hello_rps": round(hello["rps"], 1),
        "hello_p50_ms": round(hello["p50_ms"], 2),
        "hello_p99_ms": round(hello["p99_ms"], 2),
        "list_rps": round(listing["rps"], 1),
        "list_p50_ms": round(listing["p50_ms"], 2),
        "list_p99_ms": round(listing["p99_ms"], 2),
        "list_items": LIST_ITEMS,
        "list_sql_queries": queries,
        "ratio_list_hello_rps": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "target_list_p99_ms": TARGET_LIST_P99_MS,
        "target_list_sql_queries": TARGET_LIST_SQL_QUERIES,
        "server": f"uvicorn --workers {args.workers}",
        "load": f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s",
        "errors": sum(r["non_2xx"] + r["socket_errors"] for r in (hello, listing)),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(load_before, 2),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
