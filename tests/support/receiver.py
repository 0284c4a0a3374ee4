"""A real HTTP receiver for cron tests: a ThreadingHTTPServer on 127.0.0.1 that records every request.

Plain helper (no fixture): ``with Receiver() as r: ... f"{r.url}/hook" ... r.requests``. ``url`` is the base
address (tests add a path). The answer is configurable while it runs (``status``, ``delay``, ``body``,
``headers``, and ``hold``: an Event each call waits for before answering, None answers at once); each request is
recorded with its method, path, headers (case-insensitive) and body, in arrival order, with its arrival time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from requests.structures import CaseInsensitiveDict


@dataclass
class Recorded:
    method: str
    path: str
    headers: CaseInsensitiveDict[str]
    body: bytes
    at: float = field(default_factory=time.time)

    def header(self, name: str) -> str | None:
        """A header's value, by case-insensitive name."""
        return self.headers.get(name)


class Receiver:
    """Records requests and answers ``status`` with ``body`` after ``delay`` seconds (and after ``hold`` is set)."""

    HOLD_LIMIT = 30.0  # a held call is answered after this long anyway, so a failed test cannot hang a thread

    def __init__(
        self, *, status: int = 200, delay: float = 0.0, body: bytes = b"ok", headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.delay = delay
        self.body = body
        self.headers = dict(headers or {"Content-Type": "text/plain"})
        self.hold: threading.Event | None = None
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle ----------------------------------------------------------------------------------------------

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver._record(Recorded(self.command, self.path, CaseInsensitiveDict(self.headers.items()), body))
                hold = receiver.hold
                if hold is not None:
                    hold.wait(receiver.HOLD_LIMIT)
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(receiver.status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(receiver.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the recorded requests are the log."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what it saw -----------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "start the receiver first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base address, without a path."""
        return f"http://127.0.0.1:{self.port}"

    def _record(self, item: Recorded) -> None:
        with self._lock:
            self.requests.append(item)

    def received(self) -> list[Recorded]:
        with self._lock:
            return list(self.requests)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        """The requests once at least ``count`` arrived (AssertionError after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received()
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"the receiver saw {len(self.received())} requests, expected {count}")

    def keys(self) -> list[str]:
        """The ``Idempotency-Key`` of each request, in arrival order."""
        return [r.headers.get("Idempotency-Key", "") for r in self.received()]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
