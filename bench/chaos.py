"""Chaos suite: ICC's roles as separate processes under a steady workload while their dependencies fail.

Everything runs on 127.0.0.1 and is started by this script: its **own** PostgreSQL 15 cluster (``initdb`` in a
temporary directory; never the machine's shared server), its own ``redis-server`` (append-only file with
``appendfsync always``: a broker message acknowledged to a producer survives a restart), a real control plane
(etcd, kube-apiserver v1.20.2, controller-manager, scheduler and the simulated node of the tests,
``tests/support/kube.py``), and ICC's roles as separate processes: 2 web (uvicorn), 2 workers (Celery,
every queue), 2 cron schedulers and 2 Celery beats (the schedulers; the beats are elected through the core lease
``beat``), 2 watchers (``manage.py icc_watch``, elected per cluster through the lease ``watch:<id>``).

Workload, all through ICC's public surfaces:

* **audited API writes**: ``POST /api/v1/calendar/entries/`` with an API token, alternating between the two web
  processes; every 201 is recorded client-side (id and a unique title);
* **pushed scaling signals** (``POST /api/v1/scaler/signals/``) asking the Deployment ``web`` for 2 or 3
  replicas in turn; each accepted round must end with exactly one scale write (the Deployment's
  ``metadata.generation`` counts the writes that changed it);
* **HTTP cron jobs** (``* * * * *``, spread, catch-up ``all``) to a local receiver that records every delivery
  by ``Idempotency-Key`` and holds each answer ``--hold-ms`` so that workers are often mid-task.

Faults, interleaved in a seeded random order, each followed by a wait for steady state: SIGKILL a worker
mid-task (one holding an unfinished cron attempt while the receiver holds its request), SIGKILL the active
scheduler (beat, or a cron scheduler) and the active watcher (the cluster's lease holder), restart Redis
(SIGKILL, start again), restart PostgreSQL (``pg_ctl stop -m immediate``: a crash, WAL recovery at start),
restart the kube-apiserver (SIGKILL, start again with the same flags). A killed ICC process is started again at
once by this script's supervisor (as the kubelet would); so is any role that exits on its own (counted as
``role_crashes``: a role should survive its dependencies' outages).

**Steady state** after a fault: every role process running, ``/readyz`` 200 on both webs, a probe write
acknowledged by each web, both workers answering a Celery ping, the cluster's watch lease held (not expired)
by a running watcher with every watch stream connected. The figure is the time from the fault to steady state;
the anchor beside it is the time the faulted component itself took to come back (e.g. PostgreSQL accepting
connections again).

Checks afterwards: writes acknowledged but missing (row or its audit event), duplicated external effects
(calendar rows per client title; scale writes beyond one per accepted round; cron deliveries of a key after
ICC had recorded it succeeded, or runs recorded succeeded twice), accepted scale rounds never applied and cron
slots never delivered (both count as lost), ``manage.py audit_verify`` over the whole chain, and the observed
Deployments (``Workload`` rows: name, desired replicas, generation) equal to the API server's.

A cron key delivered again after the worker holding it was killed (or the run's claim expired during an
outage) is at-least-once delivery with the same key, which the receiver can de-duplicate: it is printed as
``cron_redelivered``, not counted as a duplicate.

The last line is one JSON object: ``lost``, ``duplicated``, ``chain_valid`` (1 or 0), ``steady_p95_s`` and the
details. Run: ``.venv/bin/python bench/chaos.py [--quick] [--worker-kills 100 --redis-restarts 20
--postgres-restarts 20 ...] [--max-minutes N] [--keep]``. ``--quick`` injects one fault of each kind (about 3
minutes). ``--max-minutes`` bounds the fault phase (and Ctrl-C ends it): the checks and report then cover the
faults injected so far.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: bench.harness, apps, tests

import psycopg
import requests

from bench import harness

PG_BIN = Path(os.environ.get("CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = os.environ.get("CHAOS_REDIS_SERVER", "redis-server")
DATABASE = "icc_chaos"
NAMESPACE = "chaos"
TARGET_STEADY_P95_S = 30.0
TARGET_PER_POD = 10.0
STEADY_TIMEOUT_S = 120.0
ROUND_TIMEOUT_S = 60.0
QUEUES = "default,reconcile,decisions,cron,analysis"
FAST = {
    "scale_down_stabilization_s": 0,
    "cooldown_down_s": 0,
    "cooldown_up_s": 0,
    "flap_guard_max_reversals": None,
    "max_step_up_pods": 4,
}
KINDS = ("worker", "scheduler", "watcher", "redis", "postgres", "apiserver")


def now() -> float:
    return time.time()


def clock(at: float | None = None) -> str:
    return datetime.fromtimestamp(at or now(), UTC).strftime("%H:%M:%S")


def say(text: str) -> None:
    print(f"{clock()} {text}", flush=True)


# --- the stores: our own PostgreSQL and Redis -----------------------------------------------------------------


class Postgres:
    """A PostgreSQL cluster of our own in ``workdir`` on a free loopback port (run as ``postgres`` when root)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.port = harness.free_port()
        self.log = workdir / "postgres.log"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        subprocess.run([*self.as_user, *args], check=True, timeout=timeout, cwd=self.workdir, stdout=subprocess.DEVNULL)

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.workdir, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        self.start()
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')

    @property
    def admin_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c max_connections=400"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def crash(self) -> None:
        """Immediate shutdown: every backend is killed, no checkpoint; the next start replays the WAL."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        with suppress(Exception):
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)

    def ready(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False


class Redis:
    """``redis-server`` of our own; append-only file fsynced on every write, so acknowledged data survives."""

    def __init__(self, workdir: Path, persistence: str) -> None:
        self.workdir = workdir
        self.port = harness.free_port()
        self.persistence = persistence
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        args += ["--save", "", "--protected-mode", "no", "--loglevel", "warning"]
        if self.persistence == "aof":
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        with (self.workdir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        harness.wait_for(self.ready, 30, "redis-server", 0.05)

    def ready(self) -> bool:
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def crash(self) -> None:
        assert self.proc is not None
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            harness.stop_process(self.proc)


# --- ICC's roles ----------------------------------------------------------------------------------------------


@dataclass
class Role:
    name: str
    kind: str  # web, worker, scheduler, beat, watcher
    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    started: int = 0
    crashes: int = 0  # exits this script did not cause
    expected_exit: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else -1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, env: dict[str, str]) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *self.args],
                cwd=harness.ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started += 1
        self.expected_exit = False

    def kill(self) -> None:
        """SIGKILL to the role's process group; the supervisor starts it again."""
        if self.proc is None:
            return
        self.expected_exit = True
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            self.expected_exit = True
            harness.stop_process(self.proc)


