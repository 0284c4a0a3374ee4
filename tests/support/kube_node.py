"""A simulated kubelet (as kwok does) for the real control plane in tests/support/kube.py.

``FakeNode`` registers a Ready Node, keeps its Lease and Ready heartbeat fresh, turns pods bound to it into
Running/Ready pods (status subresource), ends them as Succeeded or Failed when a test says so (``finish_pod``:
how a Job's pod completes), finishes their deletion like a kubelet, and serves pod logs over HTTPS through a
fake kubelet server that kube-apiserver proxies ``/pods/{name}/log`` to. No container ever runs.

It talks to the API server with one urllib3 connection pool: one watch connection, a few workers, a heartbeat.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import json
import logging
import queue
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import urllib3

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.20.2"
DEFAULT_CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "2000", "ephemeral-storage": "1Ti"}
NODE_CONDITIONS = {
    "MemoryPressure": ("False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    "PIDPressure": ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    "Ready": ("True", "KubeletReady", "kubelet is posting ready status"),
}
FINISHED_PHASES = {"Running", "Succeeded", "Failed"}
TICK_SECONDS = 0.2

PodKey = tuple[str, str]
ContainerKey = tuple[str, str, str]
Json = dict[str, Any]


class ApiError(Exception):
    """A non-2xx answer from kube-apiserver."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _time(moment: dt.datetime | None = None) -> str:
    return (moment or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(moment: dt.datetime | None = None) -> str:
    return (moment or _now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def _image_id(image: str) -> str:
    """``nginx:1.25`` -> ``docker.io/library/nginx@sha256:...`` (stable per image)."""
    repo, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        repo = image
    repo = repo.split("@", 1)[0]
    if "/" not in repo:
        repo = f"library/{repo}"
    first = repo.split("/", 1)[0]
    if "." not in first and ":" not in first and first != "localhost":
        repo = f"docker.io/{repo}"
    return f"{repo}@sha256:{_digest(image)}"


@dataclass
class _Pod:
    """What the node knows of a pod bound to it."""

    namespace: str
    name: str
    uid: str
    containers: list[tuple[str, str]]
    init_containers: list[tuple[str, str]]
    ip: str = ""
    started_at: str = ""
    running: bool = False
    deleted: bool = False
    exit_code: int | None = None  # set once the pod ended (Succeeded for 0, else Failed): it never runs again
    end_reason: str = ""
    end_message: str = ""
    finished_at: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def container_id(self, container: str) -> str:
        return f"containerd://{_digest(self.uid, container)}"

    def has_container(self, container: str) -> bool:
        return any(name == container for name, _ in [*self.containers, *self.init_containers])


class FakeNode:
    """A simulated kubelet for one Node; ``start()`` registers it and starts its threads, ``stop()`` ends them."""

    def __init__(
        self,
        url: str,
        token: str,
        ca_path: str | Path,
        *,
        name: str = "icc-node-1",
        workers: int = 8,
        heartbeat_seconds: float = 10.0,
        capacity: dict[str, str] | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.name = name
        self.capacity = {**DEFAULT_CAPACITY, **(capacity or {})}
        self.heartbeat_seconds = heartbeat_seconds
        self.kubelet_port = 0
        self.pods_started = 0
        self.pods_deleted = 0
        self._workers = workers
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._http = urllib3.HTTPSConnectionPool(
            parts.hostname or "127.0.0.1",
            parts.port or 443,
            maxsize=workers + 3,
            block=True,
            cert_reqs="CERT_REQUIRED",
            ca_certs=str(ca_path),
            retries=False,
            timeout=urllib3.Timeout(connect=5, read=30),
        )
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pods: dict[PodKey, _Pod] = {}
        self._pending: dict[PodKey, Json] = {}
        self._queue: queue.Queue[PodKey | None] = queue.Queue()
        self._overrides: dict[ContainerKey, Json] = {}
        self._logs: dict[ContainerKey, list[tuple[str, str]]] = {}
        self._next_ip = 0
        self._threads: list[threading.Thread] = []
        self._watch_response: urllib3.BaseHTTPResponse | None = None
        self._server: _KubeletServer | None = None
        self._certdir: Path | None = None
        self._node_uid = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeNode:
        """Serve the kubelet port, register the Node and its Lease, then watch pods. Returns self."""
        self._certdir = Path(tempfile.mkdtemp(prefix=f"icc-{self.name}-"))
        try:
            self._server = _KubeletServer(self, _tls_context(self._certdir, self.name))
            self.kubelet_port = int(self._server.server_address[1])
            self._spawn("kubelet-server", self._server.serve_forever)
            self._register()
            self._renew_lease()
            self._spawn("pod-watch", self._watch_loop)
            for number in range(self._workers):
                self._spawn(f"pod-worker-{number}", self._work)
            self._spawn("heartbeat", self._heartbeat_loop)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the watch, workers, heartbeat and kubelet server; close connections; remove the certificate."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        response = self._watch_response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()
        for _ in range(self._workers):
            self._queue.put(None)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(10)
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        if self._threads:
            log.warning("fake node %s: threads still running after stop: %s", self.name, self._threads)
        self._http.close()
        if self._certdir is not None:
            shutil.rmtree(self._certdir, ignore_errors=True)

    def _spawn(self, what: str, target: Callable[[], object]) -> None:
        thread = threading.Thread(target=target, name=f"{self.name}-{what}", daemon=True)
        thread.start()
        self._threads.append(thread)

    # ------------------------------------------------------------------ test hooks

    def set_logs(self, namespace: str, pod: str, container: str, lines: list[str]) -> None:
        """Replace what the container's log holds (served by the fake kubelet, newest last)."""
        stamp = _now()
        with self._lock:
            self._logs[(namespace, pod, container)] = [
                (stamp.strftime("%Y-%m-%dT%H:%M:%S.%f000Z"), line) for line in lines
            ]

    def set_container_state(
        self,
        namespace: str,
        pod: str,
        container: str,
        state: str = "waiting",
        reason: str = "CrashLoopBackOff",
        restart_count: int = 5,
        *,
        last_reason: str = "Error",
        exit_code: int | None = None,
        message: str | None = None,
    ) -> None:
        """Give one container of a pod on this node another state and patch the pod's status at once.

        ``state`` is ``waiting`` (``reason`` e.g. CrashLoopBackOff, ImagePullBackOff), ``terminated`` (``reason``
        e.g. OOMKilled, Error, Completed) or ``running`` (back to normal). With ``restart_count > 0`` the
        container also gets ``lastState.terminated`` with ``last_reason`` (e.g. OOMKilled; exit code 137, else 1).
        Any state but ``running`` makes the container, and so the pod, not ready (the phase stays Running).
        """
        if state not in {"running", "waiting", "terminated"}:
            raise ValueError(f"state must be running, waiting or terminated, not {state!r}")
        with self._lock:
            record = self._pods.get((namespace, pod))
        if record is None or not record.has_container(container):
            raise LookupError(f"no container {container!r} in a pod {namespace}/{pod} on node {self.name}")
        now = _time()
        cid = record.container_id(container)
        override: Json = {"restartCount": restart_count, "ready": state == "running", "started": state == "running"}
        if state == "running":
            override["state"] = {"running": {"startedAt": now}}
        elif state == "waiting":
            default = f"back-off 5m0s restarting failed container={container} pod={pod}_{namespace}({record.uid})"
            override["state"] = {"waiting": {"reason": reason, "message": message or default}}
        else:
            code = exit_code if exit_code is not None else _exit_code(reason)
            terminated = {"exitCode": code, "reason": reason, "startedAt": record.started_at or now, "finishedAt": now}
            override["state"] = {
                "terminated": {**terminated, "containerID": cid, **({"message": message} if message else {})}
            }
        last: Json = {}
        if restart_count > 0:
            code = exit_code if exit_code is not None and state != "terminated" else _exit_code(last_reason)
            last = {"terminated": {"exitCode": code, "reason": last_reason, "startedAt": now, "finishedAt": now}}
            last["terminated"]["containerID"] = cid
        override["lastState"] = last
        with record.lock:
            with self._lock:
                self._overrides[(namespace, pod, container)] = override
            if record.running:
                self._patch_status(record)

    def finish_pod(
        self, namespace: str, pod: str, exit_code: int = 0, *, reason: str | None = None, message: str | None = None
    ) -> None:
        """End a pod on this node as a kubelet does when its containers exit under ``restartPolicy: Never``: every
        container terminated with ``exit_code`` (reason ``Completed`` for 0, else ``Error`` unless given), not
        ready, and the pod's phase Succeeded (0) or Failed, patched at once. The node never starts it again (also
        after a relist), so the Job controller counts it as a success or a failure. A pod the node has not
        started yet is ended all the same."""
        with self._lock:
            record = self._pods.get((namespace, pod))
        if record is None:
            raise LookupError(f"no pod {namespace}/{pod} on node {self.name}")
        with record.lock:
            self._assign_address(record)
            record.exit_code = exit_code
            record.end_reason = reason or ("Completed" if exit_code == 0 else "Error")
            record.end_message = message or ""
            record.finished_at = _time()
            record.running = True  # nothing left to start: a queued start finds it done
            self._patch_status(record)

    # ------------------------------------------------------------------ API access

    def _request(
        self, method: str, path: str, body: Json | None = None, content_type: str = "application/json"
    ) -> Json:
        headers = dict(self._headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        response = self._http.urlopen(method, path, body=data, headers=headers)
        text = response.data.decode(errors="replace")
        if not 200 <= response.status < 300:
            raise ApiError(response.status, text)
        return json.loads(text) if text else {}

    # ------------------------------------------------------------------ node, lease, heartbeat

    def _conditions(self, *, transition: bool) -> list[Json]:
        now = _time()
        conditions = []
        for kind, (status, reason, message) in NODE_CONDITIONS.items():
            condition = {"type": kind, "status": status, "reason": reason, "message": message}
            condition["lastHeartbeatTime"] = now
            if transition:
                condition["lastTransitionTime"] = now
            conditions.append(condition)
        return conditions

    def _register(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                },
                "annotations": {"node.alpha.kubernetes.io/ttl": "0", "icc.test/fake-node": "true"},
            },
            "spec": {},
        }
        try:
            self._request("POST", "/api/v1/nodes", node)
        except ApiError as exc:
            if exc.status != 409:
                raise
            self._request("PATCH", f"/api/v1/nodes/{self.name}", node, "application/strategic-merge-patch+json")
        boot = _digest(self.name, str(time.time()))
        status = {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": self._conditions(transition=True),
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": _digest(self.name)[:32],
                "systemUUID": _digest("uuid", self.name)[:32],
                "bootID": boot[:32],
                "kernelVersion": "5.10.0-fake",
                "osImage": "ICC fake node",
                "containerRuntimeVersion": "containerd://1.4.13",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        created = self._request(
            "PATCH", f"/api/v1/nodes/{self.name}/status", {"status": status}, "application/strategic-merge-patch+json"
        )
        self._node_uid = created["metadata"]["uid"]
        # The TaintNodesByCondition admission plugin adds not-ready:NoSchedule on create; the node lifecycle
        # controller would lift it within seconds of seeing Ready, a kubelet-less node lifts it at once.
        taints = created.get("spec", {}).get("taints") or []
        kept = [taint for taint in taints if taint.get("key") != "node.kubernetes.io/not-ready"]
        if kept != taints:
            patch = {"spec": {"taints": kept or None}}
            self._request("PATCH", f"/api/v1/nodes/{self.name}", patch, "application/merge-patch+json")

    def _renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        try:
            self._request("PATCH", path, {"spec": {"renewTime": _micro_time()}}, "application/merge-patch+json")
            return
        except ApiError as exc:
            if exc.status != 404:
                raise
        owner = {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self._node_uid}
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": "kube-node-lease", "ownerReferences": [owner]},
            "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": _micro_time()},
        }
        self._request("POST", path.rsplit("/", 1)[0], lease)

    def _heartbeat_loop(self) -> None:
        while not self._stopping.wait(self.heartbeat_seconds):
            try:
                self._renew_lease()
                patch = {"status": {"conditions": self._conditions(transition=False)}}
                self._request(
                    "PATCH", f"/api/v1/nodes/{self.name}/status", patch, "application/strategic-merge-patch+json"
                )
            except ApiError as exc:
                if exc.status == 404:  # the Node was deleted: register again, as a kubelet does
                    with contextlib.suppress(Exception):
                        self._register()
                log.warning("fake node %s: heartbeat failed: %s", self.name, exc)
            except Exception as exc:
                if not self._stopping.is_set():
                    log.warning("fake node %s: heartbeat failed: %s", self.name, exc)

    # ------------------------------------------------------------------ pod watch

    def _watch_loop(self) -> None:
        resource_version: str | None = None
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    resource_version = self._relist()
                resource_version = self._watch(resource_version)
            except _Gone:
                resource_version = None
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warning("fake node %s: pod watch failed, relisting: %s", self.name, exc)
                resource_version = None
                self._stopping.wait(0.5)

    def _pods_path(self) -> str:
        return f"/api/v1/pods?fieldSelector={quote(f'spec.nodeName={self.name}')}"

    def _relist(self) -> str:
        listing = self._request("GET", self._pods_path())
        seen = set()
        for pod in listing.get("items", []):
            meta = pod["metadata"]
            seen.add((meta["namespace"], meta["name"]))
            self._observe("ADDED", pod)
        with self._lock:
            for key in [key for key in self._pods if key not in seen]:
                self._forget(key)
        return str(listing["metadata"]["resourceVersion"])

    def _watch(self, resource_version: str) -> str:
        path = f"{self._pods_path()}&watch=true&allowWatchBookmarks=true&timeoutSeconds=300"
        path += f"&resourceVersion={quote(resource_version)}"
        response = self._http.urlopen(
            "GET",
            path,
            headers=self._headers,
            preload_content=False,
            timeout=urllib3.Timeout(connect=5, read=120),
        )
        self._watch_response = response
        try:
            if self._stopping.is_set():  # stop() came while this request was being sent
                return resource_version
            if response.status == 410:
                raise _Gone
            if response.status != 200:
                raise ApiError(response.status, response.read().decode(errors="replace"))
            for line in _lines(response):
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone
                    raise ApiError(int(obj.get("code") or 500), json.dumps(obj))
                resource_version = str(obj.get("metadata", {}).get("resourceVersion") or resource_version)
                if kind != "BOOKMARK":
                    self._observe(str(kind), obj)
        except urllib3.exceptions.ReadTimeoutError:
            pass  # quiet for a while: watch again from where we are
        finally:
            self._watch_response = None
            response.close()  # a fresh connection for the next watch, never a half-read one
            response.release_conn()
        return resource_version

    def _observe(self, kind: str, pod: Json) -> None:
        """Update what the node knows of a pod and queue it when it needs starting or deleting."""
        meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
        key: PodKey = (meta["namespace"], meta["name"])
        with self._lock:
            if kind == "DELETED" or spec.get("nodeName") != self.name:
                record = self._pods.get(key)
                if record is not None and record.uid == meta.get("uid"):
                    self._forget(key)
                return
            record = self._pods.get(key)
            if record is None or record.uid != meta["uid"]:
                record = _Pod(
                    namespace=key[0],
                    name=key[1],
                    uid=meta["uid"],
                    containers=[(c["name"], c.get("image", "")) for c in spec.get("containers", [])],
                    init_containers=[(c["name"], c.get("image", "")) for c in spec.get("initContainers") or []],
                )
                if status.get("phase") in FINISHED_PHASES:  # started before this agent (re)started
                    record.ip, record.started_at = status.get("podIP", ""), status.get("startTime", "")
                    record.running = True
                    if status.get("phase") in ("Succeeded", "Failed"):  # and ended: it stays so
                        _remember_end(record, status)
                self._pods[key] = record
            if meta.get("deletionTimestamp") or not record.running:
                if key not in self._pending:
                    self._queue.put(key)
                self._pending[key] = pod

    def _forget(self, key: PodKey) -> None:
        """Drop a pod's record, hooks and logs (caller holds the lock)."""
        self._pods.pop(key, None)
        for store in (self._overrides, self._logs):
            for ckey in [ckey for ckey in store if ckey[:2] == key]:
                del store[ckey]

    # ------------------------------------------------------------------ pod workers

    def _work(self) -> None:
        while True:
            key = self._queue.get()
            if key is None:
                return
            with self._lock:
                pod = self._pending.pop(key, None)
                record = self._pods.get(key)
            if pod is None or record is None or record.uid != pod["metadata"]["uid"]:
                continue
            try:
                if pod["metadata"].get("deletionTimestamp"):
                    self._finish_deletion(record)
                elif pod.get("status", {}).get("phase") not in FINISHED_PHASES:
                    self._start_pod(record)
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warning("fake node %s: pod %s/%s failed, retrying: %s", self.name, *key, exc)
                self._stopping.wait(0.5)
                with self._lock:
                    if key not in self._pending and self._pods.get(key) is record:
                        self._pending[key] = pod
                        self._queue.put(key)

    def _assign_address(self, record: _Pod) -> None:
        """Give a pod its IP and start time, once (caller holds record.lock)."""
        if not record.ip:
            with self._lock:
                self._next_ip += 1
                number = self._next_ip
            record.ip = f"10.244.{number // 254 % 256}.{number % 254 + 1}"
            record.started_at = _time()

    def _start_pod(self, record: _Pod) -> None:
        with record.lock:
            if record.running:
                return
            self._assign_address(record)
            try:
                self._patch_status(record)
            except ApiError as exc:
                if exc.status == 404:
                    return
                raise
            record.running = True
        with self._lock:
            self.pods_started += 1

    def _finish_deletion(self, record: _Pod) -> None:
        if record.deleted:
            return
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": record.uid},
        }
        try:
            self._request("DELETE", f"/api/v1/namespaces/{record.namespace}/pods/{record.name}", options)
        except ApiError as exc:
            if exc.status not in (404, 409):  # gone already, or another pod of that name now
                raise
            return
        record.deleted = True
        with self._lock:
            self.pods_deleted += 1

    def _patch_status(self, record: _Pod) -> None:
        """Write the pod's full status as this node sees it (caller holds record.lock)."""
        with self._lock:
            overrides = {
                name: self._overrides.get((record.namespace, record.name, name)) for name, _ in record.containers
            }
        statuses = []
        for name, image in record.containers:
            container_status: Json = {
                "name": name,
                "image": image,
                "imageID": _image_id(image),
                "containerID": record.container_id(name),
                "restartCount": 0,
                "ready": True,
                "started": True,
                "state": {"running": {"startedAt": record.started_at}},
                "lastState": {},
            }
            container_status.update(overrides[name] or {})
            if record.exit_code is not None:
                container_status |= {"ready": False, "started": False, "state": _terminated(record, name)}
            statuses.append(container_status)
        init_statuses = [
            {
                "name": name,
                "image": image,
                "imageID": _image_id(image),
                "containerID": record.container_id(name),
                "restartCount": 0,
                "ready": True,
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": record.started_at,
                        "finishedAt": record.started_at,
                        "containerID": record.container_id(name),
                    }
                },
                "lastState": {},
            }
            for name, image in record.init_containers
        ]
        unready = [status["name"] for status in statuses if not status["ready"]]
        ready: Json = {"status": "False" if unready else "True", "lastTransitionTime": _time()}
        if record.exit_code is not None:
            ready = {"status": "False", "reason": "PodCompleted", "lastTransitionTime": record.finished_at}
        elif unready:
            ready |= {
                "reason": "ContainersNotReady",
                "message": f"containers with unready status: [{' '.join(unready)}]",
            }
        conditions = [
            {"type": "Initialized", "status": "True", "lastTransitionTime": record.started_at},
            {"type": "Ready", **ready},
            {"type": "ContainersReady", **ready},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": record.started_at},
        ]
        phase = "Running" if record.exit_code is None else "Succeeded" if record.exit_code == 0 else "Failed"
        status = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "podIP": record.ip,
            "podIPs": [{"ip": record.ip}],
            "startTime": record.started_at,
            "containerStatuses": statuses,
            "initContainerStatuses": init_statuses or None,
        }
        path = f"/api/v1/namespaces/{record.namespace}/pods/{record.name}/status"
        self._request("PATCH", path, {"status": status}, "application/strategic-merge-patch+json")

    # ------------------------------------------------------------------ logs

    def log_lines(self, namespace: str, pod: str, container: str) -> list[tuple[str, str]] | None:
        """The (timestamp, line) pairs of a container's log, or None when no such container is on this node."""
        with self._lock:
            record = self._pods.get((namespace, pod))
            if record is None or not record.has_container(container):
                return None
            return list(self._logs.get((namespace, pod, container), []))

    @property
    def stopping(self) -> threading.Event:
        return self._stopping


