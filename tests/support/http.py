"""Waiting for a child process's HTTP endpoint, shared by the tests and the benches (bench/harness.py).

No pytest here: a bench runs with the runtime requirements alone.
"""

from __future__ import annotations

import subprocess
import time

import requests


def wait_http_ok(
    url: str,
    process: subprocess.Popen[bytes],
    *,
    what: str,
    timeout: float,
    interval: float,
    request_timeout: float = 2,
    error: type[BaseException] = RuntimeError,
    verify: str | bool = True,
) -> None:
    """Poll ``url`` until it answers 200. Raises ``error`` naming ``what`` when ``process`` exits first, or when
    ``timeout`` seconds pass (with the last answer or connection error). ``verify``: a CA file for HTTPS."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise error(f"{what} exited with status {process.returncode} before it was ready")
        try:
            response = requests.get(url, timeout=request_timeout, verify=verify)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}: {response.text[:500]}"
        except requests.RequestException as exc:
            last = str(exc)  # not listening yet: poll again until the deadline
        time.sleep(interval)
    raise error(f"{url} did not return 200 within {timeout:.0f} s (last: {last})")
