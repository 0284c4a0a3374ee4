"""Benchmark of ICC's notifications: a domain event emitted to the message received, through a signed webhook and
through e-mail, beside a raw HTTP POST and a raw SMTP send to the same local servers.

In one run, with a webhook receiver (asyncio HTTP/1.1 on 127.0.0.1, records arrival time and ``Idempotency-Key``,
answers 200 at once) and an SMTP server (aiosmtpd on 127.0.0.1, records arrival time and subject), both started by
this script:

1. **anchors**: the raw round trip of an HTTP POST of a webhook-sized JSON body to the same receiver (urllib3,
   keep-alive, as ICC's pool sends), a raw ``smtplib`` send (connect, send, quit: what Django's SMTP backend does
   per message) to the same SMTP server, and one single-row INSERT in the bench's PostgreSQL (what recording an
   event costs at least).
2. **webhook latency**: ``--events`` events (1,000; quick 50) emitted with
   :func:`apps.core.domain_events.emit` by this process (Django set up against the bench's database, the
   notifications sink registered as in every ICC process) at ``--rate`` events/s (10: below the pipeline's
   capacity on a shared 2-core machine, so the figure is an event's latency, not a queue's), each its own
   condition (its own deduplication key) matched by a rule with grouping off (group window 0) to a signed webhook
   channel. Two Celery worker processes (``celery -A iccapp worker -Q default``, threads) route and deliver, as in
   production. Latency: arrival at the receiver minus the moment ``emit`` was called, split at the event's
   ``routed_at`` (emitted -> routed by a worker -> received). The time ``emit`` takes is what the sink costs an
   emitter (store the event, enqueue its routing).
3. **e-mail latency**: the same through an e-mail channel to the SMTP server.
4. **throughput**: ``--burst`` events (1,000; quick 50) emitted as fast as this process can, to the webhook;
   events/s = events delivered / (last arrival - first emit); the workers' CPU time per event (``/proc``) and the
   emitting thread's CPU time in ``emit()``, figures that do not depend on the machine's load.

Targets (printed, not asserted): webhook p99 <= 1 s. The last line of output is one line of JSON. Run:
``.venv/bin/python bench/notifications.py [--quick] [--events N] [--rate R] [--burst N]``; the full run takes about
5 minutes, ``--quick`` about 1. The database ``icc_bench_notifications`` and the Redis db (14) are dropped and
reused; never point them at data you keep."""

from __future__ import annotations

import os
import re
import smtplib
import subprocess
import sys
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from subprocess import Popen
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: bench.harness, apps

from bench import harness

SUFFIX = "_notifications"  # database icc_bench_notifications
TARGET_P99_MS = 1000.0
WORKERS = 2
WORKER_CONCURRENCY = 8
SETTLE_S = 30.0  # the longest a message may take before the bench calls it missing
SUBJECT_NUMBER = re.compile(r"\b[a-z]+-\d+\b")  # a phase label and the event's number


# --- the local servers ------------------------------------------------------------------------------------------


class HookReceiver(harness.LoopbackReceiver):
    """The signed-webhook channel's target: records (arrival, Idempotency-Key), answers 200."""

    thread_name = "bench-hook"

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, str]] = []

    async def received(self, headers: dict[str, str], at: float) -> None:
        self.arrivals.append((at, headers.get("idempotency-key", "")))