class Roles:
    """The ICC processes and a supervisor thread that starts again any that exited (as the kubelet would)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.roles: list[Role] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        for n in (1, 2):
            port = harness.free_port()
            args = ["-m", "uvicorn", "iccapp.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
            args += ["--no-access-log", "--log-level", "warning"]
            self.roles.append(Role(f"web-{n}", "web", args, logs / f"web-{n}.log", port=port))
        for n in (1, 2):
            args = ["-m", "celery", "-A", "iccapp", "worker", "-Q", QUEUES, "--pool", "threads", "--concurrency", "8"]
            args += ["-n", f"chaos-worker-{n}@%h", "--without-mingle", "--without-gossip", "--loglevel", "WARNING"]
            self.roles.append(Role(f"worker-{n}", "worker", args, logs / f"worker-{n}.log"))
        for n in (1, 2):
            self.roles.append(
                Role(f"cron-scheduler-{n}", "scheduler", ["manage.py", "cron_scheduler"], logs / f"cron-{n}.log")
            )
        for n in (1, 2):  # elected: the holder of the lease "beat" ticks, the other waits
            beat = ["-m", "celery", "-A", "iccapp", "beat", "--loglevel", "WARNING"]
            beat += ["--schedule", str(logs / f"beat-{n}")]
            self.roles.append(Role(f"beat-{n}", "beat", beat, logs / f"beat-{n}.log"))
        for n in (1, 2):
            self.roles.append(Role(f"watcher-{n}", "watcher", ["manage.py", "icc_watch"], logs / f"watcher-{n}.log"))

    def of(self, kind: str) -> list[Role]:
        return [r for r in self.roles if r.kind == kind]

    def by_pid(self, pid: int) -> Role | None:
        return next((r for r in self.roles if r.pid == pid), None)

    def start(self) -> None:
        for role in self.roles:
            role.start(self.env)
        self.thread = threading.Thread(target=self._supervise, name="chaos-supervisor", daemon=True)
        self.thread.start()

    def _supervise(self) -> None:
        while not self.stopping.wait(0.2):
            with self.lock:
                for role in self.roles:
                    if role.proc is not None and role.proc.poll() is not None:
                        if not role.expected_exit:
                            role.crashes += 1
                            say(f"  {role.name} (pid {role.pid}) exited by itself ({role.proc.returncode}); restarting")
                        role.start(self.env)

    def kill(self, role: Role) -> None:
        with self.lock:
            role.kill()
            role.start(self.env)  # at once, as a restarting container would

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(5)
        order = {"beat": 0, "scheduler": 1, "worker": 2, "watcher": 3, "web": 4}
        for role in sorted(self.roles, key=lambda r: order[r.kind]):
            role.stop()

    def webs(self) -> list[str]:
        return [f"http://127.0.0.1:{r.port}" for r in self.of("web")]


# --- the cron receiver ------------------------------------------------------------------------------------------


@dataclass
class Delivery:
    at: float
    key: str
    attempt: str


class Receiver(harness.LoopbackReceiver):
    """Records each delivery and answers 200 after ``hold_s`` (so that workers are often mid-request)."""

    thread_name = "chaos-receiver"

    def __init__(self, hold_s: float) -> None:
        super().__init__()
        self.hold_s = hold_s
        self.deliveries: list[Delivery] = []
        self.in_flight = 0

    async def received(self, headers: dict[str, str], at: float) -> None:
        self.deliveries.append(Delivery(now(), headers.get("idempotency-key", ""), headers.get("x-icc-attempt", "")))
        self.in_flight += 1
        try:
            await asyncio.sleep(self.hold_s)
        finally:
            self.in_flight -= 1


# --- the workload -----------------------------------------------------------------------------------------------


@dataclass
class Round:
    want: int
    acked_at: float
    generation_before: int
    reached_at: float | None = None
    generation_after: int | None = None


class Workload:
    """Audited API writes and scaling rounds in two threads, until ``stop``."""

    def __init__(self, webs: list[str], token: str, kube: Any, application_id: int, write_interval: float) -> None:
        self.webs = webs
        self.token = token
        self.kube = kube
        self.application_id = application_id
        self.write_interval = write_interval
        self.acked: dict[int, str] = {}  # entry id -> title
        self.write_errors = 0
        self.writes_sent = 0
        self.rounds: list[Round] = []
        self.signal_errors = 0
        self.stopping = threading.Event()
        self.kube_http = harness.kube_session(kube)
        self.deploy_path = f"{kube.url}/apis/apps/v1/namespaces/{NAMESPACE}/deployments/web"
        self.lock = threading.Lock()
        self.counter = 0
        self.threads = [
            threading.Thread(target=self._writes, name="chaos-writes", daemon=True),
            threading.Thread(target=self._scaling, name="chaos-scaling", daemon=True),
        ]

    def http(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.headers["Authorization"] = f"Bearer {self.token}"
        return session

    def write(self, session: requests.Session, web: str, label: str) -> int | None:
        """One audited write: a far-future maintenance window with a unique title. Its id when acknowledged."""
        with self.lock:
            self.counter += 1
            title = f"chaos-{label}-{self.counter:06d}"
        body: dict[str, Any] = {
            "kind": "maintenance",
            "title": title,
            "start_date": "2099-01-01",
            "start_time": "03:00",
            "timezone": "UTC",
            "duration_minutes": 30,
            "reason": "chaos suite write",
            "owner": "chaos",
        }
        self.writes_sent += 1
        try:
            response = session.post(f"{web}/api/v1/calendar/entries/", json=body, timeout=10)
        except requests.RequestException:
            self.write_errors += 1
            return None
        if response.status_code != 201:
            self.write_errors += 1
            return None
        entry_id = int(response.json()["id"])
        with self.lock:
            self.acked[entry_id] = title
        return entry_id

    def _writes(self) -> None:
        session = self.http()
        n = 0
        while not self.stopping.is_set():
            self.write(session, self.webs[n % len(self.webs)], "w")
            n += 1
            self.stopping.wait(self.write_interval)

    def deployment(self) -> dict[str, Any] | None:
        try:
            response = self.kube_http.get(self.deploy_path, timeout=5)
            return response.json() if response.ok else None
        except (requests.RequestException, ValueError):
            return None

    def pods(self, *, running: bool = True) -> list[str] | None:
        try:
            response = self.kube_http.get(
                f"{self.kube.url}/api/v1/namespaces/{NAMESPACE}/pods",
                params={"labelSelector": "app.kubernetes.io/name=web"},
                timeout=5,
            )
            if not response.ok:
                return None
        except requests.RequestException:
            return None
        items = response.json()["items"]
        return [
            p["metadata"]["name"]
            for p in items
            if not p["metadata"].get("deletionTimestamp")
            and (not running or p.get("status", {}).get("phase") == "Running")
        ]

    def _scaling(self) -> None:
        session = self.http()
        n = 0
        while not self.stopping.is_set():
            deployment = self.deployment()
            pods = self.pods()
            if deployment is None or pods is None:
                self.stopping.wait(1)
                continue
            current = int(deployment["spec"]["replicas"])
            if len(pods) != current:  # the previous change still rolling out
                self.stopping.wait(0.5)
                continue
            want = 3 if current == 2 else 2
            value = TARGET_PER_POD * want / len(pods) - 0.5  # ceil(len x value / target) == want
            body: dict[str, Any] = {
                "application": self.application_id,
                "metric": "rps",
                "values": [{"pod": pod, "value": value} for pod in pods],
            }
            generation = int(deployment["metadata"]["generation"])
            try:
                response = session.post(f"{self.webs[n % 2]}/api/v1/scaler/signals/", json=body, timeout=10)
            except requests.RequestException:
                response = None
            n += 1
            if response is None or response.status_code != 202:
                self.signal_errors += 1
                self.stopping.wait(1)
                continue
            trial = Round(want, now(), generation)
            self.rounds.append(trial)
            deadline = now() + ROUND_TIMEOUT_S
            while now() < deadline:  # the round finishes even while stopping: its outcome is checked
                seen = self.deployment()
                if seen is not None and int(seen["spec"]["replicas"]) == want:
                    trial.reached_at = now()
                    trial.generation_after = int(seen["metadata"]["generation"])
                    break
                time.sleep(0.1)
            if trial.reached_at is not None:
                self.hold(session, n)
            self.stopping.wait(2)

    def hold(self, session: requests.Session, n: int) -> None:
        """Every pod on target: the pods that asked for the change no longer do (their values stay fresh 30 s, and
        ``ceil(current x mean / target)`` over the new count would ask for more)."""
        pods = self.pods(running=False) or []
        body: dict[str, Any] = {
            "application": self.application_id,
            "metric": "rps",
            "values": [{"pod": pod, "value": TARGET_PER_POD} for pod in pods],
        }
        if pods:
            with suppress(requests.RequestException):
                session.post(f"{self.webs[n % 2]}/api/v1/scaler/signals/", json=body, timeout=10)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(ROUND_TIMEOUT_S + 15)


# --- setup ------------------------------------------------------------------------------------------------------


def kube_objects(kube: Any) -> None:
    http = harness.kube_session(kube)
    namespace: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    http.post(f"{kube.url}/api/v1/namespaces", json=namespace, timeout=10).raise_for_status()
    for name, replicas in (("web", 2), ("static-a", 1), ("static-b", 1)):
        # One application per Deployment: a policy scales an application with one scalable workload.
        labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop" if name == "web" else name}
        body: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": f"registry.example/{name}:1"}]},
                },
            },
        }
        path = f"{kube.url}/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
        http.post(path, json=body, timeout=10).raise_for_status()


@dataclass
class Setup:
    token: str
    cluster_id: int
    application_id: int


def icc_objects(kube: Any, receiver: Receiver, jobs: int) -> Setup:
    from django.contrib.auth import get_user_model

    from apps.clusters import services, sync
    from apps.clusters.models import Workload as WorkloadRow
    from apps.cron.services.jobs import job_create
    from apps.scaler import services as scaler_services
    from apps.users.tokens import token_create

    admin = get_user_model().objects.create_superuser("chaos-admin", "chaos@example.test", "x-" + os.urandom(8).hex())
    _, secret = token_create(owner=admin, name="chaos", by=admin)
    cluster = services.cluster_register(
        name="chaos", auth_mode="token", api_url=kube.url, token=kube.token, ca_data=kube.ca_path.read_text()
    )
    sync.full_sync(cluster.pk)
    workload = WorkloadRow.objects.select_related("application").get(cluster=cluster, namespace=NAMESPACE, name="web")
    scaler_services.policy_create(
        application=workload.application,
        mode="active",
        min_replicas=1,
        max_replicas=6,
        metrics=[{"name": "rps", "target": TARGET_PER_POD}],
        behavior=FAST,
    )
    for number in range(jobs):
        job_create(
            name=f"chaos-{number:03d}",
            schedule="* * * * *",
            timezone="UTC",
            spread=number % 4 != 0,
            catch_up="all",
            target_kind="http",
            http_url=receiver.url,
            http_method="POST",
            timeout_seconds=10,
            max_attempts=5,
        )
    result = Setup(secret, cluster.pk, workload.application_id)
    harness.close_django()
    return result


# --- steady state -----------------------------------------------------------------------------------------------


class Probe:
    """Is the whole system steady? Each check is cheap and bounded; the connections are fresh every time."""

    def __init__(self, roles: Roles, workload: Workload, database_url: str, cluster_id: int) -> None:
        self.roles = roles
        self.workload = workload
        self.database_url = database_url
        self.cluster_id = cluster_id
        self.session = workload.http()
        self.failing = ""
        self.detail = ""

    def steady(self) -> bool:
        for check in (self._processes, self._ready, self._writes, self._workers, self._watcher, self._beat):
            if not check():
                self.failing = check.__name__.strip("_")
                if check in (self._watcher, self._beat):
                    self.failing += f": {self.detail}"
                return False
        self.failing = ""
        return True

    def _processes(self) -> bool:
        return all(r.alive() for r in self.roles.roles)

    def _ready(self) -> bool:
        try:
            return all(self.session.get(f"{web}/readyz", timeout=3).status_code == 200 for web in self.roles.webs())
        except requests.RequestException:
            return False

    def _writes(self) -> bool:
        return all(self.workload.write(self.session, web, "probe") is not None for web in self.roles.webs())

    def _workers(self) -> bool:
        from iccapp.celery import app

        try:
            with app.connection_for_write() as conn:
                replies = app.control.ping(timeout=1.0, connection=conn)
        except Exception:  # the broker is down or restarting: not steady
            return False
        names = {name.split("@")[0] for reply in replies or [] for name in reply}
        return {f"chaos-worker-{n}" for n in (1, 2)} <= names

    def _watcher(self) -> bool:
        holder = lease_holder(self.database_url, self.cluster_id)
        if holder is None:
            self.detail = "no unexpired lease"
            return False
        pid, connected = holder
        role = self.roles.by_pid(pid)
        name = role.name if role else "not a running watcher"
        self.detail = f"lease held by pid {pid} ({name}), connected {connected}"
        return role is not None and role.kind == "watcher" and role.alive() and connected

    def _beat(self) -> bool:
        pid = lease_pid(self.database_url, "beat")
        role = self.roles.by_pid(pid) if pid is not None else None
        self.detail = f"lease 'beat' held by {role.name if role else pid}"
        return role is not None and role.kind == "beat" and role.alive()

    def wait(self, started: float) -> float | None:
        """Seconds from ``started`` until steady; None after STEADY_TIMEOUT_S."""
        while now() - started < STEADY_TIMEOUT_S:
            if self.steady():
                return now() - started
            time.sleep(0.25)
        return None


def holder_pid(holder: str) -> int:
    """The process id in a lease holder's or cron worker's name (``host:pid:...``)."""
    parts = holder.split(":")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1


def lease_pid(database_url: str, name: str) -> int | None:
    """The pid of the process holding the unexpired core lease ``name`` (apps/core/leases.py), if any."""
    try:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT holder FROM core_lease WHERE name = %s AND expires_at > statement_timestamp()", (name,)
            ).fetchone()
    except psycopg.Error:
        return None
    return holder_pid(str(row[0])) if row else None


def lease_holder(database_url: str, cluster_id: int) -> tuple[int, bool] | None:
    """The pid of the watcher holding the cluster's unexpired watch lease, and whether all its watches are up."""
    pid = lease_pid(database_url, f"watch:{cluster_id}")
    if pid is None:
        return None
    try:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            states = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE connected) FROM clusters_watchstate WHERE cluster_id = %s",
                (cluster_id,),
            ).fetchone()
    except psycopg.Error:
        return None
    return pid, bool(states and states[0] and states[0] == states[1])