def _exit_code(reason: str) -> int:
    return {"OOMKilled": 137, "Completed": 0}.get(reason, 1)


def _terminated(record: _Pod, container: str) -> Json:
    """The state of a container of an ended pod."""
    terminated: Json = {
        "exitCode": record.exit_code,
        "reason": record.end_reason,
        "startedAt": record.started_at or record.finished_at,
        "finishedAt": record.finished_at,
        "containerID": record.container_id(container),
    }
    if record.end_message:
        terminated["message"] = record.end_message
    return {"terminated": terminated}


def _remember_end(record: _Pod, status: Json) -> None:
    """What an ended pod's status says of its end, for a node that (re)starts after it ended."""
    ends = [(s.get("state") or {}).get("terminated") or {} for s in status.get("containerStatuses") or []]
    end = next((t for t in ends if t.get("exitCode")), ends[0] if ends else {})
    failed_code = int(end.get("exitCode") or 1)
    record.exit_code = 0 if status.get("phase") == "Succeeded" else failed_code
    record.end_reason = str(end.get("reason") or ("Completed" if record.exit_code == 0 else "Error"))
    record.end_message = str(end.get("message") or "")
    record.finished_at = str(end.get("finishedAt") or status.get("startTime") or _time())


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    buffer = b""
    for chunk in response.stream(None, decode_content=False):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        yield from (line for line in complete if line.strip())


