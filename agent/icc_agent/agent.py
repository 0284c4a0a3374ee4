"""The agent: decides which requests to sample, queues their samples and sends them to ICC from a thread.

Memory is bounded: the queue holds at most ``queue_size`` samples (beyond it new samples are dropped and counted,
a request never waits), plus one batch being sent. A daemon thread sends batches every ``flush_seconds`` (sooner
when a batch is full), gzip-compressed, with short timeouts; while ICC is unreachable or overloaded it waits with
exponential backoff (honouring Retry-After) and keeps one batch to retry. Nothing here raises into the application.
"""

from __future__ import annotations

import atexit
import gzip
import http.client
import json
import logging
import os
import random
import ssl
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections import deque
from collections.abc import Mapping
from typing import Any

from icc_agent.config import Config, load
from icc_agent.recording import UNMATCHED, Recording

logger = logging.getLogger("icc_agent")

MAX_BODY_BYTES = 1024 * 1024  # ICC's limit per request (decompressed)
WARN_EVERY_SECONDS = 60.0
SENT, REJECTED, RETRY = "sent", "rejected", "retry"
Sample = dict[str, Any]


class TokenFile:
    """A token read from a file, read again whenever the file changes (the kubelet rotates projected tokens)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._token = ""

    def read(self) -> str:
        status = os.stat(self.path)
        seen = (status.st_ino, status.st_mtime_ns, status.st_size)
        if seen != self._seen:
            with open(self.path, encoding="utf-8") as handle:
                self._token = handle.read().strip()
            self._seen = seen
        return self._token

    def forget(self) -> None:
        self._seen = None


def encode(samples: list[Sample]) -> list[tuple[int, bytes]]:
    """Gzip-compressed request bodies for ``samples`` (split in halves until each fits ICC's limit)."""
    raw = json.dumps({"samples": samples}, separators=(",", ":")).encode()
    if len(raw) > MAX_BODY_BYTES and len(samples) > 1:
        half = len(samples) // 2
        return encode(samples[:half]) + encode(samples[half:])
    return [(len(samples), gzip.compress(raw, compresslevel=5))]


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value or 0))
    except ValueError:
        return 0.0


def _call(ref: weakref.ref[Agent], method: str) -> None:
    """Call ``method`` of the agent if it still exists (fork and exit hooks must not keep agents alive)."""
    agent = ref()
    if agent is not None:
        getattr(agent, method)()


