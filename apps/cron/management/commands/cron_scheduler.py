"""``manage.py cron_scheduler``: the cron scheduler role.

It needs no lease: any number of replicas may run, because each slot's run is inserted with ``ON CONFLICT (job,
slot) DO NOTHING`` (only the winner sends it) and workers claim runs by compare-and-swap (``apps.cron.scheduler``).
Each replica still announces itself (role heartbeat ``cron-scheduler``) for the System page and ``/metrics``.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = (
        "Insert the run of every due cron slot (once per slot, however many replicas run) and hand it to the cron "
        "workers at its due time; re-send runs whose worker died; mark late runs; trim run history."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port (0: do not)"
        )
        parser.add_argument("--metrics-addr", default="0.0.0.0", help="address of the metrics port")  # noqa: S104

    def handle(self, *args: Any, **options: Any) -> None:
        from apps.cron.scheduler import Scheduler

        scheduler = Scheduler()

        def stop(signum: int, frame: FrameType | None) -> None:
            scheduler.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if options["metrics_port"]:
            from apps.core.metrics import serve_metrics

            serve_metrics(options["metrics_port"], addr=options["metrics_addr"])
        from apps.core import heartbeats

        heartbeats.start_role("cron-scheduler", extra=lambda: {"leases": [], "elected": "no (safe on every replica)"})
        self.stdout.write("cron scheduler running (SIGTERM or Ctrl-C stops it)")
        try:
            scheduler.run()
        finally:
            heartbeats.stop_role("cron-scheduler")
