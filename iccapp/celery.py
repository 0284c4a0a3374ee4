"""The Celery application: one app for every role (worker, beat, and the embedded default)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iccapp.settings")

app = Celery("iccapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Beat sends only while it holds the "beat" lease: several beat replicas are safe, one sends (apps.core.beat).
app.conf.beat_scheduler = "apps.core.beat:LeaderScheduler"
# A task is acknowledged after it ran, and a worker killed mid-task (SIGKILL, OOM) puts it back on its queue, so
# another worker runs it (tasks are idempotent and take ids). A warm shutdown (SIGTERM) lets running tasks finish.
app.conf.task_acks_late = True
app.conf.task_reject_on_worker_lost = True
app.conf.worker_prefetch_multiplier = 1  # with late acks, a busy worker does not sit on tasks others could run


@app.on_after_finalize.connect
def _periodic(sender: Celery, **_: object) -> None:
    from celery.schedules import crontab
    from django.conf import settings

    sender.conf.beat_schedule = {
        "core.heartbeat": {"task": "core.heartbeat", "schedule": float(settings.ICC_HEARTBEAT_SECONDS)},
        "audit.verify_chain": {"task": "audit.verify_chain", "schedule": float(settings.AUDIT_VERIFY_SECONDS)},
        "audit.write_checkpoint": {"task": "audit.write_checkpoint", "schedule": crontab(minute=5, hour=0)},
        "clusters.sync_due": {"task": "clusters.sync_due", "schedule": 30.0},
        "scaler.evaluate_due": {"task": "scaler.evaluate_due", "schedule": float(settings.SCALER_EVALUATE_SECONDS)},
        "compliance.scan": {"task": "compliance.scan", "schedule": float(settings.COMPLIANCE_SCAN_SECONDS)},
        "traffic.flush": {"task": "traffic.flush", "schedule": float(settings.TRAFFIC_FLUSH_SECONDS)},
        "traffic.prune": {"task": "traffic.prune", "schedule": 3600.0},
        "notifications.tick": {"task": "notifications.tick", "schedule": 15.0},
        "traffic.recommend": {"task": "traffic.recommend", "schedule": 86400.0},
    }


@worker_init.connect
def _worker_metrics(**_: object) -> None:
    """A standalone worker serves its Prometheus metrics on WORKER_METRICS_PORT (0 disables), behind METRICS_TOKEN."""
    from django.conf import settings

    if settings.WORKER_METRICS_PORT and not settings.ICC_TASKS_EMBEDDED:
        from apps.core.metrics import serve_metrics

        serve_metrics(settings.WORKER_METRICS_PORT, addr=os.environ.get("WORKER_METRICS_ADDR", "0.0.0.0"))  # noqa: S104


@worker_ready.connect
def _worker_heartbeat(**_: object) -> None:
    """A standalone worker announces itself (role ``worker``, version, queues) for the System page."""
    from django.conf import settings

    if not settings.ICC_TASKS_EMBEDDED:
        from apps.core import heartbeats

        heartbeats.start_role("worker")


@worker_shutdown.connect
def _worker_gone(**_: object) -> None:
    from apps.core import heartbeats

    heartbeats.stop_role("worker")