# ---------------------------------------------------------------------- fake kubelet HTTPS server


def _tls_context(certdir: Path, name: str) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1 and the node name."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}@fake-kubelet")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = certdir / "kubelet.crt", certdir / "kubelet.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


class _KubeletServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, node: FakeNode, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _KubeletHandler)
        self.node = node
        self.context = context

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        # Handshake lazily in the handler thread, so a slow client never blocks the accept loop.
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address


class _KubeletHandler(BaseHTTPRequestHandler):
    server: _KubeletServer
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes: simple for follow streams

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake kubelet: " + format, *args)

    def _reply(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        segments = [unquote(segment) for segment in parts.path.strip("/").split("/")]
        if parts.path == "/healthz":
            self._reply(200, "ok")
            return
        if len(segments) != 4 or segments[0] != "containerLogs":
            self._reply(404, "404 page not found\n")
            return
        namespace, pod, container = segments[1:]
        node = self.server.node
        lines = node.log_lines(namespace, pod, container)
        if lines is None:
            self._reply(404, f'container "{container}" in pod "{namespace}/{pod}" not found\n')
            return
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        timestamps = query.get("timestamps") in ("true", "1")
        if "tailLines" in query:
            tail = max(int(query["tailLines"]), 0)
            lines = lines[len(lines) - tail :] if tail else []
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        try:
            for stamp, line in lines:
                self.wfile.write(f"{stamp + ' ' if timestamps else ''}{line}\n".encode())
            if query.get("follow") not in ("true", "1"):
                return
            tick = 0
            while not node.stopping.wait(TICK_SECONDS):
                tick += 1
                stamp = _now().strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
                self.wfile.write(f"{stamp + ' ' if timestamps else ''}{pod}/{container} tick {tick}\n".encode())
        except OSError:
            pass  # the client (kube-apiserver) went away: stop streaming