class Agent:
    """Shared by the middleware of one application (one per process; safe across threads and forks)."""

    def __init__(self, config: Config | None = None, **settings: Any) -> None:
        self.config = config if config is not None else load(**settings)
        self.active = self.config.enabled and bool(self.config.url)
        self._lock = threading.Lock()
        self._queue: deque[Sample] = deque()
        self._held: list[tuple[int, bytes]] = []  # encoded bodies of the batch being sent
        self._counts = dict.fromkeys(
            ("sampled", "skipped", "capped", "dropped", "sent", "rejected", "attempts", "failures", "errors"), 0
        )
        self._second = 0
        self._in_second = 0
        self._backoff = 0.0
        self._retry_at = 0.0
        self._warned = 0.0
        self._random = random.Random()  # noqa: S311 (sampling, not security)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._token = TokenFile(self.config.token_file)
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self._tls()))
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _call(ref, "_forked"))
        atexit.register(_call, ref, "close")

    def _tls(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.config.ca_file or None)
        except (OSError, ssl.SSLError) as exc:  # fail open: the application starts, sending will fail and say why
            logger.warning("icc_agent: cannot read the CA file %s (%s); using the system's", self.config.ca_file, exc)
            return ssl.create_default_context()

    # The request path: cheap, never raises, never waits on the network.

    def admit(self) -> bool:
        """Whether to sample the request starting now (the rate, then the cap per second)."""
        if not self.active:
            return False
        try:
            if self.config.sample_rate < 1.0 and self._random.random() >= self.config.sample_rate:
                self._counts["skipped"] += 1
                return False
            second = int(time.monotonic())
            with self._lock:
                if second != self._second:
                    self._second, self._in_second = second, 0
                if self._in_second >= self.config.max_per_second:
                    self._counts["capped"] += 1
                    return False
                self._in_second += 1
            return True
        except Exception:  # fail open
            return False

    def start(self, method: str, *, authorization: bool) -> Recording | None:
        try:
            return Recording(method, authorization=authorization, hash_limit=self.config.hash_kib * 1024)
        except Exception:
            self._counts["errors"] += 1
            return None

    def broken(self) -> None:
        """Count a failure of the middleware itself (the request goes on regardless)."""
        self._counts["errors"] += 1

    def route(self, found: str | None, carrier: Mapping[str, Any]) -> str:
        """The route template: the framework's, else ``route_of(scope or environ)``, else ``unmatched``."""
        if found:
            return found
        if self.config.route_of is not None:
            try:
                return self.config.route_of(carrier) or UNMATCHED
            except Exception:
                self._counts["errors"] += 1
        return UNMATCHED

    def finish(self, recording: Recording | None, found: str | None, carrier: Mapping[str, Any]) -> None:
        """Queue the finished request's sample (dropped and counted when the queue is full)."""
        if recording is None:
            return
        try:
            self.record(recording.sample(self.route(found, carrier)))
        except Exception:
            self._counts["errors"] += 1

    def record(self, sample: Sample) -> None:
        with self._lock:
            if len(self._queue) >= self.config.queue_size:
                self._counts["dropped"] += 1
                return
            self._queue.append(sample)
            self._counts["sampled"] += 1
            full = len(self._queue) == self.config.batch_size
        self._ensure_thread()
        if full:
            self._wake.set()

    # Reading the agent's state (tests, metrics).

    def stats(self) -> dict[str, float]:
        with self._lock:
            held = sum(count for count, _ in self._held)
            return {**self._counts, "queued": len(self._queue), "held": held, "backoff_seconds": self._backoff}

    def flush(self, timeout: float = 5.0) -> bool:
        """Ask the thread to send now and wait until nothing is left (False when ICC did not take it all in time)."""
        deadline = time.monotonic() + timeout
        self._ensure_thread()
        while True:
            with self._lock:
                empty = not self._queue and not self._held
            if empty:
                return True
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.02)

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (for at most ``timeout``, default the request timeout) and stop the thread."""
        try:
            if self._thread is not None and self._pid == os.getpid():
                self.flush(self.config.timeout_seconds if timeout is None else timeout)
            self._stop.set()
            self._wake.set()
        except Exception:
            logger.debug("icc_agent: close failed", exc_info=True)

    # The sending thread.

    def _forked(self) -> None:
        """In a forked child: the parent's lock, queue and thread are not ours."""
        self._lock = threading.Lock()
        self._queue = deque()
        self._held = []
        self._thread = None
        self._wake = threading.Event()
        self._stop = threading.Event()

    def _ensure_thread(self) -> None:
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="icc-agent", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.config.flush_seconds
            if self._retry_at:
                wait = max(0.0, min(wait, self._retry_at - time.monotonic()))
            self._wake.wait(wait)
            self._wake.clear()
            try:
                self._send_ready()
            except Exception:
                self._counts["errors"] += 1
                self._warn("icc_agent: sending failed unexpectedly", exc_info=True)

    def _send_ready(self) -> None:
        """Send batches until the queue is empty or ICC refuses for now (then back off, keeping the batch)."""
        while not self._stop.is_set():
            if time.monotonic() < self._retry_at:
                return
            with self._lock:
                if not self._held:
                    taken = [self._queue.popleft() for _ in range(min(len(self._queue), self.config.batch_size))]
                    if not taken:
                        return
                    self._held = encode(taken)
                count, body = self._held[0]
            outcome, retry_after = self._post(body)
            with self._lock:
                if outcome == RETRY:
                    self._counts["failures"] += 1
                    self._backoff = min(self.config.max_backoff_seconds, max(0.5, self._backoff * 2))
                    jittered = self._backoff * (0.5 + self._random.random() / 2)
                    self._retry_at = time.monotonic() + max(retry_after, jittered)
                    return
                self._held.pop(0)
                self._counts["sent" if outcome == SENT else "rejected"] += count
                self._backoff, self._retry_at = 0.0, 0.0

    def _credentials(self) -> dict[str, str]:
        token = self.config.api_token or self._token.read()
        if not token:
            raise OSError(f"no token in {self.config.token_file}")
        return {"Authorization": f"Bearer {token}", **self.config.headers()}

    def _post(self, body: bytes) -> tuple[str, float]:
        self._counts["attempts"] += 1
        try:
            headers = self._credentials()
            request = urllib.request.Request(  # noqa: S310 (ICC's URL, from the configuration)
                self.config.endpoint,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "Content-Encoding": "gzip",
                    "User-Agent": "icc-agent/0.1",
                    **headers,
                },
            )
            with self._opener.open(request, timeout=self.config.timeout_seconds) as answer:
                answer.read(65536)
            return SENT, 0.0
        except urllib.error.HTTPError as exc:
            try:
                detail = exc.read(2000).decode(errors="replace")
            except (OSError, http.client.HTTPException):
                detail = ""
            self._warn("icc_agent: ICC answered %s: %s", exc.code, detail)
            if exc.code in (401, 403):
                self._token.forget()  # perhaps rotated: read it again next time
                return RETRY, 0.0
            if exc.code in (408, 429) or exc.code >= 500:
                return RETRY, _retry_after(exc.headers.get("Retry-After"))
            return REJECTED, 0.0
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self._warn("icc_agent: cannot send to ICC (%s); samples wait, then are dropped", exc)
            return RETRY, 0.0

    def _warn(self, message: str, *args: Any, exc_info: bool = False) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY_SECONDS or not self._warned:
            self._warned = now
            logger.warning(message, *args, exc_info=exc_info)