def busy_worker_pids(database_url: str) -> set[int]:
    """Pids of workers holding an unfinished cron attempt right now."""
    try:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            rows = conn.execute("SELECT worker FROM cron_attempt WHERE finished_at IS NULL").fetchall()
    except psycopg.Error:
        return set()
    return {holder_pid(str(worker)) for (worker,) in rows}


# --- faults -----------------------------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str
    at: float
    detail: str = ""
    component_s: float | None = None  # the anchor: the faulted component itself back
    steady_s: float | None = None
    failing: str = ""


class Chaos:
    def __init__(
        self, roles: Roles, pg: Postgres, redis: Redis, kube: Any, receiver: Receiver, probe: Probe, seed: int
    ) -> None:
        self.roles = roles
        self.pg = pg
        self.redis = redis
        self.kube = kube
        self.receiver = receiver
        self.probe = probe
        self.random = random.Random(seed)
        self.scheduler_turn = 0

    def inject(self, kind: str) -> Fault:
        return getattr(self, f"_{kind}")()

    def _worker(self) -> Fault:
        deadline = now() + 30
        victim: Role | None = None
        while now() < deadline and victim is None:  # a worker that holds a request the receiver is holding
            if self.receiver.in_flight:
                busy = [r for r in self.roles.of("worker") if r.pid in busy_worker_pids(self.pg.url)]
                if busy:
                    victim = self.random.choice(busy)
                    break
            time.sleep(0.05)
        mid_task = victim is not None
        victim = victim or self.random.choice(self.roles.of("worker"))
        fault = Fault("worker", now(), f"{victim.name} pid {victim.pid}{' mid-task' if mid_task else ' (idle)'}")
        self.roles.kill(victim)
        fault.component_s = now() - fault.at
        return fault

    def _scheduler(self) -> Fault:
        # The active beat is the holder of the lease "beat"; cron schedulers have no leader (both are active),
        # so every other scheduler fault kills one of them.
        self.scheduler_turn += 1
        victim: Role | None = None
        if self.scheduler_turn % 2:
            pid = lease_pid(self.pg.url, "beat")
            victim = self.roles.by_pid(pid) if pid is not None else None
        active = victim is not None
        victim = victim or self.random.choice(self.roles.of("scheduler"))
        fault = Fault("scheduler", now(), f"{victim.name} pid {victim.pid}{' (lease holder)' if active else ''}")
        self.roles.kill(victim)
        fault.component_s = now() - fault.at
        return fault

    def _watcher(self) -> Fault:
        holder = lease_holder(self.pg.url, self.probe.cluster_id)
        victim = self.roles.by_pid(holder[0]) if holder else None
        active = victim is not None
        victim = victim or self.random.choice(self.roles.of("watcher"))
        fault = Fault("watcher", now(), f"{victim.name} pid {victim.pid}{' (lease holder)' if active else ''}")
        self.roles.kill(victim)
        fault.component_s = now() - fault.at
        return fault

    def _redis(self) -> Fault:
        fault = Fault("redis", now(), f"SIGKILL redis-server pid {self.redis.proc.pid if self.redis.proc else '?'}")
        self.redis.crash()
        self.redis.start()
        fault.component_s = now() - fault.at
        return fault

    def _postgres(self) -> Fault:
        fault = Fault("postgres", now(), "pg_ctl stop -m immediate; start")
        self.pg.crash()
        self.pg.start()
        harness.wait_for(self.pg.ready, 60, "PostgreSQL", 0.05)
        fault.component_s = now() - fault.at
        return fault

    def _apiserver(self) -> Fault:
        old = self.kube.processes["kube-apiserver"]
        fault = Fault("apiserver", now(), f"SIGKILL kube-apiserver pid {old.pid}")
        with suppress(ProcessLookupError):
            os.killpg(old.pid, signal.SIGKILL)
        old.wait(10)
        with self.kube.logs["kube-apiserver"].open("ab") as log:
            self.kube.processes["kube-apiserver"] = subprocess.Popen(
                old.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.kube.workdir,
                start_new_session=True,
            )
        http = harness.kube_session(self.kube)

        def ready() -> bool:
            try:
                return http.get(f"{self.kube.url}/readyz", timeout=2).ok
            except requests.RequestException:
                return False

        harness.wait_for(ready, 90, "kube-apiserver /readyz", 0.1)
        fault.component_s = now() - fault.at
        return fault


