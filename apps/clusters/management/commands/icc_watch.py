"""``manage.py icc_watch``: the watcher role (Kubernetes watch streams of every cluster this process leases)."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Watch every unpaused cluster whose lease this process gets (one watch per kind), applying each event to "
        "the database. Run it in the beat/watcher role; several replicas share the clusters through leases. "
        "SIGTERM/SIGINT release the leases so another replica takes over at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--lease-seconds",
            type=int,
            default=None,
            help="how long a lease lasts without renewal (default CLUSTER_WATCH_LEASE_SECONDS)",
        )
        parser.add_argument("--appliers", type=int, default=None, help="database threads applying events")
        parser.add_argument(
            "--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port (0: do not)"
        )
        parser.add_argument("--metrics-addr", default="0.0.0.0", help="address of the metrics port")  # noqa: S104

    def handle(self, *args: Any, **options: Any) -> None:
        from apps.clusters.watch import Watcher

        lease = options["lease_seconds"] or settings.CLUSTER_WATCH_LEASE_SECONDS
        if lease < 3:
            raise CommandError("--lease-seconds: at least 3")
        if options["appliers"] is not None and not 1 <= options["appliers"] <= 64:
            raise CommandError("--appliers: from 1 to 64")
        watcher = Watcher(lease_seconds=lease, appliers=options["appliers"])

        def stop(signum: int, frame: FrameType | None) -> None:
            watcher.request_stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if options["metrics_port"]:
            from apps.core.metrics import serve_metrics

            serve_metrics(options["metrics_port"], addr=options["metrics_addr"])
        from apps.clusters.watch.leases import lease_name
        from apps.core import heartbeats

        heartbeats.start_role(
            "watcher",
            extra=lambda: {"leases": [lease_name(pk) for pk in list(watcher.clusters)], "holder": watcher.holder},
        )
        self.stdout.write(f"ICC watcher {watcher.holder} (lease {lease}s)")
        self.stdout.flush()
        try:
            watcher.run()
        finally:
            heartbeats.stop_role("watcher")
        self.stdout.write("ICC watcher stopped; leases released")
