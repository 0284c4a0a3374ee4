"""``manage.py lease_hold NAME``: hold a lease as a leader would, printing each election and deposition as a JSON
line (diagnostics, the chaos bench and the lease tests). SIGTERM/SIGINT step down and release it at once."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.leases import Held, LeaderElector


def _say(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": round(time.time(), 3), **fields}) + "\n")
    sys.stdout.flush()


class Command(BaseCommand):
    help = "Compete for the lease NAME and hold it until stopped, printing elected/deposed events as JSON lines."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--ttl", type=float, default=10.0, help="lease lifetime without renewal (seconds)")
        parser.add_argument("--renew-every", type=float, default=3.0, help="renewal period (seconds)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            elector = LeaderElector(
                options["name"],
                ttl=options["ttl"],
                renew_every=options["renew_every"],
                on_elected=lambda held: _say("elected", generation=held.generation, holder=held.holder),
                on_deposed=lambda: _say("deposed"),
            )
        except ValueError as exc:
            raise CommandError(f"--renew-every: {exc}") from None
        stopping = threading.Event()

        def stop(signum: int, frame: FrameType | None) -> None:
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        _say("started", holder=elector.holder)
        elector.start()
        while not stopping.wait(0.2):
            pass
        held: Held | None = elector.held
        elector.stop(release=True)
        _say("stopped", released=held.generation if held else None)