class MailReceiver:
    """aiosmtpd on 127.0.0.1: records (arrival, subject) of every message it accepts."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str]] = []
        self.port = harness.free_port()
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        at = time.time()
        match = re.search(rb"^Subject: (.*)$", envelope.original_content, re.MULTILINE)
        self.arrivals.append((at, match.group(1).decode(errors="replace").strip() if match else ""))
        return "250 Message accepted for delivery"

    def start(self) -> MailReceiver:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()


# --- anchors ----------------------------------------------------------------------------------------------------


def ms(seconds: float) -> float:
    return seconds * 1000.0


def pct(values: list[float], q: float) -> float | None:
    return round(harness.percentile(values, q), 2) if values else None


def anchor_http(url: str, samples: int) -> list[float]:
    """Round trips of a raw POST of a webhook-sized body to the receiver, on one keep-alive connection."""
    import urllib3

    body = b'{"delivery":"first","message":{"subject":"anchor"}}'.ljust(700, b" ")
    pool = urllib3.PoolManager(retries=False)
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        pool.request("POST", url, body=body, headers={"Content-Type": "application/json"}, timeout=10)
        times.append(ms(time.perf_counter() - started))
    pool.clear()
    return times


def anchor_smtp(port: int, samples: int) -> list[float]:
    """A raw smtplib send per sample: connect, MAIL/RCPT/DATA, QUIT (one message per connection, as Django's
    SMTP backend sends a message opened with ``get_connection()``)."""
    times = []
    for n in range(samples):
        message = EmailMessage()
        message["Subject"], message["From"], message["To"] = f"anchor {n}", "icc@localhost", "ops@example.com"
        message.set_content("anchor\n")
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(message)
        times.append(ms(time.perf_counter() - started))
    return times


def anchor_insert(samples: int) -> list[float]:
    """One single-row INSERT (autocommit) in the bench's database: the floor of recording an event."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_anchor (id bigserial PRIMARY KEY, at timestamptz, v text)")
    times = []
    for n in range(samples):
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_anchor (at, v) VALUES (now(), %s)", [f"row {n}"])
        times.append(ms(time.perf_counter() - started))
    return times


# --- ICC: channels, rules, workers -----------------------------------------------------------------------------


def configure(hook_url: str, smtp_port: int) -> None:
    from apps.notifications.services.channels import channel_create
    from apps.notifications.services.rules import rule_save

    hook = channel_create(
        name="bench-hook", kind="webhook", target=hook_url, secret="bench-signing-key", max_per_minute=10000
    )
    mail = channel_create(name="bench-mail", kind="email", target="ops@example.com", max_per_minute=10000)
    for name, kinds, channel in (
        ("bench-hook", ["bench.hook", "bench.burst"], hook),
        ("bench-mail", ["bench.mail"], mail),
    ):
        rule_save(name=name, kinds=kinds, min_severity="info", channels=[channel.pk], group_window_seconds=0)


LOG_DIR: list[Path] = []


def start_worker(env: dict[str, str], name: str) -> Popen[bytes]:
    """A production worker: ``celery -A iccapp worker -Q default`` (threads), its output in a log file."""
    args = ["-m", "celery", "-A", "iccapp", "worker", "-Q", "default", "--pool", "threads"]
    args += ["--concurrency", str(WORKER_CONCURRENCY), "-n", f"{name}@%h"]
    args += ["--without-mingle", "--without-gossip", "--loglevel", "WARNING"]
    log = LOG_DIR[0] / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=harness.ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc.log = log  # type: ignore[attr-defined]
    return proc


