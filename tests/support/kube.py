"""A real Kubernetes control plane (v1.20.2) for tests: etcd, kube-apiserver, controller-manager and scheduler.

The one simulated piece is the node: ``tests.support.kube_node.FakeNode`` (a kwok-like kubelet) registers a Ready
Node, runs the pods bound to it (status only) and serves their logs; the session fixture exposes it as
``cluster.node``. The fixture ``kube_apiserver`` is registered for the whole suite by tests/conftest.py
(``pytest_plugins``); bench/harness.py uses the same functions without pytest.

The binaries are built once from Debian's kubernetes source package by ``scripts/kube-binaries.sh`` and cached
outside the repository (``${ICC_KUBE_CACHE:-~/.cache/icc-kube}/v1.20.2/bin``). A cold build takes ~7 minutes:
modules using the fixture should allow for it (``pytest.mark.timeout``) because the suite's default is 300 s.
When the binaries cannot be had, the fixture fails in CI and skips elsewhere (``require``).

Every process runs in its own session (process group); teardown signals exactly those groups and removes the
temporary directory holding etcd's data, the certificates, keys, kubeconfig and the process logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.support.components import ROOT, free_port, require
from tests.support.kube_node import FakeNode

KUBE_VERSION = "v1.20.2"
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
BUILD_SCRIPT = ROOT / "scripts" / "kube-binaries.sh"
BUILD_TIMEOUT = 40 * 60
START_TIMEOUT = 90


def cache_bin_dir() -> Path:
    cache = os.environ.get("ICC_KUBE_CACHE") or str(Path.home() / ".cache" / "icc-kube")
    return Path(cache) / KUBE_VERSION / "bin"


def _complete(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / name, os.X_OK) for name in COMPONENTS)


def kube_bin_dir() -> Path:
    """The cached binaries, building them with scripts/kube-binaries.sh when absent (may take ~7 minutes)."""
    bin_dir = cache_bin_dir()
    if _complete(bin_dir):
        return bin_dir
    log_path = Path(tempfile.gettempdir()) / f"icc-kube-binaries-{os.getpid()}.log"
    print(
        f"\nkube: building {KUBE_VERSION} binaries into {bin_dir} (about 7 minutes; log {log_path})",
        file=sys.__stderr__,
        flush=True,
    )
    try:
        with log_path.open("wb") as log:
            # Own session: on timeout the whole build (bash, make, go) is stopped, not just bash.
            build = subprocess.Popen(
                ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=log, cwd=ROOT, start_new_session=True
            )
            try:
                stdout, _ = build.communicate(timeout=BUILD_TIMEOUT)
            except subprocess.TimeoutExpired:
                _stop(build)
                require(False, f"building the Kubernetes binaries took over {BUILD_TIMEOUT}s (log {log_path})")
    except OSError as exc:
        require(False, f"could not run scripts/kube-binaries.sh: {exc}")
    lines = stdout.decode(errors="replace").strip().splitlines()
    if build.returncode != 0 or not lines:
        require(False, f"scripts/kube-binaries.sh failed (exit {build.returncode}):\n{_tail(log_path)}")
    bin_dir = Path(lines[-1])
    require(_complete(bin_dir), f"scripts/kube-binaries.sh left incomplete binaries in {bin_dir}")
    return bin_dir


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class KubeCluster:
    url: str
    token: str
    ca_path: Path
    kubeconfig_path: Path
    workdir: Path
    bin_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    startup_seconds: float = 0.0
    node: FakeNode | None = None

    def api_client(self, token: str | None = None):  # type: ignore[no-untyped-def]
        """A kubernetes.client.ApiClient for this cluster (admin unless another bearer token is given)."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        configuration.ssl_ca_cert = str(self.ca_path)
        configuration.api_key = {"authorization": f"Bearer {token or self.token}"}
        return client.ApiClient(configuration)

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(f"--- {name} ({path}) ---\n{_tail(path, lines)}" for name, path in self.logs.items())


def _start(cluster: KubeCluster, name: str, args: list[str]) -> subprocess.Popen[bytes]:
    log_path = cluster.workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # one session per process: teardown signals exactly this group
            [str(cluster.bin_dir / name), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cluster.workdir,
            start_new_session=True,
        )
    cluster.processes[name] = process
    cluster.logs[name] = log_path
    return process


def _stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def _wait(cluster: KubeCluster, what: str, check, timeout: float = START_TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last_error: object = None
    while time.monotonic() < deadline:
        for name, process in cluster.processes.items():
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode} while waiting for {what}\n{cluster.log_tails()}")
        try:
            if check():
                return
        except (OSError, requests.RequestException) as exc:
            last_error = exc
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last error: {last_error})\n{cluster.log_tails()}")