def plan_faults(args: Any) -> list[str]:
    counts = {
        "worker": args.worker_kills,
        "scheduler": args.scheduler_kills,
        "watcher": args.watcher_kills,
        "redis": args.redis_restarts,
        "postgres": args.postgres_restarts,
        "apiserver": args.apiserver_restarts,
    }
    plan = [kind for kind, n in counts.items() for _ in range(n)]
    if args.quick:
        return list(KINDS)
    random.Random(args.seed).shuffle(plan)
    return plan


# --- checks -----------------------------------------------------------------------------------------------------


def check_writes(acked: dict[int, str]) -> dict[str, Any]:
    from django.db.models import Count

    from apps.audit.models import AuditEvent
    from apps.calendar.models import CalendarEntry

    rows = dict(CalendarEntry.objects.filter(title__startswith="chaos-").values_list("id", "title"))
    audited = set(
        AuditEvent.objects.filter(action="calendar.entry.create", target_id__in=[str(i) for i in acked]).values_list(
            "target_id", flat=True
        )
    )
    missing_rows = sorted(i for i in acked if rows.get(i) != acked[i])
    missing_audit = sorted(i for i in acked if str(i) not in audited)
    repeated = (
        CalendarEntry.objects.filter(title__startswith="chaos-").values("title").annotate(n=Count("id")).filter(n__gt=1)
    )
    duplicated = sum(r["n"] - 1 for r in repeated)
    return {
        "acked": len(acked),
        "missing_rows": missing_rows[:10],
        "missing_audit": missing_audit[:10],
        "lost": len(set(missing_rows) | set(missing_audit)),
        "duplicated": duplicated,
        "stored_unacked": len(rows) - len(set(rows) & set(acked)),
    }