def cpu_seconds(procs: list[Popen[bytes]]) -> float:
    """User + system CPU seconds the worker processes used so far (/proc/<pid>/stat; a threads pool is one
    process)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in procs:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)
    return total


def log_tail(proc: Popen[bytes], lines: int = 30) -> str:
    log = getattr(proc, "log", None)
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log and log.exists() else ""


# --- phases -----------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    """One run of events: when each was emitted, how long ``emit`` took, when each arrived."""

    label: str
    emitted: dict[int, float] = field(default_factory=dict)
    emit_ms: list[float] = field(default_factory=list)
    emit_cpu_ms: float = 0.0  # CPU time of the emitting thread in emit() (load-independent, unlike emit_ms)
    arrived: dict[int, float] = field(default_factory=dict)

    def latencies(self) -> list[float]:
        return [ms(self.arrived[n] - at) for n, at in self.emitted.items() if n in self.arrived]

    @property
    def missing(self) -> int:
        return len(self.emitted.keys() - self.arrived.keys())


def emit_events(phase: Phase, kind: str, count: int, rate: float | None) -> None:
    """Emit ``count`` events of ``kind`` (each its own condition) at ``rate`` per second (None: as fast as possible)."""
    from apps.core.domain_events import DomainEvent, Severity, emit

    started = time.perf_counter()
    for n in range(count):
        if rate:
            wait = started + n / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        event = DomainEvent(
            kind=kind,
            severity=Severity.WARNING,
            subject=f"{phase.label}-{n}",
            text=f"bench event {n} of {count}",
            dedup_key=f"{phase.label}-{n}",
            link="/notifications/",
        )
        at = time.time()
        began, cpu = time.perf_counter(), time.thread_time()
        emit(event)  # outside a transaction: the sinks run at once, in this process
        phase.emit_ms.append(ms(time.perf_counter() - began))
        phase.emit_cpu_ms += ms(time.thread_time() - cpu)
        phase.emitted[n] = at


def hook_numbers(receiver: HookReceiver) -> dict[str, float]:
    """First arrival per subject at the webhook receiver (the Idempotency-Key names the message)."""
    from apps.notifications.models import Message

    firsts: dict[int, float] = {}
    for at, key in list(receiver.arrivals):
        parts = key.split("-")  # icc-notification-<message>-<channel>-<kind>-<sequence>
        if len(parts) >= 3 and parts[2].isdigit():
            firsts.setdefault(int(parts[2]), at)
    subjects = dict(Message.objects.filter(pk__in=firsts).values_list("pk", "subject"))
    return {subjects[pk]: at for pk, at in firsts.items() if pk in subjects}


def mail_numbers(smtp: MailReceiver) -> dict[str, float]:
    found: dict[str, float] = {}
    for at, subject in list(smtp.arrivals):
        match = SUBJECT_NUMBER.search(subject)
        if match:
            found.setdefault(match.group(0), at)
    return found


def collect(phase: Phase, arrivals: Any, watched: list[Popen[bytes]], timeout: float = SETTLE_S) -> None:
    """Wait until every event of the phase arrived (or ``timeout`` after the last emit); record the arrivals."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in watched:
            if proc.poll() is not None:
                raise SystemExit(f"worker {proc.args!r} exited with {proc.returncode}:\n{log_tail(proc)}")
        seen = arrivals()
        phase.arrived = {n: seen[f"{phase.label}-{n}"] for n in phase.emitted if f"{phase.label}-{n}" in seen}
        if not phase.missing or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def figures(phase: Phase) -> dict[str, Any]:
    latencies = phase.latencies()
    return {
        "events": len(phase.emitted),
        "received": len(phase.arrived),
        "missing": phase.missing,
        "p50_ms": pct(latencies, 0.50),
        "p99_ms": pct(latencies, 0.99),
        "max_ms": round(max(latencies), 1) if latencies else None,
        "emit_p50_ms": pct(phase.emit_ms, 0.50),
        "emit_p99_ms": pct(phase.emit_ms, 0.99),
    }


def stages(phase: Phase) -> dict[str, float | None]:
    """Where an event's time went: emitted -> routed by a worker (``routed_at``), routed -> received."""
    from apps.notifications.models import Event

    subjects = {f"{phase.label}-{n}": n for n in phase.emitted}
    routed = dict(Event.objects.filter(subject__in=subjects).values_list("subject", "routed_at"))
    to_route, after_route = [], []
    for subject, n in subjects.items():
        at = routed.get(subject)
        if at is None:
            continue
        to_route.append(ms(at.timestamp() - phase.emitted[n]))
        if n in phase.arrived:
            after_route.append(ms(phase.arrived[n] - at.timestamp()))
    return {
        "routed_p50_ms": pct(to_route, 0.5),
        "routed_p99_ms": pct(to_route, 0.99),
        "routed_to_received_p50_ms": pct(after_route, 0.5),
        "routed_to_received_p99_ms": pct(after_route, 0.99),
    }


def delivery_states() -> dict[str, int]:
    from django.db.models import Count

    from apps.notifications.models import Delivery

    rows = Delivery.objects.values_list("status").annotate(n=Count("id"))
    return dict(rows)


# --- the run ----------------------------------------------------------------------------------------------------