def _write_keys(workdir: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_path = workdir / "sa.key"
    public_path = workdir / "sa.pub"
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    private_path.chmod(0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_path, public_path


def write_kubeconfig(path: Path, *, url: str, ca_path: Path, token: str, user: str = "admin") -> Path:
    """A kubeconfig (JSON is valid YAML) with one cluster, one token user and a current context."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "icc-test", "cluster": {"server": url, "certificate-authority": str(ca_path)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "icc-test", "context": {"cluster": "icc-test", "user": user}}],
        "current-context": "icc-test",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def new_cluster(bin_dir: Path, workdir: Path) -> KubeCluster:
    """Choose the API server's port, token and file locations; nothing runs yet."""
    port = free_port()
    cert_dir = workdir / "certs"
    cert_dir.mkdir(exist_ok=True)
    return KubeCluster(
        url=f"https://127.0.0.1:{port}",
        token=secrets.token_hex(24),
        ca_path=cert_dir / "apiserver.crt",  # kube-apiserver self-signs this (leaf + its CA) in --cert-dir
        kubeconfig_path=workdir / "kubeconfig",
        workdir=workdir,
        bin_dir=bin_dir,
    )


def start_cluster(cluster: KubeCluster, *, controller_manager: bool = True, scheduler: bool = True) -> None:
    """Start etcd, kube-apiserver (and controller-manager, scheduler) on free loopback ports; wait until ready.

    Processes are recorded in ``cluster.processes`` as soon as they start, so a caller can always stop_cluster().
    """
    workdir = cluster.workdir
    token = cluster.token
    apiserver_port = int(cluster.url.rsplit(":", 1)[1])
    cert_dir = cluster.ca_path.parent

    client_port, peer_port = free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    _start(
        cluster,
        "etcd",
        [
            "--name=icc-test",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=icc-test={peer_url}",
            "--initial-cluster-state=new",
            "--log-level=warn",
        ],
    )
    _wait(cluster, "etcd", lambda: requests.get(f"{etcd_url}/health", timeout=2).json().get("health") == "true")

    sa_key, sa_pub = _write_keys(workdir)
    tokens = workdir / "tokens.csv"
    tokens.write_text(f'{token},admin,admin-uid,"system:masters"\n')
    tokens.chmod(0o600)
    _start(
        cluster,
        "kube-apiserver",
        [
            "--bind-address=127.0.0.1",
            f"--secure-port={apiserver_port}",
            "--insecure-port=0",
            f"--cert-dir={cert_dir}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.96.0.0/16",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--disable-admission-plugins=ServiceAccount",
            f"--etcd-servers={etcd_url}",
            # Pod logs are proxied to the (fake) kubelet at the node's InternalIP and kubeletEndpoint port, over
            # HTTPS without verifying its certificate (no --kubelet-certificate-authority).
            "--kubelet-preferred-address-types=InternalIP",
        ],
    )
    auth = {"Authorization": f"Bearer {token}"}
    _wait(
        cluster,
        "kube-apiserver /readyz",
        lambda: (
            cluster.ca_path.exists()
            and requests.get(f"{cluster.url}/readyz", headers=auth, verify=str(cluster.ca_path), timeout=3).ok
        ),
    )
    write_kubeconfig(cluster.kubeconfig_path, url=cluster.url, ca_path=cluster.ca_path, token=token)

    if controller_manager:
        _start(
            cluster,
            "kube-controller-manager",
            [
                f"--kubeconfig={cluster.kubeconfig_path}",
                "--leader-elect=false",
                "--port=0",
                "--secure-port=0",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={cluster.ca_path}",
                "--use-service-account-credentials=false",
                # The default client rate limit (20 qps) makes ~2000 deployments take minutes to get pods.
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
            ],
        )
    if scheduler:
        _start(
            cluster,
            "kube-scheduler",
            [
                f"--kubeconfig={cluster.kubeconfig_path}",
                "--leader-elect=false",
                "--port=0",
                "--secure-port=0",
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
            ],
        )
    if controller_manager or scheduler:
        # No health ports (--port=0 --secure-port=0): give them a moment and make sure none died at once.
        time.sleep(1)
        _wait(cluster, "kube-controller-manager and kube-scheduler", lambda: True, timeout=1)


def start_node(cluster: KubeCluster, name: str = "icc-node-1", capacity: dict[str, str] | None = None) -> FakeNode:
    """Register a simulated kubelet (``FakeNode``) with the cluster and keep it as ``cluster.node``."""
    cluster.node = FakeNode(cluster.url, cluster.token, cluster.ca_path, name=name, capacity=capacity).start()
    return cluster.node


def stop_cluster(cluster: KubeCluster) -> None:
    """Stop the fake node, then exactly the processes this cluster started, newest first."""
    if cluster.node is not None:
        cluster.node.stop()
        cluster.node = None
    for process in reversed(list(cluster.processes.values())):
        _stop(process)


class _Session:
    """The one cluster of a test session, shared by every test that requests the fixture."""

    cluster: KubeCluster | None = None
    users = 0


def _session_cluster() -> KubeCluster:
    bin_dir = kube_bin_dir()
    workdir = Path(tempfile.mkdtemp(prefix="icc-kube-"))
    cluster = new_cluster(bin_dir, workdir)
    started = time.monotonic()
    try:
        start_cluster(cluster)
        start_node(cluster)
    except BaseException:
        stop_cluster(cluster)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    cluster.startup_seconds = time.monotonic() - started
    print(f"\nkube: cluster ready at {cluster.url} in {cluster.startup_seconds:.1f}s", file=sys.__stderr__)
    return cluster


@pytest.fixture(scope="session")
def kube_apiserver() -> Iterator[KubeCluster]:
    """A real control plane v1.20.2 (etcd, apiserver, controller-manager, scheduler) and a fake node, per session.

    Started by the first test that requests it and stopped (with its temporary directory) at the end of the
    session; a module overriding the fixture under the same name still shares the one cluster.
    """
    if _Session.cluster is None:
        _Session.cluster = _session_cluster()
    cluster = _Session.cluster
    _Session.users += 1
    try:
        yield cluster
    finally:
        _Session.users -= 1
        if _Session.users == 0:
            _Session.cluster = None
            stop_cluster(cluster)
            shutil.rmtree(cluster.workdir, ignore_errors=True)
