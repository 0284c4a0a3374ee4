"""Benchmark of ICC's web role: Django hello-world vs. an authenticated, paginated API list.

Starts ``uvicorn iccapp.asgi:application --workers N`` (the production server configuration) against a
dedicated PostgreSQL database and Redis db, loads it with wrk and prints requests/s, p99 latency, the
list/hello throughput ratio and the SQL queries per list request, then one line of JSON.
Targets are printed, not asserted. Run: ``.venv/bin/python bench/api.py`` (see bench/README.md).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: bench.harness, apps

from bench import harness

HELLO_PATH = "/healthz"
LIST_PATH = "/api/v1/users/?limit=100"
LIST_ITEMS = 100
USERS = 150
VIEWER_USERNAME = "bench-viewer"
VIEWER_PASSWORD = secrets.token_urlsafe(16)
TARGET_RATIO = 0.4
TARGET_LIST_P99_MS = 50.0
TARGET_LIST_SQL_QUERIES = 3
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def seed_and_count_queries() -> int:
    """In this process: create the users and the viewer (a global viewer binding: reads every user), then
    count the SQL queries of one list request through the test Client."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from apps.users.models import RoleBinding

    user_model = get_user_model()
    unusable = make_password(None)
    user_model.objects.bulk_create(
        user_model(username=f"user{i:04d}", email=f"user{i:04d}@example.test", password=unusable, display_name=f"U{i}")
        for i in range(USERS)
    )
    viewer = user_model.objects.create_user(VIEWER_USERNAME, "viewer@example.test", VIEWER_PASSWORD)
    RoleBinding.objects.create(user=viewer, role="viewer")  # without it a user lists only themselves
    client = Client()
    client.force_login(viewer)
    client.get(LIST_PATH)  # first request: warm caches that a long-running server has warm too
    with CaptureQueriesContext(connection) as captured:
        response = client.get(LIST_PATH)
    if response.status_code != 200:
        raise SystemExit(f"test Client: GET {LIST_PATH} returned {response.status_code}")
    items = len(response.json().get("results", []))
    if items != LIST_ITEMS:
        raise SystemExit(f"test Client: GET {LIST_PATH} returned {items} items, expected {LIST_ITEMS}")
    for query in captured.captured_queries:
        print(f"  sql: {query['sql'][:150]}")
    harness.close_django()
    return len(captured.captured_queries)


def list_items(base: str, session_id: str) -> int:
    """The items the served list returns to the viewer's session (the figure is meaningless unless 100)."""
    response = requests.get(f"{base}{LIST_PATH}", cookies={"sessionid": session_id}, timeout=10)
    items = len(response.json().get("results", [])) if response.status_code == 200 else 0
    if items != LIST_ITEMS:
        raise SystemExit(f"GET {LIST_PATH}: status {response.status_code}, {items} items, expected {LIST_ITEMS}")
    return items


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
    """wrk, installing Debian's package as root or through passwordless sudo when it is missing."""
    if shutil.which("wrk"):
        return
    root = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if shutil.which("apt-get") and (not root or shutil.which("sudo")):
        print("wrk not found: installing the Debian package", flush=True)
        install = [*root, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, check=False, timeout=300).returncode != 0:
            subprocess.run([*root, "apt-get", "update", "-q"], check=False, timeout=300)
            subprocess.run(install, check=False, timeout=300)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is required: sudo apt-get install -y wrk")


def measure(base: str, path: str, args: Any, cookie: str | None) -> dict[str, Any]:
    opts = {"connections": args.connections, "threads": args.threads, "cookie": cookie}
    wrk(base + path, duration=args.warmup, **opts)
    result = wrk(base + path, duration=args.duration, **opts)
    if result["non_2xx"] or result["socket_errors"]:
        print(f"WARNING {path}: {result['non_2xx']} non-2xx responses, {result['socket_errors']} socket errors")
    return result


def main() -> int:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--duration", type=int, default=None, help="seconds of measured load per endpoint (10)")
    parser.add_argument("--warmup", type=int, default=None, help="seconds of unmeasured load before each (2)")
    parser.add_argument("--connections", type=int, default=None, help="wrk connections (16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (WEB_CONCURRENCY)")
    args = parser.parse_args()
    args.duration = args.duration or (2 if args.quick else 10)
    args.warmup = args.warmup or (1 if args.quick else 2)
    args.connections = args.connections or (4 if args.quick else 16)
    ensure_wrk()

    proc = None
    with harness.bench_run(collectstatic=True, WEB_CONCURRENCY=str(args.workers)) as run:
        try:
            queries = seed_and_count_queries()
            port = harness.free_port()
            base = f"http://127.0.0.1:{port}"
            proc = harness.start_server(run.env, port, args.workers)
            harness.wait_ready(base, proc)
            cookie = harness.login(base, VIEWER_USERNAME, VIEWER_PASSWORD)
            items = list_items(base, cookie)
            load_before = os.getloadavg()[0]  # the host is shared: other load skews both figures
            load = f"wrk -t{args.threads} -c{args.connections}"
            print(f"measuring: {load}, {args.warmup} s warm-up + {args.duration} s each", flush=True)
            hello = measure(base, HELLO_PATH, args, None)
            listing = measure(base, LIST_PATH, args, cookie)
        finally:
            if proc is not None:
                harness.stop_process(proc)

    ratio = listing["rps"] / hello["rps"] if hello["rps"] else 0.0
    print()
    print(f"{'endpoint':<34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'requests':>10}")
    for label, result in ((f"GET {HELLO_PATH} (anchor)", hello), (f"GET {LIST_PATH}", listing)):
        figures = "".join(f"{result[k]:>10.1f}" for k in ("rps", "p50_ms", "p99_ms"))
        print(f"{label:<34}{figures}{result['requests']:>10}")
    p99 = listing["p99_ms"]
    checks = [
        ("ratio list/hello req/s", f"{ratio:.3f}", f">= {TARGET_RATIO}", ratio >= TARGET_RATIO),
        ("list p99 latency", f"{p99:.1f} ms", f"<= {TARGET_LIST_P99_MS:.0f} ms", p99 <= TARGET_LIST_P99_MS),
        ("SQL queries per list", str(queries), f"<= {TARGET_LIST_SQL_QUERIES}", queries <= TARGET_LIST_SQL_QUERIES),
    ]
    print(f"list items per response: {items}")
    print()
    for name, value, target, ok in checks:
        print(f"{name:<34}{value:>12}   target {target:<10} {'met' if ok else 'MISSED'}")
    print()
    harness.emit(
        {
            "hello_rps": round(hello["rps"], 1),
            "hello_p50_ms": round(hello["p50_ms"], 2),
            "hello_p99_ms": round(hello["p99_ms"], 2),
            "list_rps": round(listing["rps"], 1),
            "list_p50_ms": round(listing["p50_ms"], 2),
            "list_p99_ms": round(listing["p99_ms"], 2),
            "list_items": items,
            "list_sql_queries": queries,
            "ratio_list_hello_rps": round(ratio, 3),
            "target_ratio": TARGET_RATIO,
            "target_list_p99_ms": TARGET_LIST_P99_MS,
            "target_list_sql_queries": TARGET_LIST_SQL_QUERIES,
            "server": f"uvicorn --workers {args.workers}",
            "load": f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s",
            "non_2xx_responses": hello["non_2xx"] + listing["non_2xx"],
            "socket_errors": hello["socket_errors"] + listing["socket_errors"],
            "quick": args.quick,
            "cpus": os.cpu_count(),
            "load_avg_1m": round(load_before, 2),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