def main() -> int:
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--events", type=int, default=None, help="events per latency phase (1,000; quick 50)")
    parser.add_argument("--rate", type=float, default=None, help="events/s in the latency phases (10)")
    parser.add_argument("--burst", type=int, default=None, help="events of the throughput phase (1,000; quick 50)")
    args = parser.parse_args()
    events = args.events or (50 if args.quick else 1000)
    rate = args.rate or 10.0
    burst = args.burst or (50 if args.quick else 1000)
    samples = 50 if args.quick else 300

    hook = HookReceiver().start()
    smtp = MailReceiver().start()
    workers: list[Popen[bytes]] = []
    try:
        with harness.bench_run(
            SUFFIX,
            WORKER_METRICS_PORT="0",  # two workers on one host
            DATABASE_POOL_SIZE=str(WORKER_CONCURRENCY + 4),
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(smtp.port),
        ) as run:
            LOG_DIR.append(run.data_dir)
            print(f"webhook receiver on {hook.url}, SMTP server on 127.0.0.1:{smtp.port}", flush=True)
            anchors = {
                "http": anchor_http(hook.url, samples),
                "smtp": anchor_smtp(smtp.port, samples),
                "insert": anchor_insert(samples),
            }
            hook.arrivals.clear()
            smtp.arrivals.clear()
            configure(hook.url, smtp.port)
            workers += [start_worker(run.env, f"notify-{n}") for n in range(WORKERS)]
            for label, kind, arrivals in (("warmhook", "bench.hook", hook), ("warmmail", "bench.mail", smtp)):
                warm = Phase(label)  # the workers' first tasks: connections, imports
                emit_events(warm, kind, 2 * WORKERS * WORKER_CONCURRENCY, 8.0)
                seen = (lambda: hook_numbers(hook)) if arrivals is hook else (lambda: mail_numbers(smtp))
                collect(warm, seen, workers, timeout=90)
                if warm.missing:
                    raise SystemExit(f"warm-up events never arrived:\n{log_tail(workers[0])}")
            print(f"{WORKERS} workers x {WORKER_CONCURRENCY} threads ready; {events} events at {rate:g}/s per channel")

            webhook = Phase("hook")
            emit_events(webhook, "bench.hook", events, rate)
            collect(webhook, lambda: hook_numbers(hook), workers)
            email = Phase("mail")
            emit_events(email, "bench.mail", events, rate)
            collect(email, lambda: mail_numbers(smtp), workers)

            throughput = Phase("burst")
            cpu_before = cpu_seconds(workers)
            burst_started = time.time()
            emit_events(throughput, "bench.burst", burst, None)
            emit_s = time.time() - burst_started
            collect(throughput, lambda: hook_numbers(hook), workers, timeout=SETTLE_S + burst / 20)
            last = max(throughput.arrived.values(), default=burst_started)
            worker_cpu_ms = ms(cpu_seconds(workers) - cpu_before) / max(1, len(throughput.arrived))
            states = delivery_states()
            split = {phase.label: stages(phase) for phase in (webhook, email, throughput)}
            harness.close_django()
    finally:
        for proc in workers:
            harness.stop_process(proc)
        hook.stop()
        smtp.stop()
    report(
        quick=args.quick,
        rate=rate,
        anchors=anchors,
        webhook={**figures(webhook), **split["hook"]},
        email={**figures(email), **split["mail"]},
        burst={**figures(throughput), **split["burst"]},
        events_per_s=round(len(throughput.arrived) / max(1e-9, last - burst_started), 1),
        emit_per_s=round(burst / max(1e-9, emit_s), 1),
        worker_cpu_ms=round(worker_cpu_ms, 2),
        emit_cpu_ms=round(throughput.emit_cpu_ms / max(1, burst), 2),
        states=states,
    )
    return 0