def check_scaling(rounds: list[Round], generation_start: int, generation_end: int, since: float) -> dict[str, Any]:
    """Rounds accepted but never applied are lost; scale writes the API server saw beyond the decisions ICC
    recorded as applied (with a change) are duplicated: one decision written twice, or a write no decision owns."""
    from django.db.models import F

    from apps.scaler.models import Decision

    reached = [r for r in rounds if r.reached_at is not None]
    writes = generation_end - generation_start
    after = datetime.fromtimestamp(since, UTC)
    applied = Decision.objects.filter(outcome="applied", at__gte=after)
    decided = applied.exclude(desired_replicas=F("current_replicas")).count()
    # A decision row is written before the scale ("failed: scale in progress (interrupted)") and finished after it:
    # a worker killed between the two leaves that row beside a write that happened. It owns at most one write.
    interrupted = Decision.objects.filter(
        outcome="failed", reason__startswith="scale in progress (interrupted)", at__gte=after
    ).count()
    extra = max(0, writes - decided - interrupted)
    durations = [r.reached_at - r.acked_at for r in reached if r.reached_at is not None]
    return {
        "rounds_accepted": len(rounds),
        "rounds_applied": len(reached),
        "lost": len(rounds) - len(reached),
        "scale_writes": writes,
        "decisions_applied": decided,
        "decisions_interrupted": interrupted,
        "duplicated": extra,
        "apply_p95_s": round(harness.percentile(durations, 0.95), 2) if durations else None,
    }


