"""A real Prometheus (Debian's package) scraping a small exporter the test controls, every second.

``prometheus_server`` is a session fixture: Prometheus on a free loopback port with a 1 s scrape interval and a
temporary TSDB, scraping ``exporter`` — an HTTP server in the test process whose per-pod gauges the test sets
(``exporter.set("test_load", namespace, pod, 30)``). ``stop()``/``start()`` take Prometheus down and back up
on the same port (for "Prometheus is down" tests). Missing binary: fails in CI, skips elsewhere.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.support.components import free_port, require
from tests.support.http import wait_http_ok


class Exporter:
    """Per-pod gauges served at /metrics in Prometheus' text format."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                """Prometheus scrapes every second: keep the request log out of the test output."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-exporter", daemon=True)
        self.thread.start()

    def set(self, metric: str, namespace: str, pod: str, value: float) -> None:
        with self._lock:
            self._values[(metric, namespace, pod)] = value

    def clear(self, namespace: str) -> None:
        with self._lock:
            for key in [k for k in self._values if k[1] == namespace]:
                del self._values[key]

    def render(self) -> str:
        with self._lock:
            items = sorted(self._values.items())
        lines = []
        for metric in sorted({k[0] for k, _ in items}):
            lines.append(f"# TYPE {metric} gauge")
            lines.extend(
                f'{metric}{{namespace="{ns}",pod="{pod}"}} {value}' for (m, ns, pod), value in items if m == metric
            )
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class PrometheusServer:
    binary: str
    workdir: Path
    port: int
    exporter: Exporter
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "prometheus.log"
        (self.workdir / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: exporter\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{self.exporter.port}']\n"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1d",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_http_ok(
                f"{self.url}/-/ready", self.process, what="prometheus", timeout=30, interval=0.1, request_timeout=1
            )
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log_path.read_text()[-2000:]}") from None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def value(self, promql: str) -> list[float]:
        """The values of an instant query (for waiting until a scrape has landed)."""
        data = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=3).json()
        return [float(item["value"][1]) for item in data["data"]["result"]]


@pytest.fixture(scope="session")
def prometheus_server() -> Iterator[PrometheusServer]:
    binary = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else "")
    require(bool(binary), "the prometheus binary is missing (apt-get install prometheus; scripts/test.sh does it)")
    exporter = Exporter()
    workdir = Path(tempfile.mkdtemp(prefix="icc-prom-"))
    server = PrometheusServer(binary, workdir, free_port(), exporter)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        exporter.close()
        shutil.rmtree(workdir, ignore_errors=True)