def report(
    *,
    quick: bool,
    rate: float,
    anchors: dict[str, list[float]],
    webhook: dict[str, Any],
    email: dict[str, Any],
    burst: dict[str, Any],
    events_per_s: float,
    emit_per_s: float,
    worker_cpu_ms: float,
    emit_cpu_ms: float,
    states: dict[str, int],
) -> None:
    http, smtp, insert = (
        {"p50": pct(anchors[k], 0.5), "p99": pct(anchors[k], 0.99)} for k in ("http", "smtp", "insert")
    )
    anchor_http_per_s = round(1000.0 / (sum(anchors["http"]) / len(anchors["http"])), 1)
    print()
    print(f"{'figure':<46}{'ICC':>12}{'anchor':>12}  anchor is")
    rows = [
        ("webhook: emit -> received p50 (ms)", webhook["p50_ms"], http["p50"], "raw POST round trip p50"),
        ("webhook: emit -> received p99 (ms)", webhook["p99_ms"], http["p99"], "raw POST round trip p99"),
        ("e-mail: emit -> received p50 (ms)", email["p50_ms"], smtp["p50"], "raw smtplib send p50"),
        ("e-mail: emit -> received p99 (ms)", email["p99_ms"], smtp["p99"], "raw smtplib send p99"),
        ("emit() in the emitter p50 (ms)", webhook["emit_p50_ms"], insert["p50"], "one-row INSERT p50"),
        ("emit() in the emitter p99 (ms)", webhook["emit_p99_ms"], insert["p99"], "one-row INSERT p99"),
        ("events/s delivered (burst, webhook)", events_per_s, anchor_http_per_s, "raw POSTs/s, one thread"),
    ]
    for name, ours, anchor, what in rows:
        print(f"{name:<46}{ours!s:>12}{anchor!s:>12}  {what}")
    print(
        f"CPU per event (burst, load-independent): workers {worker_cpu_ms} ms (route + deliver), "
        f"emitter {emit_cpu_ms} ms in emit()"
    )
    for label, phase in (("webhook", webhook), ("e-mail", email), ("burst", burst)):
        print(
            f"{label}: emitted -> routed by a worker p50 {phase['routed_p50_ms']} ms, p99 {phase['routed_p99_ms']} ms; "
            f"routed -> received p50 {phase['routed_to_received_p50_ms']} ms, "
            f"p99 {phase['routed_to_received_p99_ms']} ms"
        )
    print(
        f"target: webhook p99 <= {TARGET_P99_MS:.0f} ms; latency phases at {rate:g} events/s, group window 0; "
        f"missing webhook {webhook['missing']}, e-mail {email['missing']}, burst {burst['missing']}; burst emitted "
        f"at {emit_per_s} events/s (burst latency p50 {burst['p50_ms']} ms, p99 {burst['p99_ms']} ms); "
        f"deliveries {states}"
    )
    harness.emit(
        {
            "quick": quick,
            "events": webhook["events"],
            "rate_per_s": rate,
            "webhook_p50_ms": webhook["p50_ms"],
            "webhook_p99_ms": webhook["p99_ms"],
            "webhook_missing": webhook["missing"],
            "email_p50_ms": email["p50_ms"],
            "email_p99_ms": email["p99_ms"],
            "email_missing": email["missing"],
            "events_per_s": events_per_s,
            "burst_events": burst["events"],
            "burst_missing": burst["missing"],
            "burst_p99_ms": burst["p99_ms"],
            "emit_per_s": emit_per_s,
            "worker_cpu_ms_per_event": worker_cpu_ms,
            "emit_cpu_ms_per_event": emit_cpu_ms,
            "webhook_routed_p99_ms": webhook["routed_p99_ms"],
            "webhook_routed_to_received_p99_ms": webhook["routed_to_received_p99_ms"],
            "email_routed_p99_ms": email["routed_p99_ms"],
            "email_routed_to_received_p99_ms": email["routed_to_received_p99_ms"],
            "emit_p50_ms": webhook["emit_p50_ms"],
            "emit_p99_ms": webhook["emit_p99_ms"],
            "anchor_http_post_p50_ms": http["p50"],
            "anchor_http_post_p99_ms": http["p99"],
            "anchor_http_posts_per_s": anchor_http_per_s,
            "anchor_smtp_send_p50_ms": smtp["p50"],
            "anchor_smtp_send_p99_ms": smtp["p99"],
            "anchor_insert_p50_ms": insert["p50"],
            "anchor_insert_p99_ms": insert["p99"],
            "workers": WORKERS,
            "worker_threads": WORKER_CONCURRENCY,
            "target_webhook_p99_ms": TARGET_P99_MS,
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
    )


if __name__ == "__main__":
    raise SystemExit(main())