def check_cron(receiver: Receiver, window: tuple[float, float]) -> dict[str, Any]:
    from django.db.models import Count

    from apps.cron.models import Attempt, Job, Run, RunState

    jobs = list(Job.objects.all())
    expected: set[str] = set()
    for job in jobs:
        slot = datetime.fromtimestamp(window[0], UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
        while slot.timestamp() <= window[1]:
            due = job.due_at(slot).timestamp()
            # A job's first slot is the first after its creation (the minute it was created in has begun).
            if window[0] <= due <= window[1] and slot > job.created_at:
                expected.add(job.idempotency_key(slot))
            slot += timedelta(minutes=1)
    arrivals: dict[str, list[float]] = defaultdict(list)
    for delivery in receiver.deliveries:
        arrivals[delivery.key].append(delivery.at)
    succeeded: dict[str, list[float]] = defaultdict(list)
    attempts = Attempt.objects.filter(outcome=RunState.SUCCEEDED, finished_at__isnull=False).select_related("run__job")
    for attempt in attempts:
        key = attempt.run.job.idempotency_key(attempt.run.slot)
        if attempt.finished_at is not None:
            succeeded[key].append(attempt.finished_at.timestamp())
    duplicated: set[str] = {key for key, done in succeeded.items() if len(done) > 1}
    attempts_per_key: Counter[str] = Counter()
    counted = Run.objects.filter(attempt_rows__isnull=False).select_related("job").annotate(n=Count("attempt_rows"))
    for counted_run in counted:
        attempts_per_key[counted_run.job.idempotency_key(counted_run.slot)] = counted_run.n
    for key, times in arrivals.items():
        if len(times) > attempts_per_key.get(key, 0) > 0:  # one attempt reached the receiver twice
            duplicated.add(key)
    for key, times in arrivals.items():
        if key in succeeded:
            first_done = min(succeeded[key])
            if any(at > first_done + 0.001 for at in times):  # sent again after ICC recorded it succeeded
                duplicated.add(key)
    missing = sorted(expected - arrivals.keys())
    again = {k for k, t in arrivals.items() if len(t) > 1 and k not in duplicated}
    redelivered = sum(len(arrivals[k]) - 1 for k in again)
    # Why a key was sent again: what became of the attempts before the last one (unfinished: its worker died).
    causes: Counter[str] = Counter()
    runs = Run.objects.filter(attempt_rows__isnull=False).select_related("job").distinct()
    for run in runs:
        if run.job.idempotency_key(run.slot) not in again:
            continue
        earlier = list(run.attempt_rows.order_by("number"))[:-1]
        for attempt in earlier:
            what = "unfinished" if attempt.finished_at is None else f"{attempt.outcome}: {attempt.error[:60]}"
            causes[what] += 1
    states = Counter(Run.objects.values_list("state", flat=True))
    return {
        "jobs": len(jobs),
        "expected": len(expected),
        "deliveries": len(receiver.deliveries),
        "lost": len(missing),
        "missing_keys": missing[:10],
        "duplicated": len(duplicated),
        "duplicate_keys": sorted(duplicated)[:10],
        "redelivered": redelivered,
        "redelivery_causes": dict(causes.most_common(5)),
        "run_states": dict(states),
    }


def observed_state(kube: Any, cluster_id: int) -> tuple[set[tuple[str, int, int]], set[tuple[str, int, int]]]:
    from django.db import connections

    from apps.clusters.models import Workload as WorkloadRow

    http = harness.kube_session(kube)
    items = http.get(f"{kube.url}/apis/apps/v1/namespaces/{NAMESPACE}/deployments", timeout=10).json()["items"]
    cluster = {(d["metadata"]["name"], int(d["spec"]["replicas"]), int(d["metadata"]["generation"])) for d in items}
    rows = WorkloadRow.objects.filter(cluster_id=cluster_id, namespace=NAMESPACE, kind="Deployment")
    observed = {(name, int(r), int(g)) for name, r, g in rows.values_list("name", "desired_replicas", "generation")}
    connections.close_all()
    return observed, cluster


def audit_verify(env: dict[str, str]) -> tuple[bool, str]:
    result = subprocess.run(
        [sys.executable, "manage.py", "audit_verify"],
        check=False,
        cwd=harness.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    text = (result.stdout + result.stderr).strip().splitlines()
    return result.returncode == 0, text[-1] if text else ""


# --- the run ----------------------------------------------------------------------------------------------------


def main() -> int:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--worker-kills", type=int, default=100, help="SIGKILL a worker mid-task (100)")
    parser.add_argument("--redis-restarts", type=int, default=20, help="restart Redis (20)")
    parser.add_argument("--postgres-restarts", type=int, default=20, help="restart PostgreSQL (20)")
    parser.add_argument("--scheduler-kills", type=int, default=5, help="SIGKILL the active scheduler (5)")
    parser.add_argument("--watcher-kills", type=int, default=5, help="SIGKILL the active watcher (5)")
    parser.add_argument("--apiserver-restarts", type=int, default=5, help="restart the kube-apiserver (5)")
    parser.add_argument("--gap", type=float, default=None, help="seconds of plain workload between faults (3; quick 2)")
    parser.add_argument("--jobs", type=int, default=None, help="HTTP cron jobs, every minute (30)")
    parser.add_argument("--hold-ms", type=float, default=1000, help="the receiver holds each answer this long (1000)")
    parser.add_argument("--write-interval", type=float, default=0.2, help="seconds between audited writes (0.2)")
    parser.add_argument("--redis-persistence", choices=("aof", "none"), default="aof", help="aof: appendfsync always")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="stop injecting faults after this long, then check and report"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) at the end")
    args = parser.parse_args()
    gap = args.gap if args.gap is not None else (2.0 if args.quick else 3.0)
    jobs = args.jobs or 30
    plan = plan_faults(args)
    args.faults_planned = len(plan)

    workdir = Path(tempfile.mkdtemp(prefix="icc-chaos-"))
    os.chmod(workdir, 0o755)  # the postgres user must reach its data directory below
    logs = workdir / "logs"
    logs.mkdir()
    say(f"chaos: {len(plan)} faults {dict(Counter(plan))}; working directory {workdir}")
    pg = Postgres(workdir / "pg")
    redis_server = Redis(workdir / "redis", args.redis_persistence)
    receiver = Receiver(args.hold_ms / 1000).start()
    roles: Roles | None = None
    workload: Workload | None = None
    ok = False
    try:
        pg.init()
        redis_server.start()
        say(f"PostgreSQL on 127.0.0.1:{pg.port}, Redis on 127.0.0.1:{redis_server.port} ({args.redis_persistence})")
        stores = harness.Stores(pg.url, redis_server.url)
        env = harness.bench_env(
            stores,
            workdir / "data",
            WORKER_METRICS_PORT="0",
            CLUSTER_WATCH_LEASE_SECONDS="5",
            SCALER_EVALUATE_SECONDS="5",
            ICC_HEARTBEAT_SECONDS="5",
            DATABASE_POOL_SIZE="12",
        )
        harness.manage(env, "migrate", "--noinput", "-v0")
        harness.setup_django(env)
        # This process's own Django (setup and checks) logs its reconnections during the faults; the roles under
        # test log to their files in the working directory.
        logging.disable(logging.CRITICAL)
        with harness.kube_cluster(workdir / "kube") as kube:
            kube_objects(kube)
            setup = icc_objects(kube, receiver, jobs)
            roles = Roles(env, logs)
            roles.start()
            workload = Workload(roles.webs(), setup.token, kube, setup.application_id, args.write_interval)
            probe = Probe(roles, workload, pg.url, setup.cluster_id)
            started = now()
            steady0 = probe.wait(started)
            if steady0 is None:
                raise SystemExit(f"the roles never became steady (failing: {probe.failing}); logs in {logs}")
            say(f"{len(roles.roles)} roles steady in {steady0:.1f} s")
            scaling_from = now()
            generation_start = int((workload.deployment() or {"metadata": {"generation": 0}})["metadata"]["generation"])
            workload.start()
            cron_from = now()
            time.sleep(gap)
            chaos = Chaos(roles, pg, redis_server, kube, receiver, probe, args.seed)
            faults: list[Fault] = []
            budget_end = now() + args.max_minutes * 60 if args.max_minutes else None
            try:
                for number, kind in enumerate(plan, 1):
                    if budget_end is not None and now() > budget_end:
                        say(f"--max-minutes {args.max_minutes} reached: {len(faults)} of {len(plan)} faults injected")
                        break
                    fault = chaos.inject(kind)
                    steady = probe.wait(fault.at)
                    fault.steady_s = steady
                    fault.failing = "" if steady is not None else probe.failing
                    faults.append(fault)
                    steady_text = f"{steady:.1f} s" if steady is not None else f"NOT steady ({probe.failing})"
                    say(
                        f"fault {number}/{len(plan)} {kind}: {fault.detail}; back in {fault.component_s:.1f} s, "
                        f"steady in {steady_text}"
                    )
                    time.sleep(gap)
            except KeyboardInterrupt:  # Ctrl-C: stop injecting, still check and report what ran
                say(f"interrupted: {len(faults)} of {len(plan)} faults injected; checking")
                if faults and faults[-1].steady_s is None:
                    probe.wait(now())
            cron_to = now()
            workload.stop()
            say("faults done; letting cron deliveries and retries settle")
            settle_cron(receiver, pg.url, cron_to)
            roles.stop()
            deployment = workload.deployment() or {"metadata": {"generation": 0}}
            generation_end = int(deployment["metadata"]["generation"])
            writes = check_writes(workload.acked)
            scaling = check_scaling(workload.rounds, generation_start, generation_end, scaling_from)
            cron = check_cron(receiver, (cron_from, cron_to))
            observed_equal = False
            deadline = now() + 30
            while now() < deadline:  # the watchers are stopped: the last events are in (or never will be)
                observed, actual = observed_state(kube, setup.cluster_id)
                observed_equal = observed == actual
                if observed_equal:
                    break
                time.sleep(1)
            harness.close_django()
            chain_valid, chain_text = audit_verify(env)
            checks = {"writes": writes, "scaling": scaling, "cron": cron}
            report(args, faults, checks, (chain_valid, chain_text), (observed_equal, observed, actual), roles)
            ok = True
    finally:
        if workload is not None:
            workload.stopping.set()
        if roles is not None:
            roles.stop()
        receiver.stop()
        with suppress(Exception):
            harness.close_django()
        redis_server.stop()
        pg.stop()
        if args.keep or not ok:
            print(f"logs kept in {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def settle_cron(receiver: Receiver, database_url: str, until: float) -> None:
    """Wait (at most 75 s: a claim a dead worker held expires after 30 s) until no run due by ``until`` is open."""
    deadline = now() + 75
    while now() < deadline:
        try:
            with psycopg.connect(database_url, connect_timeout=2) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM cron_run WHERE due_at <= to_timestamp(%s) "
                    "AND state NOT IN ('succeeded', 'failed', 'skipped', 'cancelled', 'timed_out')",
                    (until,),
                ).fetchone()
            if row is not None and row[0] == 0 and receiver.in_flight == 0:
                return
        except psycopg.Error:
            pass
        time.sleep(0.5)


def report(
    args: Any,
    faults: list[Fault],
    checks: dict[str, dict[str, Any]],
    chain: tuple[bool, str],
    state: tuple[bool, set[Any], set[Any]],
    roles: Roles,
) -> None:
    writes, scaling, cron = checks["writes"], checks["scaling"], checks["cron"]
    chain_valid, chain_text = chain
    observed_equal, observed, actual = state
    not_steady = [f for f in faults if f.steady_s is None]
    steady = [f.steady_s if f.steady_s is not None else STEADY_TIMEOUT_S for f in faults]
    by_kind: dict[str, Any] = {}
    for kind in KINDS:
        mine = [f for f in faults if f.kind == kind]
        if not mine:
            continue
        times = [f.steady_s if f.steady_s is not None else STEADY_TIMEOUT_S for f in mine]
        anchors = [f.component_s or 0.0 for f in mine]
        by_kind[kind] = {
            "faults": len(mine),
            "steady_p50_s": round(harness.percentile(times, 0.5), 2),
            "steady_p95_s": round(harness.percentile(times, 0.95), 2),
            "steady_max_s": round(max(times), 2),
            "component_back_p95_s": round(harness.percentile(anchors, 0.95), 2),
        }
    lost = writes["lost"] + scaling["lost"] + cron["lost"]
    duplicated = writes["duplicated"] + scaling["duplicated"] + cron["duplicated"]
    steady_p95 = round(harness.percentile(steady, 0.95), 2) if steady else None
    mid_task = sum(1 for f in faults if f.kind == "worker" and "mid-task" in f.detail)
    crashes = {r.name: r.crashes for r in roles.roles if r.crashes}
    print()
    print(f"{'fault':<12}{'count':>6}{'steady p50 s':>14}{'steady p95 s':>14}{'max s':>8}{'component back p95 s':>22}")
    for kind, row in by_kind.items():
        print(
            f"{kind:<12}{row['faults']:>6}{row['steady_p50_s']:>14}{row['steady_p95_s']:>14}"
            f"{row['steady_max_s']:>8}{row['component_back_p95_s']:>22}"
        )
    print(f"steady state p95 over all faults: {steady_p95} s (target <= {TARGET_STEADY_P95_S:.0f} s)")
    if not_steady:
        print(f"NOT steady within {STEADY_TIMEOUT_S:.0f} s: {[(f.kind, f.failing) for f in not_steady]}")
    print(f"worker kills mid-task: {mid_task} of {by_kind.get('worker', {}).get('faults', 0)}")
    print(
        f"audited writes: {writes['acked']} acknowledged, lost {writes['lost']} (rows {writes['missing_rows']}, "
        f"audit {writes['missing_audit']}), duplicated {writes['duplicated']}, stored unacknowledged "
        f"{writes['stored_unacked']}"
    )
    print(
        f"scaling: {scaling['rounds_accepted']} accepted rounds, {scaling['rounds_applied']} applied "
        f"(p95 {scaling['apply_p95_s']} s), {scaling['scale_writes']} scale writes for {scaling['decisions_applied']} "
        f"applied decisions (and {scaling['decisions_interrupted']} interrupted mid-write), duplicated "
        f"{scaling['duplicated']}"
    )
    print(
        f"cron: {cron['jobs']} jobs, {cron['expected']} runs due in the window, {cron['deliveries']} deliveries, "
        f"lost {cron['lost']} {cron['missing_keys']}, duplicated {cron['duplicated']} {cron['duplicate_keys']}, "
        f"redelivered with the same key {cron['redelivered']} (earlier attempts: {cron['redelivery_causes']}); "
        f"states {cron['run_states']}"
    )
    print(f"audit chain: {'valid' if chain_valid else 'BROKEN'} ({chain_text})")
    print(f"observed state equals the cluster's: {observed_equal}")
    if not observed_equal:
        print(f"  observed {sorted(observed)}\n  cluster  {sorted(actual)}")
    print(f"roles that exited by themselves (restarted): {crashes or 'none'}")
    print(f"lost {lost}, duplicated {duplicated}, chain valid {int(chain_valid)}, steady p95 {steady_p95} s")
    harness.emit(
        {
            "quick": bool(args.quick),
            "lost": lost,
            "duplicated": duplicated,
            "chain_valid": int(chain_valid),
            "observed_equal": int(observed_equal),
            "steady_p95_s": steady_p95,
            "steady_max_s": round(max(steady), 2) if steady else None,
            "target_steady_p95_s": TARGET_STEADY_P95_S,
            "not_steady": len(not_steady),
            "faults": len(faults),
            "faults_planned": args.faults_planned,
            "faults_by_kind": {k: v["faults"] for k, v in by_kind.items()},
            "steady_by_kind": by_kind,
            "worker_kills_mid_task": mid_task,
            "writes_acked": writes["acked"],
            "writes_lost": writes["lost"],
            "writes_duplicated": writes["duplicated"],
            "scale_rounds_accepted": scaling["rounds_accepted"],
            "scale_lost": scaling["lost"],
            "scale_writes": scaling["scale_writes"],
            "scale_duplicated": scaling["duplicated"],
            "scale_decisions_interrupted": scaling["decisions_interrupted"],
            "cron_expected": cron["expected"],
            "cron_deliveries": cron["deliveries"],
            "cron_lost": cron["lost"],
            "cron_duplicated": cron["duplicated"],
            "cron_redelivered": cron["redelivered"],
            "role_crashes": sum(crashes.values()),
            "redis_persistence": args.redis_persistence,
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
    )


if __name__ == "__main__":
    raise SystemExit(main())
